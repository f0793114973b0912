"""CPU settings every run, test and benchmark applies first: threads, subnormal floats, the allocator.

Called explicitly (``configure_cpu``), never on import, and before any other torch work:
``torch.set_flush_denormal`` sets the calling thread only, and OpenMP's worker threads copy it when
they are created, at the first parallel op. Measured with one parallel op before it: ``sigmoid`` over
a (65536, 64) tensor took 4.3 ms instead of 0.85 ms, a matmul producing subnormals 139 ms instead of 5.
"""

from __future__ import annotations

import ctypes
import os
import sys

import torch

from hoirecon.errors import ConfigError

_GLIBC_M_TRIM_THRESHOLD = -1
_GLIBC_M_MMAP_THRESHOLD = -3


def configure_cpu(threads: int) -> None:
    """torch intra-op threads (``threads``, or every core for 0); subnormal floats flushed to zero
    (softplus(beta=100) in the SDF networks makes many, and they are several times slower on x86);
    freed memory kept for reuse (``keep_freed_memory``)."""
    torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))
    torch.set_flush_denormal(True)
    keep_freed_memory()


def check_accelerator(accelerator: str) -> None:
    """``trainer.accelerator`` gpu/cuda on a machine whose torch sees no CUDA device: one line, before
    anything is written (Lightning would fail later with a MisconfigurationException)."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator}, but torch sees no CUDA device (see `hoirecon doctor`); use cpu or auto"
        )


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks up to 32 MB in the heap instead of returning them to
    the OS; True when it took effect (glibc on Linux only; elsewhere a no-op).

    By default glibc unmaps such blocks (or trims them from the heap) when a tensor is freed, and the
    next tensor of that size page-faults in every 4 KB page again: on this project's 2-core machine
    that was 12-17 thousand page faults per forward + backward of the SDF MLP over 65536 points, and
    a multiply over a (65536, 64) tensor took 3.4 ms instead of 1.3 ms. The price is that a process
    keeps its peak heap until it exits.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(_GLIBC_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_GLIBC_M_TRIM_THRESHOLD, 1 << 30))
