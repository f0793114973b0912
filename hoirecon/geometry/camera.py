"""Pinhole cameras in the OpenCV convention: x right, y down, z forward; pixel intrinsics K.

Pixel centres sit at integer coordinates (OpenCV): pixel (row i, column j) is at (u, v) = (j, i),
so a centred principal point of a W x H image is ((W - 1) / 2, (H - 1) / 2). The rasteriser, the
volume renderer and the data loaders all use this convention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hoirecon.geometry.transforms import invert_transform, make_transform, rotate_vectors


def project(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Project (..., N, 3) camera-frame points with (..., 3, 3) K.

    Returns pixel coordinates (..., N, 2) and depth z (..., N). Points at z <= eps are projected
    with z clamped to eps (finite, far off-screen); callers mask them with ``z > 0``.
    """
    z = points_cam[..., 2]
    z_safe = z.clamp(min=eps)
    xy = points_cam[..., :2] / z_safe[..., None]
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
    u = fx * xy[..., 0] + K[..., 0, 1, None] * xy[..., 1] + cx
    v = fy * xy[..., 1] + cy
    return torch.stack([u, v], dim=-1), z


def pixel_grid(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(H*W, 2) pixel centres (u, v), row-major (index = i * W + j)."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def pixel_rays(
    K: torch.Tensor, T_cam_from_world: torch.Tensor, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixels, in the world frame.

    Args:
        K: (B, 3, 3) intrinsics.
        T_cam_from_world: (B, 4, 4) extrinsics.
        pixels: (B, R, 2) pixel coordinates (u, v).
    Returns:
        origins (B, R, 3) and unit directions (B, R, 3) in the world frame. Distances along a
        direction are Euclidean (not z-depth): ``z = t * d_cam.z``.
    """
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy, skew = K[:, 0, 2, None], K[:, 1, 2, None], K[:, 0, 1, None]
    y = (pixels[..., 1] - cy) / fy
    x = (pixels[..., 0] - cx - skew * y) / fx
    d_cam = F.normalize(torch.stack([x, y, torch.ones_like(x)], dim=-1), dim=-1)
    T_world_from_cam = invert_transform(T_cam_from_world)
    directions = rotate_vectors(T_world_from_cam, d_cam)
    origins = T_world_from_cam[:, None, :3, 3].expand_as(directions)
    return origins, directions


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """T_cam_from_world (..., 4, 4) of a camera at ``eye`` looking at ``target`` (both (..., 3)).

    ``up`` is the world direction that appears upwards in the image (default +y); OpenCV axes
    follow: z towards the target, y = image down. Another up vector is used when ``up`` is
    parallel to the viewing direction.
    """
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device)
    up = up.expand_as(eye)
    z = F.normalize(target - eye, dim=-1)
    x = torch.linalg.cross(z, up)
    degenerate = x.norm(dim=-1, keepdim=True) < 1e-6
    alt = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device).expand_as(eye)
    x = torch.where(degenerate, torch.linalg.cross(z, alt), x)
    x = F.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x)
    R_world_from_cam = torch.stack([x, y, z], dim=-1)
    return invert_transform(make_transform(R_world_from_cam, eye))


def intrinsics_from_fov(fov_degrees: float, height: int, width: int) -> torch.Tensor:
    """(3, 3) K with square pixels, the given horizontal field of view, centred principal point."""
    f = 0.5 * width / math.tan(math.radians(fov_degrees) / 2)
    return torch.tensor([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def rays_hit_box(
    K: torch.Tensor, T_cam_from_world: torch.Tensor, pixels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """(B, R) bool: whether the ray through each pixel (B, R, 2) meets the world-frame box [lo, hi]
    (3,) in front of the camera (the slab test)."""
    origins, directions = pixel_rays(K, T_cam_from_world, pixels)
    inverse = 1 / torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0, t1 = (lo - origins) * inverse, (hi - origins) * inverse
    near = torch.minimum(t0, t1).amax(-1)
    far = torch.maximum(t0, t1).amin(-1)
    return (far >= near.clamp(min=0)) & (far > 0)
