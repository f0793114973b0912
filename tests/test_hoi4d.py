"""HOI4D: a fake release tree with the real layout and its quirks planted, converted to a Clip."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from hoirecon.cli import main
from hoirecon.data.clip import ClipError
from hoirecon.data.formats.hoi4d import crop_intrinsics, crop_resize, parse_frames, square_box
from hoirecon.data.load import load_clip
from hoirecon.registry import build

SEQ = "ZY20210800001/H1/C2/N31/S92/s02/T1"
H, W, N = 60, 80, 6


def make_release(root: Path, masks: str = "shift_mask", padded_poses: bool = False, objects_key: bool = False) -> Path:
    rng = np.random.default_rng(0)
    rgb_dir = root / "HOI4D_release" / SEQ / "align_rgb"
    anno = root / "HOI4D_annotations" / SEQ
    for d in (rgb_dir, anno / "2Dseg" / masks, anno / "objpose", anno / "handpose" / "refinehandpose_right"):
        d.mkdir(parents=True)
    v, u = np.mgrid[0:H, 0:W]
    for t in range(N):
        iio.imwrite(rgb_dir / f"{t:05d}.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        seg = np.zeros((H, W, 3), np.uint8)
        seg[(u - 40 - t) ** 2 + (v - 30) ** 2 < 100] = (255, 0, 0)  # object: red
        seg[(u - 25 - t) ** 2 + (v - 30) ** 2 < 49] = (0, 255, 0)  # right hand: green
        seg[:3, :3] = (0, 0, 255)  # another label, ignored
        iio.imwrite(anno / "2Dseg" / masks / f"{t:05d}.png", seg)
        pose = {"center": {"x": 0.01 * t, "y": 0.0, "z": 0.5}, "rotation": {"x": 0.1, "y": 0.2 * t, "z": 0.0}}
        pose["dimensions"] = {"length": 0.1, "width": 0.1, "height": 0.1}
        name = f"{t:05d}.json" if padded_poses else f"{t}.json"
        (anno / "objpose" / name).write_text(json.dumps({"objects" if objects_key else "dataList": [pose]}))
        hand = {"poseCoeff": np.full(48, 0.01 * t), "beta": np.arange(10) * 0.1, "trans": np.array([0.0, 0.0, 0.4])}
        with open(anno / "handpose" / "refinehandpose_right" / f"{t}.pickle", "wb") as f:
            pickle.dump(hand, f, protocol=2)
    (root / "camera_params" / "ZY20210800001").mkdir(parents=True)
    np.save(root / "camera_params" / "ZY20210800001" / "intrin.npy", np.array([[60.0, 0, 40], [0, 60, 30], [0, 0, 1]]))
    cad = root / "HOI4D_CAD_Model_for_release" / "rigid" / "Mug"
    cad.mkdir(parents=True)
    trimesh.creation.cylinder(radius=0.04, height=0.1).export(cad / "031.obj")
    return root


def load(root: Path, **cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build("clip_format", {"type": "hoi4d", "root": str(root), "size": 32, **cfg}).load(SEQ)


def errors_of(root: Path, **cfg) -> list[str]:
    with pytest.raises(ClipError) as info:
        load(root, **cfg)
    return info.value.report.errors


def test_converts_a_sequence(tmp_path):
    root = make_release(tmp_path / "hoi4d")
    clip = load(root, frames="1:5")
    assert clip.frame_names == ["00001", "00002", "00003", "00004"] and clip.category == "mug"
    assert clip.images.shape == (4, 32, 32, 3) and clip.hand_masks.shape == (4, 32, 32)
    assert clip.hand_masks.any(axis=(1, 2)).all() and clip.object_masks.any(axis=(1, 2)).all()
    assert not (clip.hand_masks & clip.object_masks).any()
    R = Rotation.from_euler("XYZ", [0.1, 0.2, 0.0]).as_matrix()
    np.testing.assert_allclose(clip.gt.T_cam_from_obj[0, :3, :3], R, atol=1e-6)  # frame 1
    np.testing.assert_allclose(clip.gt.T_cam_from_obj[0, :3, 3], [0.01, 0.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(clip.hands.global_orient[2], [0.03] * 3, atol=1e-6)  # frame 3
    np.testing.assert_allclose(clip.hands.betas, np.arange(10) * 0.1, atol=1e-6)
    assert clip.gt.object_vertices is not None and clip.fps == 15.0


def test_cropped_intrinsics_keep_projections():
    K = np.array([[60.0, 0, 40], [0, 60, 30], [0, 0, 1]])
    box = (10, -5, 50)
    Kc = crop_intrinsics(K, box, 25)
    X = np.array([0.05, -0.02, 0.5])
    u, v = (K @ X)[:2] / X[2]
    uc, vc = (Kc @ X)[:2] / X[2]
    s = 25 / 50
    assert uc == pytest.approx((u - 10 + 0.5) * s - 0.5) and vc == pytest.approx((v + 5 + 0.5) * s - 0.5)
    # a single lit pixel lands where the intrinsics say it does
    image = np.zeros((60, 80), bool)
    image[30, 40] = True
    crop = crop_resize(image.astype(np.uint8) * 255, (20, 10, 40), 40, order=0)
    assert np.argwhere(crop > 0).tolist() == [[20, 20]]


def test_square_box_and_frames():
    mask = np.zeros((20, 20), bool)
    mask[5:9, 2:12] = True
    assert square_box(mask, 1.0) == (2, 2, 10)
    assert square_box(np.zeros((4, 4), bool), 1.5) is None
    assert parse_frames("3:10:2") == slice(3, 10, 2) and parse_frames("5:") == slice(5, None)
    with pytest.raises(ValueError, match="a:b"):
        parse_frames("3-10")


def test_layout_quirks_are_handled(tmp_path):
    root = make_release(tmp_path / "hoi4d", masks="mask", padded_poses=True, objects_key=True)
    clip = load(root)
    assert len(clip) == N and clip.gt.T_cam_from_obj[3, 0, 3] == pytest.approx(0.03)


def test_malformed_hand_pickles_interpolate_or_fail(tmp_path):
    root = make_release(tmp_path / "hoi4d")
    hand_dir = root / "HOI4D_annotations" / SEQ / "handpose" / "refinehandpose_right"
    with open(hand_dir / "2.pickle", "wb") as f:
        pickle.dump({"poseCoeff": np.zeros(1), "beta": np.zeros(10), "trans": np.zeros(3)}, f)
    with pytest.warns(UserWarning, match=r"hand poses of frame\(s\) 2 \(poseCoeff 1 values\) interpolated"):
        clip = build("clip_format", {"type": "hoi4d", "root": str(root), "size": 32}).load(SEQ)
    np.testing.assert_allclose(clip.hands.global_orient[2], [0.02] * 3, atol=1e-6)  # between 0.01 and 0.03
    for t in (0, 1, 3):
        (hand_dir / f"{t}.pickle").write_bytes(b"garbage")
    errors = errors_of(root)
    assert len(errors) == 1 and errors[0].startswith(f"{hand_dir}: 4 of 6 hand poses missing or malformed: 0 (")


def test_each_missing_piece_is_named(tmp_path):
    root = make_release(tmp_path / "hoi4d")
    (root / "camera_params" / "ZY20210800001" / "intrin.npy").unlink()
    pose_file = root / "HOI4D_annotations" / SEQ / "objpose" / "4.json"
    pose_file.write_text('{"dataList": [{"center": {"x": 1}}]}')
    (root / "HOI4D_annotations" / SEQ / "2Dseg" / "shift_mask" / "00005.png").unlink()
    errors = errors_of(root)
    assert errors[0] == f"{root / 'HOI4D_annotations' / SEQ / '2Dseg' / 'shift_mask'}: no mask for frame(s) 5"
    assert errors[1] == f"{root / 'camera_params' / 'ZY20210800001' / 'intrin.npy'}: camera intrinsics not found"
    assert errors[2].startswith(f"{pose_file}: malformed object pose (KeyError")
    assert errors_of(root, frames="9:12") == [
        f"{root / 'HOI4D_release' / SEQ / 'align_rgb'}: frames 9:12 select nothing (6 frames)"
    ]


def test_bad_sequence_id_and_root(tmp_path):
    fmt = build("clip_format", {"type": "hoi4d", "root": str(tmp_path)})
    with pytest.raises(ClipError, match="not a HOI4D sequence id"):
        fmt.load("ZY2021/H1/C2")
    fmt = build("clip_format", {"type": "hoi4d", "root": str(tmp_path / "nope")})
    with pytest.raises(ClipError, match="HOI4D root not found"):
        fmt.load(SEQ)


def test_video_frames(tmp_path):
    import av

    root = make_release(tmp_path / "hoi4d")
    rgb_dir = root / "HOI4D_release" / SEQ / "align_rgb"
    frames = np.stack([iio.imread(p) for p in sorted(rgb_dir.glob("*.png"))])
    frames[:] = np.linspace(0, 255, W, dtype=np.uint8)[None, None, :, None]  # smooth: codec-friendly
    with av.open(str(rgb_dir / "image.mp4"), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    for p in rgb_dir.glob("*.png"):
        p.unlink()
    clip = load(root, frames="0:4")
    assert len(clip) == 4
    left, right = clip.images[0, 16, 2, 0], clip.images[0, 16, 29, 0]
    assert right > left  # the gradient survives decoding and cropping


def test_cli_converts_to_a_hoirecon_clip(tmp_path, capsys):
    root = make_release(tmp_path / "hoi4d")
    out = tmp_path / "clip"
    code = main(
        ["data", "hoi4d", "--root", str(root), "--seq", SEQ, "--frames", "0:4", "--size", "24", "--out", str(out)]
    )
    assert code == 0 and capsys.readouterr().out.strip() == f"wrote 4 frames of mug to {out}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_clip(out)
    assert clip.images.shape == (4, 24, 24, 3) and clip.category == "mug"
    assert main(["data", "hoi4d", "--root", str(root), "--seq", SEQ, "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # a usage error: argparse's exit code 2
        main(["data", "hoi4d", "--root", str(root)])
    assert usage.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: hoirecon data hoi4d: the following arguments are required: --seq, --out"
    )
