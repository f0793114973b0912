"""Fitting the hand model to 2D + 3D hand landmarks, in full perspective (docs/fit.md, "Initial hands").

Two stages, per clip:

1. Place each detected frame rigidly. MediaPipe's world landmarks are a metric, camera-aligned hand
   shape whose size is its own guess, so they are scaled to the hand model's palm and placed in front
   of the camera where they reproject onto the 2D landmarks (the full-perspective counterpart of
   DiffHOI's weak-perspective FrankMocap camera); the hand model's palm is aligned to them (Kabsch).
   Frames without a detection are interpolated.
2. Refine every frame's rotation and translation, the clip's one articulation (``shared_pose``; or
   one per frame) and its one ``betas`` together:
   reprojection of the 21 joints (robust, in units of the hand's size in pixels), bone directions of
   the placed 3D landmarks (scale-free, so the model's own size sets the depth), joint limits, a
   small pose and shape prior and temporal smoothness of the camera-frame joints. Detection scores
   weight the data terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from hoirecon.dataclass_config import ranged
from hoirecon.geometry.camera import project
from hoirecon.geometry.transforms import transform_from_rotvec, transform_points
from hoirecon.hand.joints import joint_limit_loss
from hoirecon.hand.landmarks import MP_BONES, MP_PALM, MP_TO_HAND
from hoirecon.init.base import HandFn, HandInit
from hoirecon.init.mediapipe_detect import Landmarks
from hoirecon.utils.interp import fill_missing_rotvecs, fill_missing_rows


@dataclass
class LandmarkFitConfig:
    #: Adam steps of the joint refinement (stage 2); 0 keeps the rigid placement and a flat hand.
    steps: int = ranged(300, at_least=0)
    lr: float = ranged(0.02, above=0)
    #: Weights of the terms (docs/fit.md): reprojection, 3D bone directions, joint limits, pose and
    #: shape size, temporal smoothness (per cm of joint motion between frames).
    w_reprojection: float = ranged(1.0, at_least=0)
    w_bones: float = ranged(1.0, at_least=0)
    w_limits: float = ranged(1.0, at_least=0)
    w_pose: float = ranged(0.01, at_least=0)
    w_betas: float = ranged(0.01, at_least=0)
    w_smooth: float = ranged(0.005, at_least=0)
    #: One articulation for the whole clip (a hand holding a rigid object keeps its grasp): every
    #: detected frame informs it, an undetected frame gets it instead of a flat hand, and each frame's
    #: rotation must fit one hand shape. On landmarks of MediaPipe's published accuracy it cut the
    #: rotation error 12-18 -> 5-7 degrees on three clips of four (docs/data.md, "From a video").
    #: False: one articulation per frame (the fit refines each frame's either way).
    shared_pose: bool = True


def hand_joints(hand_model: HandFn, hand_pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """(B, 21, 3) hand-frame joints in MediaPipe's order for (B, 45) poses and (B, 10) shapes."""
    zeros = torch.zeros(len(hand_pose), 3, dtype=hand_pose.dtype)
    out = hand_model(hand_pose=hand_pose, betas=betas, global_orient=zeros, transl=zeros)
    return out.joints[:, list(MP_TO_HAND)]


