"""Clip formats (role ``clip_format``): each reads one on-disk layout into a validated Clip."""
