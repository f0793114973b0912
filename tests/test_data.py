"""Clip formats: round trips through hoirecon's and DiffHOI's layouts, precise errors, fuzzing."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

from hoirecon.cli import main
from hoirecon.data.clip import Clip, ClipError, ClipGT, HandParams
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.load import load_clip
from hoirecon.errors import DataError, HoireconWarning

H, W = 32, 40


def make_clip(n: int = 4, seed: int = 0) -> Clip:
    """A small clip: noisy images, a hand disc partly covering an object disc, per-frame K and poses."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W]
    hand = np.stack([(u - 12 - i) ** 2 + (v - 16) ** 2 < 36 for i in range(n)])
    obj = np.stack([(u - 24) ** 2 + (v - 16) ** 2 < 49 for _ in range(n)]) & ~hand
    K = np.tile(np.array([[50.0, 0, (W - 1) / 2], [0, 50.0, (H - 1) / 2], [0, 0, 1]], np.float32), (n, 1, 1))
    T = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    T[:, 2, 3] = 0.5 + 0.01 * np.arange(n)
    hands = HandParams(
        rng.normal(size=(n, 45)).astype(np.float32) * 0.1,
        rng.normal(size=10).astype(np.float32),
        np.zeros((n, 3), np.float32),
        np.zeros((n, 3), np.float32),
    )
    box = trimesh.creation.box((0.05, 0.08, 0.05))
    gt = ClipGT(
        object_vertices=np.asarray(box.vertices, np.float32),
        object_faces=np.asarray(box.faces),
        T_hand_from_obj=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)),
    )
    return Clip(
        path=Path("mem"),
        frame_names=[f"{i:06d}" for i in range(n)],
        images=rng.integers(0, 256, size=(n, H, W, 3), dtype=np.uint8),
        hand_masks=hand,
        object_masks=obj,
        K=K,
        category="mug",
        fps=15.0,
        T_cam_from_hand=T,
        hands=hands,
        gt=gt,
    )


def write_diffhoi(clip: Clip, path: Path, suffix: str = "", per_frame_singleton: bool = True) -> Path:
    """The same clip in DiffHOI's preprocessed layout (hA (N,1,45), K_pix (N,4,4), text.txt, ...)."""
    for sub in ("image", "hand_mask", "obj_mask"):
        (path / sub).mkdir(parents=True)
    for i in range(len(clip)):
        name = f"{i:05d}.png"
        iio.imwrite(path / "image" / name, clip.images[i])
        iio.imwrite(path / "hand_mask" / name, clip.hand_masks[i].astype(np.uint8) * 255)
        iio.imwrite(path / "obj_mask" / name, clip.object_masks[i].astype(np.uint8) * 255)
    K4 = np.tile(np.eye(4, dtype=np.float32), (len(clip), 1, 1))
    K4[:, :3, :3] = clip.K
    np.savez(path / f"cameras_hoi{suffix}.npz", cTw=clip.T_cam_from_hand, K_pix=K4)
    hA = clip.hands.hand_pose[:, None] if per_frame_singleton else clip.hands.hand_pose
    beta = np.tile(clip.hands.betas, (len(clip), 1, 1))
    np.savez(path / f"hands{suffix}.npz", hA=hA, beta=beta)
    (path / "text.txt").write_text("Mug\n")
    trimesh.Trimesh(clip.gt.object_vertices, clip.gt.object_faces).export(path / "oObj.obj")
    np.savez(path / "eval_poses.npz", hTo=clip.gt.T_hand_from_obj)
    return path


@pytest.fixture
def clip_dir(tmp_path) -> Path:
    return write_clip(make_clip(), tmp_path / "clip")


def load_quietly(path, fmt="auto") -> Clip:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_clip(path, fmt)


def problems(path, fmt="auto") -> list[str]:
    with pytest.raises(ClipError) as info:
        load_quietly(path, fmt)
    return info.value.report.errors


# -- round trips ----------------------------------------------------------------------------------


