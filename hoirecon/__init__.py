"""hoirecon: reconstruct hand-held objects and hands from monocular clips with a diffusion prior.

Importing this package has no side effects: components register when their modules are imported,
which `hoirecon.registry` does lazily on first use.
"""

__version__ = "0.1.0"
