"""The fit's loss terms as plain functions (weights and schedules are applied by the fit)."""

from __future__ import annotations

import torch


def mask_loss(labels: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Occlusion-aware mask loss: L1 between composited [hand, object] and the one-hot target, (R, 3) each."""
    per_ray = (labels[:, :2] - target[:, :2]).abs().sum(-1)
    if weights is not None:
        return (per_ray * weights).sum() / weights.sum().clamp(min=1e-8)
    return per_ray.mean()


def contour_chamfer(contour: torch.Tensor, projected: torch.Tensor, scale: float) -> torch.Tensor:
    """One-directional chamfer from mask-contour points (P, 2) to projected vertices (V, 2), over ``scale`` px."""
    if len(contour) == 0:
        return projected.sum() * 0.0
    return torch.cdist(contour, projected).min(dim=1).values.mean() / scale


def eikonal_loss(gradients: torch.Tensor) -> torch.Tensor:
    """mean (|grad| - 1)^2 over (M, 3) SDF gradients."""
    return ((gradients.norm(dim=-1) - 1) ** 2).mean()


def temporal_loss(joints: torch.Tensor, anchor: int = 5) -> torch.Tensor:
    """Mean distance between consecutive frames' joints (T, J, 3), each centred on joint ``anchor``."""
    centred = joints - joints[:, anchor : anchor + 1]
    return (centred[1:] - centred[:-1]).norm(dim=-1).mean()


def penetration_loss(sdf: torch.Tensor) -> torch.Tensor:
    """Depth of the hand inside the object: (B, V) signed distances of hand vertices (metres, negative
    inside) -> the depths of the vertices inside, summed over vertices, mean over frames (metres).
    Summed, not averaged: one finger sunk 5 mm pulls as hard whatever the rest of the hand does."""
    return torch.relu(-sdf).sum(dim=1).mean()


def contact_loss(tip_sdf: torch.Tensor, reach: float = 0.02) -> torch.Tensor:
    """Fingertips onto the surface: (B, K) signed distances of K fingertips (metres) -> mean over
    frames and tips of |distance| for the tips within ``reach`` of the surface (0 for those beyond:
    a fingertip far from the object is not touching it)."""
    near = (tip_sdf.abs() < reach).to(tip_sdf.dtype)
    return (tip_sdf.abs() * near).mean()


def sdf_moving_points_only(sdf: torch.Tensor, gradient: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The signed distance at ``points`` (N, 3) with gradients to the points but not to the SDF:
    first order about the detached values ``sdf`` (N,) and ``gradient`` (N, 3) at the same points
    (exact in value and in the points' gradient)."""
    return sdf.detach() + (gradient.detach() * (points - points.detach())).sum(-1)


def mask_contour(mask: torch.Tensor) -> torch.Tensor:
    """(P, 2) (u, v) of mask pixels touching a non-mask pixel (8-neighbourhood; the image border is outside)."""
    padded = torch.nn.functional.pad(mask.float()[None, None], (1, 1, 1, 1))
    neighbours = -torch.nn.functional.max_pool2d(-padded, 3, stride=1)[0, 0]  # erosion (8-neighbourhood)
    edge = mask & (neighbours < 0.5)
    v, u = torch.nonzero(edge, as_tuple=True)
    return torch.stack([u, v], dim=-1).float()
