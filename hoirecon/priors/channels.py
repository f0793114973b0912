"""Turning renders into the prior's channel images (layout in ``hoirecon.priors.base``).

One definition for both sides: the synthetic prior-training data (rasterised meshes) and the fit's
novel views (rasterised hand, volume-rendered object) build their channels here, so the prior
sees the same numbers in training and in guidance.

- masks: soft coverage m in [0, 1] -> 2m - 1;
- normals: camera-frame unit normals times m (0 on the background);
- depth: (z - z_ref) / DEPTH_SCALE, clamped to [-1, 1], blended to ``FAR`` on the background by m;
  z_ref is the mean depth of the hand (mask-weighted), so the channels do not depend on how far
  the camera is.
"""

from __future__ import annotations

import torch

#: Metres of depth per unit of the depth channel.
DEPTH_SCALE = 0.15
#: Depth channel value of the background (behind everything).
FAR = 1.0


def reference_depth(mask: torch.Tensor, depth: torch.Tensor, fallback: torch.Tensor | float) -> torch.Tensor:
    """(B,) mask-weighted mean depth of (B, H, W) renders; ``fallback`` (B,) or scalar where the mask is empty."""
    weight = mask.flatten(1)
    total = weight.sum(1)
    mean = (weight * depth.flatten(1)).sum(1) / total.clamp(min=1e-6)
    fallback = torch.as_tensor(fallback, dtype=depth.dtype, device=depth.device).expand_as(mean)
    return torch.where(total > 1e-3, mean, fallback)


def _depth_channel(mask: torch.Tensor, depth: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    relative = ((depth - z_ref[:, None, None]) / DEPTH_SCALE).clamp(-1, 1)
    return mask * relative + (1 - mask) * FAR


def hand_channels(
    mask: torch.Tensor, normal: torch.Tensor, depth: torch.Tensor, code: torch.Tensor, z_ref: torch.Tensor
) -> torch.Tensor:
    """Hand condition (B, 7, H, W) from mask (B, H, W), normal (B, H, W, 3), depth (B, H, W), code (B, H, W, 2)."""
    m = mask.clamp(0, 1)
    return torch.cat(
        [
            (2 * m - 1)[:, None],
            (normal * m[..., None]).permute(0, 3, 1, 2),
            _depth_channel(m, depth, z_ref)[:, None],
            (code * m[..., None]).permute(0, 3, 1, 2),
        ],
        dim=1,
    )


def object_channels(mask: torch.Tensor, normal: torch.Tensor, depth: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """Object channels (B, 5, H, W) from amodal mask (B, H, W), normal (B, H, W, 3), depth (B, H, W)."""
    m = mask.clamp(0, 1)
    return torch.cat(
        [(2 * m - 1)[:, None], (normal * m[..., None]).permute(0, 3, 1, 2), _depth_channel(m, depth, z_ref)[:, None]],
        dim=1,
    )


def no_hand(like: torch.Tensor) -> torch.Tensor:
    """The hand condition of an image without a hand, shaped like ``like`` (B, 7, H, W): what the
    prior is trained on when the hand is dropped (hand guidance), and what an empty render gives."""
    return hand_channels(
        like.new_zeros(like.shape[0], *like.shape[2:]),
        like.new_zeros(like.shape[0], *like.shape[2:], 3),
        like.new_zeros(like.shape[0], *like.shape[2:]),
        like.new_zeros(like.shape[0], *like.shape[2:], 2),
        like.new_zeros(like.shape[0]),
    )
