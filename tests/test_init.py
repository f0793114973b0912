"""Initialisers: global-pose folding, provided / ground-truth / FrankMocap hands, smoothing, interpolation."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

from hoirecon.data.clip import Clip, ClipError, ClipGT, HandParams
from hoirecon.errors import DataError
from hoirecon.geometry.transforms import transform_points
from hoirecon.init.base import fold_global_pose, root_joint, smooth
from hoirecon.registry import build
from hoirecon.utils.interp import fill_missing_rotvecs, fill_missing_rows

REST = torch.tensor(np.random.default_rng(0).normal(size=(21, 3)) * 0.03 + [0.09, 0.0, 0.0], dtype=torch.float32)
ROOT = torch.tensor([0.095, 0.006, 0.006])
REST[0] = ROOT


@dataclass
class Out:
    joints: torch.Tensor


class ToyHand:
    """MANO's global-pose semantics on fixed joints: x -> R (x - j0) + j0 + t; the pose bends joint 3."""

    hands_mean = torch.full((45,), 0.1)

    def __call__(self, hand_pose, betas, global_orient, transl):
        b = hand_pose.shape[0]
        joints = REST.expand(b, 21, 3).clone()
        joints[:, 3] = joints[:, 3] + hand_pose[:, :3] * 0.01
        R = roma.rotvec_to_rotmat(global_orient)
        return Out((joints - ROOT) @ R.transpose(1, 2) + ROOT + transl[:, None])


def hands(n: int, seed: int = 0) -> HandParams:
    rng = np.random.default_rng(seed)
    return HandParams(
        rng.normal(size=(n, 45)).astype(np.float32) * 0.1,
        np.zeros(10, np.float32),
        rng.normal(size=(n, 3)).astype(np.float32) * 0.5,
        (rng.normal(size=(n, 3)) * 0.05 + [0, 0, 0.5]).astype(np.float32),
    )


def clip_with(n: int = 4, **kwargs) -> Clip:
    K = np.tile(np.array([[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]], np.float32), (n, 1, 1))
    masks = np.zeros((n, 8, 8), bool)
    return Clip(
        Path("clip"), [f"{i:06d}" for i in range(n)], np.zeros((n, 8, 8, 3), np.uint8), masks, masks, K, "mug", **kwargs
    )


def camera_joints(h: HandParams, T: np.ndarray | None = None) -> torch.Tensor:
    out = ToyHand()(torch.tensor(h.hand_pose), None, torch.tensor(h.global_orient), torch.tensor(h.transl)).joints
    return out if T is None else transform_points(torch.tensor(T), out)


def model_joints(pose: torch.Tensor) -> torch.Tensor:
    zeros = torch.zeros(len(pose), 3)
    return ToyHand()(pose, None, zeros, zeros).joints


def test_fold_global_pose_reproduces_mano_global_pose():
    h = hands(5)
    root = root_joint(ToyHand(), torch.zeros(1, 10)).expand(5, 3)
    assert torch.allclose(root[0], ROOT)
    T = fold_global_pose(torch.tensor(h.global_orient), torch.tensor(h.transl), root)
    assert torch.allclose(transform_points(T, model_joints(torch.tensor(h.hand_pose))), camera_joints(h), atol=1e-6)


def test_provided_initializer_composes_with_the_clip_camera():
    h = hands(4)
    T_clip = np.tile(np.eye(4, dtype=np.float32), (4, 1, 1))
    T_clip[:, :3, 3] = [0.1, -0.2, 0.3]
    init = build("initializer", "provided").initialize(clip_with(hands=h, T_cam_from_hand=T_clip), ToyHand())
    got = transform_points(init.T_cam_from_hand, model_joints(init.hand_pose))
    assert torch.allclose(got, camera_joints(h, T_clip), atol=1e-6)
    with pytest.raises(DataError, match="clip: the clip has no initial hands"):
        build("initializer", "provided").initialize(clip_with(), ToyHand())


def test_groundtruth_initializer():
    h = hands(3, seed=2)
    init = build("initializer", "groundtruth").initialize(clip_with(n=3, gt=ClipGT(hands=h)), ToyHand())
    assert torch.allclose(
        transform_points(init.T_cam_from_hand, model_joints(init.hand_pose)), camera_joints(h), atol=1e-6
    )
    with pytest.raises(DataError, match="no ground-truth hands"):
        build("initializer", "groundtruth").initialize(clip_with(n=3), ToyHand())


