"""Test-wide settings: the project's CPU defaults (2 threads, subnormal floats flushed to zero)."""

import torch


def pytest_configure(config) -> None:  # noqa: ANN001
    # softplus(beta=100) in the SDF networks produces subnormal floats, which are several times slower
    # on x86 CPUs; the fit and prior training flush them too (hoirecon.systems.common.configure_threads)
    torch.set_flush_denormal(True)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
