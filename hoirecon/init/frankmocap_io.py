"""Reading FrankMocap's per-frame hand predictions, and its weak-perspective camera.

FrankMocap writes ``mocap/{frame}_prediction_result.pkl`` per frame, with
``pred_output_list[i]['right_hand']`` holding ``pred_hand_pose`` (1, 48: global rotation then the 45
finger values, relative to MANO's mean hand), ``pred_hand_betas`` (1, 10), ``pred_camera``
(s, tx, ty), ``bbox_top_left`` (2,), ``bbox_scale_ratio`` and ``pred_joints_img`` (21, 3) in image
pixels (OpenPose order: joint 5 is the index MCP). An undetected hand is saved as ``{}``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoirecon.data.clip import Report

#: FrankMocap's crop is 224 px; its weak-perspective units are half of it.
CROP_HALF = 112.0
#: The index-finger MCP in FrankMocap's (OpenPose) joint order.
OPENPOSE_INDEX_MCP = 5


@dataclass
class MocapHand:
    """One frame's right-hand prediction."""

    pose: np.ndarray  # (48,) global rotation + 45 finger values, SMPL-X convention (relative to the mean)
    betas: np.ndarray  # (10,)
    camera: np.ndarray  # (3,) s, tx, ty
    bbox_top_left: np.ndarray  # (2,) pixels
    bbox_scale_ratio: float
    joints_img: np.ndarray | None  # (21, 3) pixels, or None when absent

    def pixels_per_metre(self) -> float:
        """Scale of the weak-perspective projection in image pixels per metre."""
        return float(self.camera[0]) * CROP_HALF / self.bbox_scale_ratio

    def weak_project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) hand-model points (no translation) -> (..., 2) image pixels, as FrankMocap draws them."""
        s, tx, ty = self.camera
        xy = (points[..., :2] + np.array([tx, ty])) * s * CROP_HALF / self.bbox_scale_ratio
        return xy + self.bbox_top_left + CROP_HALF / self.bbox_scale_ratio


def read_mocap_frame(report: Report, path: Path, hand: str = "right_hand") -> MocapHand | None:
    """The frame's prediction, or None when the hand was not detected (or the file is missing)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")  # noqa: S301 - the user's own FrankMocap output
        outputs = data["pred_output_list"]
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle can raise anything
        report.error(f"{path}: unreadable FrankMocap output ({type(exc).__name__}: {exc})")
        return None
    found = [o[hand] for o in outputs if isinstance(o, dict) and isinstance(o.get(hand), dict) and o[hand]]
    if not found:
        return None
    pred = found[0]
    try:
        joints = pred.get("pred_joints_img")
        return MocapHand(
            pose=np.asarray(pred["pred_hand_pose"], dtype=np.float64).reshape(48),
            betas=np.asarray(pred["pred_hand_betas"], dtype=np.float64).reshape(10),
            camera=np.asarray(pred["pred_camera"], dtype=np.float64).reshape(3),
            bbox_top_left=np.asarray(pred["bbox_top_left"], dtype=np.float64).reshape(2),
            bbox_scale_ratio=float(np.asarray(pred["bbox_scale_ratio"]).reshape(-1)[0]),
            joints_img=None if joints is None else np.asarray(joints, dtype=np.float64).reshape(-1, 3),
        )
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        report.error(f"{path}: malformed '{hand}' prediction ({type(exc).__name__}: {exc})")
        return None


def full_perspective_translation(
    anchor_model: np.ndarray, anchor_pixel: np.ndarray, pixels_per_metre: float, K: np.ndarray
) -> np.ndarray:
    """Translation putting a hand in front of a pinhole camera the way a weak-perspective fit saw it.

    The anchor joint (``anchor_model``, (3,), metres, hand rotated but not translated) goes to depth
    z = f / pixels_per_metre, on the ray through ``anchor_pixel`` (2,): the depth at which a
    perspective camera of focal f (pixels) shows the hand at the same scale. Returns transl (3,).
    """
    f = 0.5 * (K[0, 0] + K[1, 1])
    z = f / pixels_per_metre
    x = (anchor_pixel[0] - K[0, 2]) * z / K[0, 0]
    y = (anchor_pixel[1] - K[1, 2]) * z / K[1, 1]
    return np.array([x, y, z]) - anchor_model
