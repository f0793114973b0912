"""The built-in hand's skeleton, joint order, local joint axes and anatomical limits.

Joint order is MANO's: 0 wrist; index 1-3; middle 4-6; pinky 7-9; ring 10-12; thumb 13-15. The hand
model adds five fingertips as joints 16-20 in the order thumb, index, middle, ring, pinky.

Each finger joint (1-15) has three local axes in the rest pose: flexion (positive curls the finger
towards the palm), abduction (sideways) and twist (along the bone). A joint's axis-angle rotation is
decomposed on them to apply limits; for the built-in hand's flat rest pose these limits are
anatomical ranges in radians.
"""

from __future__ import annotations

import numpy as np
import torch

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
FINGER_CHAINS: dict[str, tuple[int, int, int]] = {
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "pinky": (7, 8, 9),
    "ring": (10, 11, 12),
    "thumb": (13, 14, 15),
}
TIP_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
#: Index of the index-finger MCP (DiffHOI's "joint 5" in its own order): the anchor for MPJPE and depth.
INDEX_MCP = 1

PALM_NORMAL = np.array([0.0, -1.0, 0.0])  # the palm faces -y in the rest pose
THUMB_CURL = np.array([-0.25, -0.55, -0.80])  # where the thumb tip goes when it flexes

# (flexion, abduction, twist) limits in radians, per joint 1..15
_FINGER = {1: ((-0.35, 1.6), (-0.35, 0.35), (-0.2, 0.2)), 2: ((-0.05, 1.9), (-0.08, 0.08), (-0.08, 0.08))}
_FINGER[3] = ((-0.1, 1.4), (-0.08, 0.08), (-0.08, 0.08))
_THUMB = {1: ((-0.5, 1.0), (-0.6, 0.8), (-0.5, 0.5)), 2: ((-0.2, 1.0), (-0.15, 0.15), (-0.2, 0.2))}
_THUMB[3] = ((-0.3, 1.4), (-0.08, 0.08), (-0.08, 0.08))


def skeleton() -> tuple[np.ndarray, np.ndarray]:
    """Rest joints (16, 3) and fingertip points (5, 3, thumb..pinky) of the built-in hand, metres."""
    wrist = np.array([0.095, 0.006, 0.006])
    joints = np.zeros((16, 3))
    joints[0] = wrist
    # finger MCP offsets from the wrist, segment lengths (proximal, middle, distal), sideways splay
    fingers = {
        "index": ([-0.084, -0.001, 0.029], [0.040, 0.024, 0.021], 0.05),
        "middle": ([-0.088, -0.001, 0.007], [0.045, 0.028, 0.023], 0.0),
        "ring": ([-0.084, -0.002, -0.015], [0.042, 0.027, 0.022], -0.05),
        "pinky": ([-0.074, -0.004, -0.036], [0.033, 0.020, 0.019], -0.12),
    }
    tips = {}
    for name, (offset, lengths, splay) in fingers.items():
        direction = np.array([-1.0, 0.0, splay])
        direction /= np.linalg.norm(direction)
        p = wrist + np.array(offset)
        for joint, length in zip(FINGER_CHAINS[name], lengths):
            joints[joint] = p
            p = p + direction * length
        tips[name] = p
    # the thumb leaves the palm forwards, outwards (+z) and down (palm side), then bends forwards
    p = wrist + np.array([-0.022, -0.010, 0.020])
    first = np.array([-0.62, -0.30, 0.72])
    then = np.array([-0.85, -0.25, 0.46])
    for i, (joint, length) in enumerate(zip(FINGER_CHAINS["thumb"], [0.040, 0.033, 0.027])):
        joints[joint] = p
        d = first if i == 0 else then
        p = p + d / np.linalg.norm(d) * length
    tips["thumb"] = p
    return joints, np.stack([tips[name] for name in TIP_NAMES])


def joint_axes() -> np.ndarray:
    """(15, 3, 3): rows flexion, abduction, twist (unit vectors) of joints 1..15 in the rest pose."""
    joints, tips = skeleton()
    tip_of = {FINGER_CHAINS[name][2]: tips[i] for i, name in enumerate(TIP_NAMES)}
    axes = np.zeros((15, 3, 3))
    for j in range(1, 16):
        child = tip_of.get(j)
        if child is None:
            child = joints[j + 1]
        twist = child - joints[j]
        twist /= np.linalg.norm(twist)
        towards = THUMB_CURL if j >= 13 else PALM_NORMAL
        flex = np.cross(twist, towards)
        flex /= np.linalg.norm(flex)
        abduction = np.cross(twist, flex)
        axes[j - 1] = np.stack([flex, abduction, twist])
    return axes


def joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limits (15, 3) on the (flexion, abduction, twist) components of joints 1..15."""
    lower, upper = np.zeros((15, 3)), np.zeros((15, 3))
    for j in range(1, 16):
        table = _THUMB if j >= 13 else _FINGER
        position = (j - 1) % 3 + 1
        for k, (lo, hi) in enumerate(table[position]):
            lower[j - 1, k], upper[j - 1, k] = lo, hi
    return lower, upper


def local_components(hand_pose: torch.Tensor) -> torch.Tensor:
    """(B, 45) axis-angle -> (B, 15, 3) components along each joint's (flexion, abduction, twist)."""
    axes = torch.as_tensor(joint_axes(), dtype=hand_pose.dtype, device=hand_pose.device)
    return torch.einsum("jkc,bjc->bjk", axes, hand_pose.reshape(-1, 15, 3))


def from_local_components(components: torch.Tensor) -> torch.Tensor:
    """Inverse of ``local_components``: (B, 15, 3) -> (B, 45)."""
    axes = torch.as_tensor(joint_axes(), dtype=components.dtype, device=components.device)
    return torch.einsum("jkc,bjk->bjc", axes, components).reshape(-1, 45)


def joint_limit_loss(hand_pose: torch.Tensor) -> torch.Tensor:
    """(B,) sum of squared excess beyond the limits (0 inside them); differentiable."""
    lower, upper = (torch.as_tensor(x, dtype=hand_pose.dtype, device=hand_pose.device) for x in joint_limits())
    c = local_components(hand_pose)
    excess = (lower - c).clamp(min=0) + (c - upper).clamp(min=0)
    return (excess**2).sum(dim=(1, 2))


def sample_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 45) random plausible poses inside the limits: a curl level per finger plus small noise."""
    lower, upper = joint_limits()
    curl = rng.uniform(0, 1, size=(n, 5, 1))  # per finger, shared by its three joints
    comps = np.zeros((n, 15, 3))
    for f in range(5):
        rows = slice(3 * f, 3 * f + 3)
        flex_lo, flex_hi = np.maximum(lower[rows, 0], 0), upper[rows, 0]
        comps[:, rows, 0] = flex_lo + (curl[:, f] + rng.normal(0, 0.1, (n, 3))).clip(0, 1) * (flex_hi - flex_lo)
        for k in (1, 2):
            comps[:, rows, k] = rng.uniform(lower[rows, k], upper[rows, k], (n, 3)) * 0.5
    return from_local_components(torch.from_numpy(comps)).numpy()
