"""Initialisers (role ``initializer``): the starting hand poses, shape and camera for a fit."""
