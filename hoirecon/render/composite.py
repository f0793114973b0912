"""Depth-ordered compositing of the hand and object layers into per-pixel label probabilities.

Each layer has an opacity (mask) and a depth per pixel. Which layer is in front is a soft decision,
``sigmoid((depth_object - depth_hand) / temperature)``, so gradients reach both depths; the front
layer's opacity is used first and the back layer shows through where the front is transparent. The
three outputs (hand, object, background) are non-negative and sum to one at every pixel, and they are
compared with the masks' one-hot labels (DiffHOI's occlusion-aware mask loss).
"""

from __future__ import annotations

import torch


def composite_labels(
    hand_alpha: torch.Tensor,
    hand_depth: torch.Tensor,
    object_alpha: torch.Tensor,
    object_depth: torch.Tensor,
    temperature: float = 0.002,
) -> torch.Tensor:
    """Label probabilities (..., 3) as [hand, object, background] from two layers of shape (...).

    Depths are camera z in metres; ``temperature`` (metres) sets how sharp the ordering is.
    """
    hand_in_front = torch.sigmoid((object_depth - hand_depth) / temperature)
    hand = hand_alpha * (hand_in_front + (1 - hand_in_front) * (1 - object_alpha))
    obj = object_alpha * ((1 - hand_in_front) + hand_in_front * (1 - hand_alpha))
    background = (1 - hand_alpha) * (1 - object_alpha)
    return torch.stack([hand, obj, background], dim=-1)
