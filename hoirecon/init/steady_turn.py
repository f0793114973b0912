"""A steady turn: the frames whose hand rotation disagrees with the clip's, replaced (docs/data.md).

MediaPipe reads a hand's 3D orientation badly on some frames (flipped, or tens of degrees off), and
frames without a detection are only interpolated; a rigid object tied to such hands cannot meet every
frame's mask, and the fit cannot turn a hand back by tens of degrees (docs/benchmarks.md, "What the
video chain lacks"). Over a short clip the hand usually turns steadily relative to the camera (a
camera moving around a still hand, a hand turning an object): R(t) = exp((t - a) w) R_a at one
angular velocity w (camera frame). RANSAC over pairs of detected frames finds the turn that most of
the detection weight agrees with (within ``inlier_degrees``), refined on those frames; if they carry
at least ``min_agreement`` of the weight, every other frame takes the turn's rotation, about the
hand's centre so that the hand stays where the landmarks put it. Frames that agree keep their own.
Written here: no library fits a constant-velocity rotation robustly (roma gives the rotation maths).
"""

from __future__ import annotations

from dataclasses import dataclass

import roma
import torch

#: At most this many frame pairs are tried (evenly spread over all pairs in a long clip).
MAX_PAIRS = 400


@dataclass
class SteadyTurn:
    """The turn found: rotations (N, 3, 3) at every frame, which frames agree with it (N,) and the
    share of the detection weight they carry."""

    rotations: torch.Tensor
    agrees: torch.Tensor
    agreement: float


def turn_at(R_a: torch.Tensor, omega: torch.Tensor, a: float, frames: torch.Tensor) -> torch.Tensor:
    """(F, 3, 3) rotations exp((t - a) omega) R_a of a steady turn at frames t (F,)."""
    return roma.rotvec_to_rotmat(omega[None] * (frames - a)[:, None]) @ R_a


def degrees_between(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """(...) geodesic angles in degrees between rotations (..., 3, 3)."""
    return torch.rad2deg(roma.rotmat_geodesic_distance(A, B))


def steady_turn(rotations: torch.Tensor, weights: torch.Tensor, inlier_degrees: float = 25.0) -> SteadyTurn | None:
    """The steady turn most of the weight agrees with, for camera-frame rotations (N, 3, 3) and frame
    weights (N,) (0 for a frame without a detection); None with fewer than two weighted frames."""
    R = rotations.double()
    w = weights.double()
    frames = torch.arange(len(R), dtype=torch.float64)
    known = torch.nonzero(w > 0).squeeze(1)
    if len(known) < 2:
        return None
    pairs = torch.combinations(known, 2)
    if len(pairs) > MAX_PAIRS:
        pairs = pairs[torch.linspace(0, len(pairs) - 1, MAX_PAIRS).round().long()]
    best, best_score = None, -1.0
    for a, b in pairs.tolist():
        omega = roma.rotmat_to_rotvec(R[b] @ R[a].T) / (b - a)
        near = degrees_between(turn_at(R[a], omega, a, frames[known]), R[known]) < inlier_degrees
        score = float(w[known][near].sum())
        if score > best_score:
            best, best_score = (a, omega, known[near]), score
    a, omega, agree = best
    # refined on the frames that agree: the rotation at the first of the pair and the velocity
    R_a, omega = _refine(R, w, agree, R[a], omega, a)
    model = turn_at(R_a, omega, a, frames)
    agrees = (w > 0) & (degrees_between(model, R) < inlier_degrees)
    return SteadyTurn(model.to(rotations.dtype), agrees, float(w[agrees].sum() / w.sum()))


def _refine(
    R: torch.Tensor,
    w: torch.Tensor,
    frames: torch.Tensor,
    R_a: torch.Tensor,
    omega: torch.Tensor,
    a: float,
    steps: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least squares of the geodesic error over ``frames``: the turn's R_a and omega."""
    delta = torch.zeros(3, dtype=R.dtype, requires_grad=True)
    velocity = omega.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([delta, velocity], lr=0.01)
    t = frames.to(R.dtype)
    for _ in range(steps):
        start = roma.rotvec_to_rotmat(delta) @ R_a
        model = turn_at(start, velocity, a, t)
        residual = roma.rotmat_to_rotvec(model.transpose(1, 2) @ R[frames])
        loss = (w[frames] * residual.pow(2).sum(-1)).sum() / w[frames].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return roma.rotvec_to_rotmat(delta) @ R_a, velocity.detach()


def turned_about(T_cam_from_hand: torch.Tensor, rotations: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(N, 4, 4) T_cam_from_hand with rotations (N, 3, 3), turned about the hand-frame points ``centre``
    (N, 3): each stays where it was in the camera frame."""
    T = T_cam_from_hand.clone()
    where = (T[:, :3, :3] @ centre[..., None])[..., 0] + T[:, :3, 3]
    T[:, :3, :3] = rotations
    T[:, :3, 3] = where - (rotations @ centre[..., None])[..., 0]
    return T
