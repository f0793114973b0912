"""Test-wide settings: the project's CPU defaults (at most 2 threads, subnormal floats flushed to zero,
freed memory kept), as every run applies them (hoirecon.runtime.configure_cpu)."""

import torch

from hoirecon.runtime import configure_cpu


def pytest_configure(config) -> None:
    configure_cpu(min(torch.get_num_threads(), 2))
    # `make test-fast` (-m "not slow") leaves these out; `make test` runs everything
    config.addinivalue_line(
        "markers",
        "slow: runs fits, trainings or comparisons end to end, spawns processes, takes over ~5 s, or needs two"
        " torch threads (test-fast runs one per worker)",
    )
