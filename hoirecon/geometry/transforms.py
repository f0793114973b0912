"""Rigid transforms as 4x4 matrices named ``T_to_from_from``: ``x_cam = T_cam_from_hand @ x_hand``.

Rotation conversions go through ``roma``; these helpers only add the homogeneous bookkeeping.
"""

from __future__ import annotations

import roma
import torch


def make_transform(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation and (..., 3) translation -> (..., 4, 4) transform."""
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def transform_points(T: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply (..., 4, 4) transforms to (..., N, 3) points -> (..., N, 3)."""
    return x @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def rotate_vectors(T: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate (..., N, 3) directions by the rotation part of (..., 4, 4) transforms."""
    return v @ T[..., :3, :3].transpose(-1, -2)


def invert_transform(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid (..., 4, 4) transforms, using R^T rather than a general inverse."""
    R_inv = T[..., :3, :3].transpose(-1, -2)
    t_inv = -(R_inv @ T[..., :3, 3:]).squeeze(-1)
    return make_transform(R_inv, t_inv)


def transform_from_rotvec(rotvec: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle and (..., 3) translation -> (..., 4, 4)."""
    return make_transform(roma.rotvec_to_rotmat(rotvec), t)


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) continuous rotation representation (Zhou et al. 2019) -> (..., 3, 3).

    The two 3-vectors are the first two columns before Gram-Schmidt.
    """
    return roma.special_gramschmidt(x.reshape(*x.shape[:-1], 2, 3).transpose(-1, -2))
