"""hoirecon: reconstruct hand-held objects and hands from monocular clips with a diffusion prior.

Importing this package has no side effects: components register when their modules are imported,
which `hoirecon.registry` does lazily on first use.
"""

from hoirecon.version import __version__

__all__ = ["__version__", "fit_clip"]


def fit_clip(*args, **kwargs):  # the signature and docs are hoirecon.api.fit_clip's
    """Fit one clip: ``hoirecon.api.fit_clip`` (imported on the first call, so ``import hoirecon`` stays light)."""
    from hoirecon.api import fit_clip as run

    return run(*args, **kwargs)