def test_hoirecon_layout_round_trip(clip_dir):
    ref = make_clip()
    clip = load_quietly(clip_dir)
    assert clip.frame_names == ref.frame_names and clip.category == "mug" and clip.fps == 15.0
    np.testing.assert_array_equal(clip.images, ref.images)
    np.testing.assert_array_equal(clip.hand_masks, ref.hand_masks)
    np.testing.assert_array_equal(clip.object_masks, ref.object_masks)
    np.testing.assert_allclose(clip.K, ref.K)
    np.testing.assert_allclose(clip.T_cam_from_hand, ref.T_cam_from_hand)
    np.testing.assert_allclose(clip.hands.hand_pose, ref.hands.hand_pose)
    np.testing.assert_allclose(clip.hands.betas, ref.hands.betas)
    np.testing.assert_allclose(clip.gt.object_vertices, ref.gt.object_vertices, atol=1e-6)
    np.testing.assert_allclose(clip.gt.T_hand_from_obj, ref.gt.T_hand_from_obj)
    assert clip.frame_weights.tolist() == [1.0] * 4 and clip.warnings == []


def test_diffhoi_layout_loads_to_the_same_clip(tmp_path):
    ref = make_clip()
    path = write_diffhoi(ref, tmp_path / "Mug_1")
    clip = load_quietly(path)  # detected as diffhoi
    assert clip.source.startswith("diffhoi") and clip.category == "mug"
    np.testing.assert_array_equal(clip.images, ref.images)
    np.testing.assert_array_equal(clip.object_masks, ref.object_masks)
    np.testing.assert_allclose(clip.K, ref.K)
    np.testing.assert_allclose(clip.T_cam_from_hand, ref.T_cam_from_hand)
    np.testing.assert_allclose(clip.hands.hand_pose, ref.hands.hand_pose)
    np.testing.assert_allclose(clip.hands.betas, ref.hands.betas, atol=1e-6)
    np.testing.assert_allclose(clip.gt.T_hand_from_obj, ref.gt.T_hand_from_obj)
    assert clip.gt.object_vertices.shape == ref.gt.object_vertices.shape


def test_diffhoi_suffix_choice(tmp_path):
    ref = make_clip()
    path = write_diffhoi(ref, tmp_path / "clip", suffix="_smooth_100", per_frame_singleton=False)
    assert load_quietly(path).source == "diffhoi (cameras_hoi_smooth_100.npz)"  # the only one: chosen
    np.savez(path / "cameras_hoi_other.npz", cTw=ref.T_cam_from_hand, K_pix=ref.K)
    errors = problems(path)
    assert errors == [
        f"{path}: several cameras_hoi*.npz files; choose one with clip_format.suffix ('_other', '_smooth_100')"
    ]
    clip = load_quietly(path, {"type": "diffhoi", "suffix": "_other"})
    assert clip.hands is None  # hands_other.npz does not exist: a warning, not an error


# -- precise errors -------------------------------------------------------------------------------


def test_missing_and_extra_frames(clip_dir):
    (clip_dir / "masks" / "hand" / "000002.png").unlink()
    shutil.copy(clip_dir / "masks" / "object" / "000000.png", clip_dir / "masks" / "object" / "000009.png")
    errors = problems(clip_dir)
    assert errors == [
        f"{clip_dir / 'masks' / 'hand'}: missing 1 frame(s) that images/ has: 000002",
        f"{clip_dir / 'masks' / 'object'}: 1 extra frame(s) not in images/: 000009",
    ]


def test_mask_of_wrong_size_and_not_binary(clip_dir):
    iio.imwrite(clip_dir / "masks" / "hand" / "000001.png", np.zeros((16, 20), np.uint8))
    grey = (np.arange(H * W).reshape(H, W) % 7 * 30).astype(np.uint8)
    iio.imwrite(clip_dir / "masks" / "object" / "000003.png", grey)
    errors = problems(clip_dir)
    assert errors[0] == f"{clip_dir / 'masks/hand/000001.png'}: mask is 20x16, its image is {W}x{H}"
    assert errors[1].startswith(f"{clip_dir / 'masks/object/000003.png'}: mask is not binary (7 distinct values")