def palm_size(points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(..., 21, 3 or 2) landmarks -> (...) summed wrist-to-knuckle lengths: a pose-free hand size."""
    palm = points[..., list(MP_PALM[1:]), :] - points[..., :1, :]
    return ((palm**2).sum(-1) ** 0.5).sum(-1)


def rigid_start(hand_model: HandFn, landmarks: Landmarks, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each frame's rigid hand placement, and its 3D landmarks' bone directions, from the landmarks.

    MediaPipe's world landmarks (camera-aligned axes) are scaled to the hand model's palm and moved
    to the translation that best reprojects all 21 onto the 2D landmarks (linear least squares: a
    whole-hand size sets the depth, steadier than a full PnP on a hand 30 px wide); the model's palm
    is then aligned to theirs (Kabsch). Returns (N, 3) rotation vectors and (N, 3) translations of
    T_cam_from_hand (interpolated where undetected) and (N, 20, 3) unit bone directions (NaN where
    undetected).
    """
    rest = hand_joints(hand_model, torch.zeros(1, 45), torch.zeros(1, 10))[0].double()
    n = len(landmarks)
    rotvec, transl = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    bones = np.full((n, len(MP_BONES), 3), np.nan)
    for i in np.flatnonzero(landmarks.found):
        world = landmarks.world[i] * float(palm_size(rest.numpy()) / palm_size(landmarks.world[i]))
        if not landmarks.right[i]:
            # the hand is right (hoirecon fits right hands): a "left" detection read it with its depth
            # mirrored, which projects the same; mirroring the depth back gives a right hand
            world = world * np.array([1.0, 1.0, -1.0])
        placed = world + reprojecting_translation(world, landmarks.pixels[i], K[i])
        R, t = roma.rigid_points_registration(rest[list(MP_PALM)], torch.from_numpy(placed[list(MP_PALM)]))
        rotvec[i], transl[i] = roma.rotmat_to_rotvec(R).numpy(), t.numpy()
        bones[i] = _bone_directions(world)
    return fill_missing_rotvecs(rotvec), fill_missing_rows(transl), bones


def reprojecting_translation(points: np.ndarray, pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(3,) t minimising the algebraic reprojection error of (P, 3) camera-aligned points + t.

    u = fx (X + tx) / (Z + tz) + cx is linear in t once multiplied out:
    fx tx - (u - cx) tz = (u - cx) Z - fx X, and the same for v.
    """
    (fx, _, cx), (_, fy, cy) = K[0], K[1]
    du, dv = pixels[:, 0] - cx, pixels[:, 1] - cy
    zeros, ones = np.zeros_like(du), np.ones_like(du)
    A = np.concatenate([np.stack([fx * ones, zeros, -du], 1), np.stack([zeros, fy * ones, -dv], 1)])
    b = np.concatenate([du * points[:, 2] - fx * points[:, 0], dv * points[:, 2] - fy * points[:, 1]])
    return np.linalg.lstsq(A, b, rcond=None)[0]


def fit_to_landmarks(
    hand_model: HandFn, landmarks: Landmarks, K: np.ndarray, cfg: LandmarkFitConfig | None = None
) -> HandInit:
    """The hands of N frames from their landmarks and (N, 3, 3) intrinsics; at least one frame detected."""
    cfg = cfg or LandmarkFitConfig()
    found = landmarks.found
    if not found.any():
        raise ValueError("no frame has landmarks to fit")
    n = len(landmarks)
    with torch.no_grad():
        rotvec0, transl0, bones0 = rigid_start(hand_model, landmarks, K)

    weight = torch.as_tensor(np.where(found, landmarks.score, 0.0), dtype=torch.float32)
    pixels = torch.as_tensor(np.nan_to_num(landmarks.pixels), dtype=torch.float32)
    bones_target = torch.as_tensor(np.nan_to_num(bones0), dtype=torch.float32)
    # the hand's size in pixels per frame (interpolated where undetected): residuals are divided by it
    px_size = np.where(found, palm_size(np.nan_to_num(landmarks.pixels)), np.nan)
    px_size = torch.as_tensor(fill_missing_rows(px_size[:, None])[:, 0], dtype=torch.float32).clamp(min=1.0)
    K_t = torch.as_tensor(K, dtype=torch.float32)

    pose = torch.zeros(1 if cfg.shared_pose else n, 45, requires_grad=True)
    betas = torch.zeros(10, requires_grad=True)
    rotvec = torch.tensor(rotvec0, dtype=torch.float32, requires_grad=True)
    transl = torch.tensor(transl0, dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([pose, betas, rotvec, transl], lr=cfg.lr)
    for _ in range(cfg.steps):
        joints = transform_points(
            transform_from_rotvec(rotvec, transl), hand_joints(hand_model, pose.expand(n, -1), betas.expand(n, -1))
        )
        uv, _ = project(joints, K_t[:, None])
        residual = ((uv - pixels) ** 2).sum(-1).add(1e-4).sqrt() / px_size[:, None]  # (N, 21)
        reprojection = (_pseudo_huber(residual, 0.05).mean(-1) * weight).sum() / weight.sum()
        bones = ((_bone_directions(joints) - bones_target) ** 2).sum(-1).mean(-1)
        bones = (bones * weight).sum() / weight.sum()
        smooth = ((joints[1:] - joints[:-1]) * 100).pow(2).sum(-1).mean() if n > 1 else joints.sum() * 0
        loss = (
            cfg.w_reprojection * reprojection
            + cfg.w_bones * bones
            + cfg.w_limits * joint_limit_loss(pose).mean()
            + cfg.w_pose * pose.pow(2).sum(-1).mean()
            + cfg.w_betas * betas.pow(2).sum()
            + cfg.w_smooth * smooth
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return HandInit(pose.detach().expand(n, -1).clone(), betas.detach(), transform_from_rotvec(rotvec, transl))


def _bone_directions(joints: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(..., 21, 3) landmarks -> (..., 20, 3) unit bone directions, parent to child."""
    parents, children = [p for p, _ in MP_BONES], [c for _, c in MP_BONES]
    bones = joints[..., children, :] - joints[..., parents, :]
    if isinstance(bones, np.ndarray):
        return bones / np.linalg.norm(bones, axis=-1, keepdims=True)
    return bones / bones.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def _pseudo_huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Quadratic below ``delta``, linear above: one bad landmark does not drag the hand."""
    return delta**2 * (torch.sqrt(1 + (x / delta) ** 2) - 1)
