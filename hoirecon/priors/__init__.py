"""Priors (role ``prior``): score-distillation guidance on rendered object channels."""
