"""hoirecon plugin: the ``smooth-surface`` prior. Importing this module registers it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hoirecon.priors.base import check_channels
from hoirecon.registry import register


def masked_tv(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (B, C, H, W) where both are inside ``mask`` (B, H, W)."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().sum(1)
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().sum(1)
    wx = mask[..., :, 1:] * mask[..., :, :-1]
    wy = mask[..., 1:, :] * mask[..., :-1, :]
    return ((dx * wx).sum() + (dy * wy).sum()) / (wx.sum() + wy.sum()).clamp(min=1.0)


@register("prior", "smooth-surface")
class SmoothSurfacePrior:
    """Smooth normals and depth inside the object's silhouette, and a solid (0/1) silhouette, in novel views."""

    @dataclass
    class Config:
        normal_weight: float = 0.05
        depth_weight: float = 0.05
        solid_weight: float = 0.01
        resolution: int = 32

    active = True

    def __init__(self, cfg: Config):
        for name in ("normal_weight", "depth_weight", "solid_weight"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
        self.cfg = cfg
        self.resolution = cfg.resolution

    def sds_loss(
        self,
        object_channels: torch.Tensor,
        hand_condition: torch.Tensor,
        categories: Sequence[str],
        step: int,
    ) -> torch.Tensor:
        check_channels(object_channels, hand_condition)
        coverage = (object_channels[:, 0] + 1) / 2  # (B, H, W) in [0, 1]
        inside = (coverage > 0.5).float().detach()  # which pixels count is not itself optimised
        normal, depth = object_channels[:, 1:4], object_channels[:, 4:5]
        return (
            self.cfg.normal_weight * masked_tv(normal, inside)
            + self.cfg.depth_weight * masked_tv(depth, inside)
            + self.cfg.solid_weight * (coverage * (1 - coverage)).mean()
        )