def write_mocap(folder: Path, clip: Clip, h: HandParams, skip: tuple[int, ...] = ()) -> None:
    """FrankMocap outputs for hands ``h`` seen by the clip's cameras: pose relative to the mean, weak camera."""
    folder.mkdir(parents=True, exist_ok=True)
    joints = camera_joints(h).numpy()
    for i, name in enumerate(clip.frame_names):
        if i in skip:
            data = {"pred_output_list": [{"left_hand": {}, "right_hand": {}}]}
        else:
            K = clip.K[i]
            anchor = joints[i, 1]  # our anchor joint, the index MCP
            pixel = (K @ anchor)[:2] / anchor[2]
            ratio = 2.0
            s = K[0, 0] / anchor[2] * ratio / 112.0  # pixels per metre f / z
            joints_img = np.zeros((21, 3))
            joints_img[5, :2] = pixel  # OpenPose order: joint 5 is the index MCP
            pose = np.concatenate([h.global_orient[i], h.hand_pose[i] - ToyHand.hands_mean.numpy()])
            right = {
                "pred_hand_pose": pose[None],
                "pred_hand_betas": h.betas[None],
                "pred_camera": np.array([s, 0.0, 0.0]),
                "bbox_top_left": np.array([10.0, 20.0]),
                "bbox_scale_ratio": ratio,
                "pred_joints_img": joints_img,
            }
            data = {"pred_output_list": [{"left_hand": {}, "right_hand": right}]}
        with open(folder / f"{name}_prediction_result.pkl", "wb") as f:
            pickle.dump(data, f)


def test_frankmocap_initializer_recovers_camera_frame_hands(tmp_path):
    clip = clip_with(n=5)
    clip.path = tmp_path
    h = hands(5, seed=3)
    write_mocap(tmp_path / "mocap", clip, h, skip=(2,))
    init = build("initializer", {"type": "frankmocap", "smooth_steps": 0}).initialize(clip, ToyHand())
    got = transform_points(init.T_cam_from_hand, model_joints(init.hand_pose))
    true = camera_joints(h)
    for i in (0, 1, 3, 4):
        assert torch.allclose(got[i], true[i], atol=1e-4)
    assert init.notes == ["FrankMocap found no hand in frame(s) 000002: interpolated"]
    assert (got[2] - true[2]).norm(dim=-1).max() < 0.2  # interpolated, roughly in place


def test_frankmocap_errors(tmp_path):
    clip = clip_with(n=3)
    clip.path = tmp_path
    with pytest.raises(ClipError, match="mocap: FrankMocap output folder not found"):
        build("initializer", "frankmocap").initialize(clip, ToyHand())
    write_mocap(tmp_path / "mocap", clip, hands(3), skip=(0, 1, 2))
    with pytest.raises(ClipError, match="no right hand detected in any of the 3 frames"):
        build("initializer", "frankmocap").initialize(clip, ToyHand())
    (tmp_path / "mocap" / "000001_prediction_result.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ClipError, match="000001_prediction_result.pkl: unreadable FrankMocap output"):
        build("initializer", "frankmocap").initialize(clip, ToyHand())


def test_smoothing_reduces_jitter():
    n = 8
    rng = np.random.default_rng(0)
    h = HandParams(
        (rng.normal(size=(n, 45)) * 0.3).astype(np.float32),
        np.zeros(10, np.float32),
        np.zeros((n, 3), np.float32),
        (np.array([0, 0, 0.5]) + rng.normal(size=(n, 3)) * 0.005).astype(np.float32),  # 5 mm of jitter
    )
    init = build("initializer", "provided").initialize(clip_with(n=n, hands=h), ToyHand())
    smoothed = smooth(init, ToyHand(), steps=150)

    def jitter(i) -> float:
        j = transform_points(i.T_cam_from_hand, model_joints(i.hand_pose))
        return float((j[1:] - j[:-1]).norm(dim=-1).mean())

    assert jitter(smoothed) < 0.5 * jitter(init)
    assert smoothed.notes[-1] == "smoothed over time (150 steps)"


def test_interpolation_of_missing_frames():
    rows = np.array([[0.0, 1.0], [np.nan, np.nan], [2.0, 3.0], [np.nan, np.nan]])
    np.testing.assert_allclose(fill_missing_rows(rows), [[0, 1], [1, 2], [2, 3], [2, 3]])
    rot = np.array([[0.0, 0.0, 0.0], [np.nan] * 3, [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(fill_missing_rotvecs(rot)[1], [0.0, 0.0, 0.5], atol=1e-9)
    with pytest.raises(ValueError, match="no frame"):
        fill_missing_rows(np.full((2, 2), np.nan))