def test_unreadable_image(clip_dir):
    (clip_dir / "images" / "000002.png").write_bytes(b"not a png at all")
    errors = problems(clip_dir)
    assert len(errors) == 1 and errors[0].startswith(f"{clip_dir / 'images/000002.png'}: unreadable image")


def test_intrinsics_problems(clip_dir):
    np.savez(clip_dir / "cameras.npz", T_cam_from_hand=make_clip().T_cam_from_hand)
    assert problems(clip_dir) == [f"{clip_dir / 'cameras.npz'}: missing key(s) K (has: T_cam_from_hand)"]
    cameras = clip_dir / "cameras.npz"
    np.savez(cameras, K=np.zeros((4, 2, 3)))
    assert problems(clip_dir) == [f"{cameras}: 'K' has shape (4, 2, 3), expected (4, 3, 3) or (3, 3) (4 frames)"]
    K = make_clip().K
    K[2, 0, 0] = np.nan
    np.savez(cameras, K=K)
    assert problems(clip_dir) == [f"{cameras}: 'K' has 1 NaN/inf values (frames 2)"]


def test_shared_3x3_intrinsics_are_broadcast(clip_dir):
    np.savez(clip_dir / "cameras.npz", K=make_clip().K[0], T_cam_from_hand=make_clip().T_cam_from_hand)
    assert load_quietly(clip_dir).K.shape == (4, 3, 3)


def test_nan_in_hands_and_non_rigid_cameras(clip_dir):
    ref = make_clip()
    pose = ref.hands.hand_pose.copy()
    pose[1, 3] = np.inf
    np.savez(clip_dir / "hands.npz", hand_pose=pose, betas=ref.hands.betas, global_orient=ref.hands.global_orient,
             transl=ref.hands.transl)  # fmt: skip
    T = ref.T_cam_from_hand.copy()
    T[3, 0, 0] = 2.0
    np.savez(clip_dir / "cameras.npz", K=ref.K, T_cam_from_hand=T)
    # what the arrays mean (rigid transforms) is checked once every array is sound
    assert problems(clip_dir) == [f"{clip_dir / 'hands.npz'}: 'hand_pose' has 1 NaN/inf values (frames 1)"]
    (clip_dir / "hands.npz").unlink()
    assert problems(clip_dir) == [f"{clip_dir / 'cameras.npz'}: 'T_cam_from_hand' is not a rigid transform in frames 3"]


def test_empty_masks_give_weights_or_an_error(tmp_path):
    clip = make_clip()
    clip.object_masks[1] = False
    path = write_clip(clip, tmp_path / "some_empty")
    with pytest.warns(HoireconWarning, match=r"empty hand or object mask in frame\(s\) 000001; they get weight 0"):
        loaded = load_clip(path)
    assert loaded.frame_weights.tolist() == [1.0, 0.0, 1.0, 1.0]
    clip.object_masks[:] = False
    path = write_clip(clip, tmp_path / "all_empty")
    assert problems(path) == [f"{path}: every object mask is empty"]


def test_overlapping_masks(tmp_path):
    clip = make_clip()
    clip.object_masks[0, 16, 24] = clip.hand_masks[0, 16, 24] = True  # one shared pixel
    path = write_clip(clip, tmp_path / "small")
    with pytest.warns(HoireconWarning, match="overlap in 1 frame.*overlapping pixels count as hand"):
        loaded = load_clip(path)
    assert not (loaded.hand_masks & loaded.object_masks).any()
    clip.object_masks[2] = clip.hand_masks[2]
    path = write_clip(clip, tmp_path / "swapped")
    assert problems(path) == [
        f"{path}: hand and object masks overlap on 100% of the object in frame 000002; "
        "are the mask folders swapped or identical?"
    ]


