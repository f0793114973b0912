"""What every SDF backbone provides, and VolSDF's density.

Backbones work in metres in the object frame: they scale coordinates by ``units_per_metre``
internally (DiffHOI: 1 unit = 10 cm) and return distances in metres, so gradients are unit-norm in
metres too and the scale never leaks out.
"""

from __future__ import annotations

import torch


def laplace_density(sdf: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """VolSDF's density alpha * Psi_beta(-sdf), alpha = 1 / beta; Psi_beta the CDF of Laplace(0, beta).

    Psi(s) = 0.5 exp(s / beta) for s <= 0, 1 - 0.5 exp(-s / beta) for s > 0, with s = -sdf. Written
    with exp of non-positive arguments only, so it never overflows.
    """
    s = -sdf
    e = torch.exp(-s.abs() / beta)
    psi = torch.where(s <= 0, 0.5 * e, 1 - 0.5 * e)
    return psi / beta


def sdf_and_gradient(sdf_fn, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """sdf (N,) and d sdf / d x (N, 3) by autograd; with ``create_graph`` the gradient is differentiable
    (needed by the eikonal loss). Works under ``torch.no_grad()`` too (it enables grad locally)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True) if not x.requires_grad else x
        sdf = sdf_fn(x)
        (grad,) = torch.autograd.grad(sdf.sum(), x, create_graph=create_graph)
    return sdf, grad
