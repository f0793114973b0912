"""The ``none`` prior: no guidance. The fit is then driven by the clip's evidence alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hoirecon.registry import register


@register("prior", "none")
class NoPrior:
    @dataclass
    class Config:
        pass

    active = False
    resolution = 0

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def sds_loss(
        self,
        object_channels: torch.Tensor,
        hand_condition: torch.Tensor,
        categories: Sequence[str],
        step: int,
    ) -> torch.Tensor:
        return object_channels.sum() * 0.0
