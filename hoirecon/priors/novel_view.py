"""Novel views for the prior: a uniformly random rotation looking at the hand origin.

Shared by the fit (its score-distillation views) and the prior data (its training views), so the
prior is trained on the views it later judges.
"""

from __future__ import annotations

import roma
import torch

from hoirecon.geometry.transforms import make_transform


def random_novel_view(
    distance: float, focal: float, resolution: int, generator: torch.Generator | None = None, jitter: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera at ``distance`` (+- ``jitter``) metres from the hand origin, looking at it, any orientation.

    Returns T_cam_from_hand (4, 4) and K (3, 3) with the given focal (pixels) and a centred
    principal point for a ``resolution`` x ``resolution`` image, as DiffHOI (docs/fit.md, section "Prior hook").
    """
    R = roma.random_rotmat(generator=generator)
    d = distance + jitter * (2 * torch.rand((), generator=generator) - 1)
    T = make_transform(R, torch.stack([torch.zeros(()), torch.zeros(()), d]))
    c = (resolution - 1) / 2
    K = torch.tensor([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]])
    return T, K
