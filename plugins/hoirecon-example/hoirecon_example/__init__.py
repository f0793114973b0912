"""Example hoirecon plugin. Importing it registers the prior ``mask-area``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hoirecon.priors.base import check_channels
from hoirecon.registry import register


@register("prior", "mask-area")
class MaskAreaPrior:
    """Squared error between the object's mean soft coverage and ``target_fraction``.

    The object mask channel is in [-1, 1]; coverage = mean((mask + 1) / 2) over each image.
    """

    @dataclass
    class Config:
        target_fraction: float = 0.2
        weight: float = 1.0
        resolution: int = 32

    active = True

    def __init__(self, cfg: Config):
        if not 0.0 <= cfg.target_fraction <= 1.0:
            raise ValueError(f"target_fraction must be in [0, 1], got {cfg.target_fraction}")
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
        coverage = ((object_channels[:, 0] + 1.0) / 2.0).mean(dim=(1, 2))
        return self.cfg.weight * ((coverage - self.cfg.target_fraction) ** 2).mean()
