"""Signed distance primitives and operations in torch, for procedural objects.

Every primitive maps points (..., 3) in metres to signed distances (...) (negative inside). Unions of
exact SDFs are exact outside and a bound inside; smooth unions are approximations that stay within
``k`` of the true distance, which is plenty for meshing and for contact tests at millimetre scale.
"""

from __future__ import annotations

import torch


def sphere(p: torch.Tensor, radius: float) -> torch.Tensor:
    return p.norm(dim=-1) - radius


def rounded_box(p: torch.Tensor, half_size: tuple[float, float, float], rounding: float = 0.0) -> torch.Tensor:
    """Box of half extents ``half_size`` whose edges are rounded by ``rounding`` (included in the size)."""
    half = torch.tensor(half_size, dtype=p.dtype, device=p.device) - rounding
    q = p.abs() - half
    outside = q.clamp(min=0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return outside + inside - rounding


def capsule(
    p: torch.Tensor, a: tuple[float, float, float], b: tuple[float, float, float], radius: float
) -> torch.Tensor:
    """Segment a-b thickened by ``radius``."""
    a_t = torch.tensor(a, dtype=p.dtype, device=p.device)
    ab = torch.tensor(b, dtype=p.dtype, device=p.device) - a_t
    h = (((p - a_t) * ab).sum(-1) / (ab * ab).sum()).clamp(0, 1)
    return (p - a_t - h[..., None] * ab).norm(dim=-1) - radius


def torus_xz(p: torch.Tensor, major: float, minor: float) -> torch.Tensor:
    """Torus around the y axis (lying in the x-z plane), centred at the origin."""
    q = torch.stack([torch.hypot(p[..., 0], p[..., 2]) - major, p[..., 1]], dim=-1)
    return q.norm(dim=-1) - minor


def polygon_2d(q: torch.Tensor, vertices: list[tuple[float, float]]) -> torch.Tensor:
    """Exact signed distance of (..., 2) points to a closed simple polygon (any winding)."""
    v = torch.tensor(vertices, dtype=q.dtype, device=q.device)
    w = torch.roll(v, -1, dims=0)
    e = w - v  # (E, 2) edges
    d = q[..., None, :] - v  # (..., E, 2)
    t = ((d * e).sum(-1) / (e * e).sum(-1).clamp(min=1e-20)).clamp(0, 1)
    dist = (d - t[..., None] * e).norm(dim=-1).min(dim=-1).values
    # even-odd rule for inside
    y = q[..., None, 1]
    crosses = (v[:, 1] <= y) != (w[:, 1] <= y)
    x_at = v[:, 0] + (y - v[:, 1]) * e[:, 0] / torch.where(e[:, 1] == 0, torch.ones_like(e[:, 1]), e[:, 1])
    inside = ((q[..., None, 0] < x_at) & crosses).sum(-1) % 2 == 1
    return torch.where(inside, -dist, dist)


def revolve_z(p: torch.Tensor, profile: list[tuple[float, float]]) -> torch.Tensor:
    """Solid of revolution about z of a polygon in the (r, z) half plane (touching r = 0 to be closed)."""
    q = torch.stack([torch.hypot(p[..., 0], p[..., 1]), p[..., 2]], dim=-1)
    return polygon_2d(q, profile)


def union(*sdfs: torch.Tensor) -> torch.Tensor:
    out = sdfs[0]
    for s in sdfs[1:]:
        out = torch.minimum(out, s)
    return out


def smooth_union(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum: blends the surfaces over a band of width ``k``."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def intersect(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.maximum(a, b)


def rotate_into(p: torch.Tensor, R_world_from_local: torch.Tensor, t: tuple[float, float, float]) -> torch.Tensor:
    """Points in the local frame of a part placed at rotation R and translation t."""
    return (p - torch.tensor(t, dtype=p.dtype, device=p.device)) @ R_world_from_local.to(p.dtype)
