"""What every initialiser returns, and the two operations they share: folding MANO's global pose into
the camera transform, and temporal smoothing.

The hand model is any callable ``hand_model(hand_pose=(B,45), betas=(B,10), global_orient=(B,3),
transl=(B,3))`` returning an object with ``joints`` (B, J, 3) whose joint 0 is MANO's root (the
wrist), as ``hoirecon.hand`` provides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import roma
import torch

from hoirecon.geometry.transforms import make_transform, transform_from_rotvec, transform_points

HandFn = Callable[..., Any]


@dataclass
class HandInit:
    """Initial values for a fit, in the fit's convention: the hand frame is MANO's model frame.

    hand_pose (N, 45) axis-angle in the hand model's convention; betas (10,); T_cam_from_hand (N, 4, 4);
    notes: what the initialiser had to do (interpolated frames, smoothing), for the run's report;
    frame_weights (N,) optional confidence per frame in [0, 1], multiplied into the clip's.
    """

    hand_pose: torch.Tensor
    betas: torch.Tensor
    T_cam_from_hand: torch.Tensor
    notes: list[str] = field(default_factory=list)
    frame_weights: torch.Tensor | None = None


def root_joint(hand_model: HandFn, betas: torch.Tensor) -> torch.Tensor:
    """(B, 3) rest position of MANO's root joint for shapes (B, 10): what global_orient rotates about."""
    b = betas.shape[0]
    zeros3 = torch.zeros(b, 3, dtype=betas.dtype)
    out = hand_model(hand_pose=torch.zeros(b, 45, dtype=betas.dtype), betas=betas, global_orient=zeros3, transl=zeros3)
    return out.joints[:, 0]


def fold_global_pose(
    global_orient: torch.Tensor, transl: torch.Tensor, root: torch.Tensor, T_cam_from_mano: torch.Tensor | None = None
) -> torch.Tensor:
    """T_cam_from_hand (N, 4, 4) equal to MANO's global pose (then ``T_cam_from_mano``, default identity).

    MANO places a model-frame point x at R (x - j0) + j0 + t, R = exp(global_orient), j0 = ``root``:
    the rigid transform [R | j0 + t - R j0].
    """
    R = roma.rotvec_to_rotmat(global_orient)
    t = root + transl - (R @ root[..., None])[..., 0]
    T = make_transform(R, t)
    return T if T_cam_from_mano is None else T_cam_from_mano @ T


def smooth(init: HandInit, hand_model: HandFn, steps: int = 200, weight: float = 100.0, lr: float = 1e-3) -> HandInit:
    """DiffHOI's smoothing: per-frame deltas on pose and camera minimising
    ``weight * |J_{t+1} - J_t| + |deltas|_1`` over camera-frame joints (docs/fit.md, section "Initial hands")."""
    if steps <= 0 or len(init.hand_pose) < 2:
        return init
    n = len(init.hand_pose)
    pose_delta = torch.zeros_like(init.hand_pose, requires_grad=True)
    rot_delta = torch.zeros(n, 3, requires_grad=True)
    transl_delta = torch.zeros(n, 3, requires_grad=True)
    opt = torch.optim.AdamW([pose_delta, rot_delta, transl_delta], lr=lr, weight_decay=0.0)
    betas = init.betas.expand(n, -1)
    zeros3 = torch.zeros(n, 3)

    def current() -> tuple[torch.Tensor, torch.Tensor]:
        pose = init.hand_pose + pose_delta
        T = transform_from_rotvec(rot_delta, transl_delta) @ init.T_cam_from_hand
        return pose, T

    for _ in range(steps):
        pose, T = current()
        joints = transform_points(
            T, hand_model(hand_pose=pose, betas=betas, global_orient=zeros3, transl=zeros3).joints
        )
        loss = weight * (joints[1:] - joints[:-1]).norm(dim=-1).mean()
        loss = loss + pose_delta.abs().mean() + rot_delta.abs().mean() + transl_delta.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pose, T = current()
    notes = [*init.notes, f"smoothed over time ({steps} steps)"]
    return HandInit(pose.detach(), init.betas, T.detach(), notes, init.frame_weights)
