"""Transforms and pinhole camera: inverses, projection round trips, look-at axes."""

from __future__ import annotations

import math

import roma
import torch

from hoirecon.geometry.camera import intrinsics_from_fov, look_at, pixel_grid, pixel_rays, project
from hoirecon.geometry.transforms import (
    invert_transform,
    rotation_from_6d,
    transform_from_rotvec,
    transform_points,
)


def test_invert_transform_and_apply():
    torch.manual_seed(0)
    T = transform_from_rotvec(torch.randn(5, 3), torch.randn(5, 3))
    eye = T @ invert_transform(T)
    assert torch.allclose(eye, torch.eye(4).expand(5, 4, 4), atol=1e-5)
    x = torch.randn(5, 7, 3)
    assert torch.allclose(transform_points(invert_transform(T), transform_points(T, x)), x, atol=1e-5)


def test_rotation_from_6d_is_a_rotation_and_keeps_the_first_column_direction():
    x = torch.tensor([[2.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    R = rotation_from_6d(x)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3)[None], atol=1e-6)
    assert torch.allclose(R[0, :, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(R[0, :, 1], torch.tensor([0.0, 1.0, 0.0]))
    assert roma.is_rotation_matrix(R, epsilon=1e-5)


def test_projection_of_known_points():
    K = torch.tensor([[100.0, 0.0, 31.5], [0.0, 200.0, 15.5], [0.0, 0.0, 1.0]])
    pts = torch.tensor([[0.0, 0.0, 2.0], [0.2, -0.1, 2.0]])
    uv, z = project(pts, K)
    assert torch.allclose(uv, torch.tensor([[31.5, 15.5], [41.5, 5.5]]))
    assert torch.allclose(z, torch.tensor([2.0, 2.0]))


def test_pixel_rays_reproject_onto_their_pixels():
    K = intrinsics_from_fov(50.0, 6, 8)[None]
    T = look_at(torch.tensor([0.3, -0.2, -0.5]), torch.tensor([0.0, 0.05, 0.0]))[None]
    pixels = pixel_grid(6, 8)[None]
    origins, dirs = pixel_rays(K, T, pixels)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, 48))
    uv, z = project(transform_points(T, origins + 0.7 * dirs), K)
    assert torch.allclose(uv, pixels, atol=1e-4)
    assert (z > 0).all()


def test_look_at_axes_follow_opencv():
    T = look_at(torch.tensor([0.0, 0.0, -1.0]), torch.zeros(3))
    # the target is straight ahead at depth 1; world +y appears up (negative image y)
    assert torch.allclose(transform_points(T, torch.zeros(1, 3)), torch.tensor([[0.0, 0.0, 1.0]]))
    assert transform_points(T, torch.tensor([[0.0, 1.0, 0.0]]))[0, 1] < 0
    # looking straight along the up vector still gives a proper rotation
    T = look_at(torch.tensor([0.0, 2.0, 0.0]), torch.zeros(3))
    assert torch.allclose(T[:3, :3] @ T[:3, :3].T, torch.eye(3), atol=1e-6)


def test_intrinsics_from_fov():
    K = intrinsics_from_fov(90.0, 64, 128)
    assert math.isclose(K[0, 0].item(), 64.0, rel_tol=1e-6)
    assert K[0, 2].item() == 63.5 and K[1, 2].item() == 31.5
