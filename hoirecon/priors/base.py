"""The channel layout every prior sees (its interface is ``hoirecon.contracts.Prior``).

A prior is asked, every few fit steps, how to change a render of the object seen from a novel view
next to the hand. The fit renders, at ``prior.resolution``:

- ``object_channels`` (B, 5, H, W): amodal mask in [-1, 1], normal xyz (camera frame, in [-1, 1]),
  depth relative to the mean hand depth (background at a fixed far value);
- ``hand_condition`` (B, 7, H, W): hand mask in [-1, 1], normal xyz, relative depth, and a
  2-channel code of where on the hand each pixel is;

and adds ``prior.sds_loss(object_channels, hand_condition, categories, step)`` to its loss. The
loss's gradient with respect to ``object_channels`` is the guidance (score distillation); its value
is only for logging. A prior's own weights stay frozen and out of the fit's checkpoint.
"""

from __future__ import annotations

import torch

OBJECT_CHANNELS: tuple[str, ...] = ("mask", "normal_x", "normal_y", "normal_z", "depth")
HAND_CHANNELS: tuple[str, ...] = ("mask", "normal_x", "normal_y", "normal_z", "depth", "code_u", "code_v")


def check_channels(object_channels: torch.Tensor, hand_condition: torch.Tensor) -> None:
    """Raise ValueError unless both tensors follow the layout above and agree in size."""
    if object_channels.ndim != 4 or object_channels.shape[1] != len(OBJECT_CHANNELS):
        n = len(OBJECT_CHANNELS)
        raise ValueError(f"object_channels must be (B, {n}, H, W), got {tuple(object_channels.shape)}")
    if hand_condition.ndim != 4 or hand_condition.shape[1] != len(HAND_CHANNELS):
        raise ValueError(f"hand_condition must be (B, {len(HAND_CHANNELS)}, H, W), got {tuple(hand_condition.shape)}")
    if object_channels.shape[0] != hand_condition.shape[0] or object_channels.shape[2:] != hand_condition.shape[2:]:
        raise ValueError(
            f"object_channels {tuple(object_channels.shape)} and hand_condition {tuple(hand_condition.shape)} disagree"
        )