def test_unknown_category_warns(tmp_path):
    clip = make_clip()
    clip.category = "Spoon"
    path = write_clip(clip, tmp_path / "spoon")
    with pytest.warns(HoireconWarning, match="category 'Spoon' is unknown to the prior.*runs unconditioned"):
        assert load_clip(path).category == "spoon"


def test_too_short_and_bad_units(tmp_path):
    clip = make_clip(n=1)
    clip.K, clip.T_cam_from_hand, clip.hands, clip.gt = clip.K[:1], None, None, None
    path = write_clip(clip, tmp_path / "one")
    assert problems(path) == [f"{path}: 1 frame(s); a fit needs at least 2"]
    meta = path / "meta.yaml"
    meta.write_text(meta.read_text().replace("units: m", "units: cm"))
    assert f"{meta}: 'units' must be 'm' (metres), got 'cm'" in problems(path)


def test_not_a_clip(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a clip in any known layout"):
        load_clip(tmp_path / "empty")
    with pytest.raises(DataError, match="clip folder not found"):
        load_clip(tmp_path / "nowhere")


def test_write_clip_is_atomic(tmp_path, monkeypatch):
    import hoirecon.data.formats.hoirecon as fmt

    calls = []

    def failing_imwrite(path, image):
        calls.append(path)
        if len(calls) > 3:
            raise OSError("disk full")
        iio.imwrite(path, image)

    monkeypatch.setattr(fmt.iio, "imwrite", failing_imwrite)
    with pytest.raises(OSError, match="disk full"):
        write_clip(make_clip(), tmp_path / "clip")
    assert list(tmp_path.iterdir()) == []  # neither the clip nor a temporary folder
    monkeypatch.undo()
    write_clip(make_clip(), tmp_path / "clip")
    with pytest.raises(DataError, match="already exists"):
        write_clip(make_clip(), tmp_path / "clip")


# -- fuzzing --------------------------------------------------------------------------------------


@pytest.mark.slow  # 40 corrupted copies of a clip, each loaded
def test_corrupted_files_end_only_in_our_error(tmp_path):
    rng = np.random.default_rng(1)
    original = write_clip(make_clip(), tmp_path / "original")
    files = sorted(p for p in original.rglob("*") if p.is_file())
    outcomes = {"ok": 0, "error": 0}
    for trial in range(40):
        path = tmp_path / f"t{trial}"
        shutil.copytree(original, path)
        for target in rng.choice(files, size=2, replace=False):
            victim = path / Path(target).relative_to(original)
            data = victim.read_bytes()
            action = rng.integers(4)
            if action == 0:
                victim.write_bytes(data[: rng.integers(0, len(data))])
            elif action == 1:
                victim.write_bytes(rng.integers(0, 256, size=len(data), dtype=np.uint8).tobytes())
            elif action == 2:
                victim.unlink()
            else:
                buf = bytearray(data)
                for i in rng.integers(0, len(buf), size=8):
                    buf[i] = int(rng.integers(256))
                victim.write_bytes(bytes(buf))
        try:
            load_quietly(path)
            outcomes["ok"] += 1
        except DataError:
            outcomes["error"] += 1
    assert outcomes["error"] >= 30  # most corruptions are caught; none escapes as another exception


# -- CLI ------------------------------------------------------------------------------------------


def test_data_check_prints_a_summary_or_the_problems(clip_dir, capsys):
    assert main(["data", "check", str(clip_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"clip       {clip_dir} (hoirecon)"
    assert out[1] == f"frames     4 (000000 .. 000003), {W}x{H} px, 15 fps"
    assert out[2] == "category   mug (known to the prior)"
    assert out[-1] == "ok"
    (clip_dir / "masks" / "hand" / "000002.png").unlink()
    (clip_dir / "images" / "000001.png").write_bytes(b"junk")
    assert main(["data", "check", str(clip_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{clip_dir} (hoirecon): 1 problem(s)"
    assert out[1] == f"  error: {clip_dir / 'masks' / 'hand'}: missing 1 frame(s) that images/ has: 000002"


def test_fit_error_mentions_how_many_more_problems(clip_dir):
    (clip_dir / "masks" / "hand" / "000002.png").unlink()
    (clip_dir / "masks" / "object" / "000003.png").unlink()
    with pytest.raises(ClipError) as info:
        load_quietly(clip_dir)
    assert info.value.hint == f"1 more problem(s): run `hoirecon data check {clip_dir}`"


# -- the folder format ----------------------------------------------------------------------------


def write_video(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Lossless (FFV1) video, so decoded frames equal the written ones."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_folder_format_from_images_with_fov(clip_dir):
    ref = make_clip()
    for f in ("meta.yaml", "cameras.npz", "hands.npz"):
        (clip_dir / f).unlink()
    clip = load_quietly(clip_dir, {"type": "folder", "fov_degrees": 90.0, "category": "Mug"})
    np.testing.assert_array_equal(clip.images, ref.images)
    np.testing.assert_array_equal(clip.hand_masks, ref.hand_masks)
    assert clip.K[0, 0, 0] == pytest.approx(W / 2) and clip.K[0, 0, 2] == pytest.approx((W - 1) / 2)
    assert clip.category == "mug" and clip.hands is None and clip.T_cam_from_hand is None
    K = [[60.0, 0.0, 20.0], [0.0, 60.0, 16.0], [0.0, 0.0, 1.0]]
    clip = load_quietly(clip_dir, {"type": "folder", "K": K, "stride": 2})
    assert clip.frame_names == ["000000", "000002"] and clip.K[1, 0, 0] == 60.0
    with pytest.raises(ClipError, match="needs K \\(3x3\\) or fov_degrees"):
        load_quietly(clip_dir, {"type": "folder"})


def test_folder_format_from_videos(tmp_path):
    ref = make_clip(n=5)
    folder = tmp_path / "video_clip"
    folder.mkdir()
    write_video(folder / "rgb.mkv", ref.images)
    write_video(folder / "hand.mkv", np.repeat(ref.hand_masks[..., None] * np.uint8(255), 3, axis=3))
    (folder / "obj").mkdir()
    for i in range(5):
        iio.imwrite(folder / "obj" / f"{i:03d}.png", ref.object_masks[i].astype(np.uint8) * 255)
    cfg = {"type": "folder", "images": "rgb.mkv", "hand_masks": "hand.mkv", "object_masks": "obj", "fov_degrees": 60}
    clip = load_quietly(folder, cfg)
    assert len(clip) == 5 and clip.fps == 10.0
    np.testing.assert_array_equal(clip.images, ref.images)
    np.testing.assert_array_equal(clip.hand_masks, ref.hand_masks)
    np.testing.assert_array_equal(clip.object_masks, ref.object_masks)
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ClipError, match="broken.mp4: unreadable video"):
        load_quietly(folder, {**cfg, "images": "broken.mp4"})


def test_data_check_with_an_explicit_format(clip_dir, capsys):
    assert main(["data", "check", str(clip_dir), "--format", "folder", "fov_degrees=70", "category=bottle"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"clip       {clip_dir} (folder)" and out[2] == "category   bottle (known to the prior)"
    assert main(["data", "check", str(clip_dir), "--format", "folder", "fov_degree=70"]) == 1
    assert "unknown key 'clip_format.fov_degree' for clip_format 'folder'" in capsys.readouterr().err


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """Outputs are readable like any file the user writes (mkstemp alone would make them private)."""
    import os

    from hoirecon.utils.io import atomic_write_text

    path = atomic_write_text(tmp_path / "x.txt", "hi")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_written_clips_get_ordinary_permissions(tmp_path):
    """write_clip's folder starts as mkdtemp's private one; the clip ends readable like any folder made."""
    import os

    mask = os.umask(0o022)
    try:
        path = write_clip(make_clip(), tmp_path / "clip")
        assert path.stat().st_mode & 0o777 == 0o755
        os.umask(0o077)
        path = write_clip(make_clip(), tmp_path / "clip", overwrite=True)
        assert path.stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(mask)
