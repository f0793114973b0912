"""Learnable corrections on the initial estimates, one small module per parameter group.

Rotations are axis-angle deltas (smooth around zero, where they start). Each module keeps its
initial values as buffers and its deltas as parameters, and returns the corrected values for a
batch of frame indices, so the fit can give every group its own learning rate and switch it off.
"""

from __future__ import annotations

import roma
import torch
from torch import nn

from hoirecon.geometry.transforms import make_transform


class RigidDeltas(nn.Module):
    """``T = exp(delta) @ T_init`` per frame (or one delta shared by all frames).

    T_init: (N, 4, 4). ``forward(frames (B,)) -> (B, 4, 4)``. With identity inits this is a learned
    per-frame (or shared) transform, e.g. T_hand_from_obj.
    """

    def __init__(self, T_init: torch.Tensor, shared: bool = False):
        super().__init__()
        self.register_buffer("T_init", T_init.float().clone())
        n = 1 if shared else len(T_init)
        self.shared = shared
        self.rotvec = nn.Parameter(torch.zeros(n, 3))
        self.transl = nn.Parameter(torch.zeros(n, 3))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        k = torch.zeros_like(frames) if self.shared else frames
        delta = make_transform(roma.rotvec_to_rotmat(self.rotvec[k]), self.transl[k])
        return delta @ self.T_init[frames]


class IntrinsicsDeltas(nn.Module):
    """Per-frame focal scale ``f = c^2 f_init`` (c starts at 1) and principal-point offsets (pixels).

    K_init: (N, 3, 3). ``forward(frames (B,)) -> (B, 3, 3)``.
    """

    def __init__(self, K_init: torch.Tensor):
        super().__init__()
        self.register_buffer("K_init", K_init.float().clone())
        self.focal_root = nn.Parameter(torch.ones(len(K_init)))
        self.principal_offset = nn.Parameter(torch.zeros(len(K_init), 2))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        K = self.K_init[frames]
        scale = self.focal_root[frames] ** 2
        offset = self.principal_offset[frames]
        # rows stacked anew rather than written in place, so autograd keeps what it needs
        row0 = torch.stack([K[:, 0, 0] * scale, K[:, 0, 1], K[:, 0, 2] + offset[:, 0]], dim=-1)
        row1 = torch.stack([K[:, 1, 0], K[:, 1, 1] * scale, K[:, 1, 2] + offset[:, 1]], dim=-1)
        return torch.stack([row0, row1, K[:, 2]], dim=1)


class HandDeltas(nn.Module):
    """Per-frame articulation deltas on the initial hand poses and one shape for the clip.

    hand_pose_init: (N, 45) axis-angle; betas_init: (10,). ``forward(frames) -> (hand_pose (B,45), betas (B,10))``.
    """

    def __init__(self, hand_pose_init: torch.Tensor, betas_init: torch.Tensor):
        super().__init__()
        self.register_buffer("hand_pose_init", hand_pose_init.float().clone())
        self.register_buffer("betas_init", betas_init.float().clone())
        self.pose_delta = nn.Parameter(torch.zeros_like(self.hand_pose_init))
        self.betas = nn.Parameter(betas_init.float().clone())

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = self.hand_pose_init[frames] + self.pose_delta[frames]
        return pose, self.betas.expand(len(frames), -1)
