"""Broken clips in every layout: each problem is one line naming its file (and key, in the file's own
words), and `hoirecon data check` refuses the clip without a traceback; valid clips still load."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh
import yaml

from hoirecon.cli import main
from hoirecon.data.clip import ClipError
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.load import load_clip
from tests.test_data import H, W, make_clip, write_diffhoi
from tests.test_hoi4d import SEQ, make_release

N = 4  # frames of make_clip()


@dataclass
class Layout:
    """A valid clip written in one layout, and where its files are."""

    name: str
    root: Path  # the folder written (HOI4D: the release root)
    path: Path  # what `data check` is given
    args: list[str] = field(default_factory=list)  # its --format, when not detected
    cameras: Path | None = None  # the file holding K and the camera pose
    K: str | None = None  # their keys in that file (None: an .npy)
    T: str | None = None
    hands: Path | None = None
    pose: str | None = None  # the articulation's key
    images: Path | None = None
    hand_masks: Path | None = None
    mesh: Path | None = None

    def load(self):
        fmt = {"type": self.args[1], **dict(a.split("=", 1) for a in self.args[2:])} if self.args else "auto"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_clip(self.path, fmt)


def build(name: str, tmp_path: Path) -> Layout:
    root = tmp_path / name
    if name == "hoirecon":
        path = write_clip(make_clip(), root)
        files = dict(cameras=path / "cameras.npz", hands=path / "hands.npz", mesh=path / "gt" / "object.obj")
        keys = dict(K="K", T="T_cam_from_hand", pose="hand_pose")
        return Layout(name, root, path, images=path / "images", hand_masks=path / "masks" / "hand", **files, **keys)
    if name == "diffhoi":
        path = write_diffhoi(make_clip(), root)
        files = dict(cameras=path / "cameras_hoi.npz", hands=path / "hands.npz", mesh=path / "oObj.obj")
        keys = dict(K="K_pix", T="cTw", pose="hA")
        return Layout(name, root, path, images=path / "image", hand_masks=path / "hand_mask", **files, **keys)
    if name == "folder":
        path = write_clip(make_clip(), root)
        for f in ("meta.yaml", "cameras.npz", "hands.npz"):
            (path / f).unlink()
        shutil.rmtree(path / "gt")
        args = ["--format", "folder", "fov_degrees=60", "category=mug"]
        return Layout(name, root, path, args, images=path / "images", hand_masks=path / "masks" / "hand")
    make_release(root)
    intrin = root / "camera_params" / "ZY20210800001" / "intrin.npy"
    return Layout(name, root, root / "HOI4D_release" / SEQ, [], intrin)


def hoi4d_annotations(layout: Layout) -> Path:
    return layout.root / "HOI4D_annotations" / SEQ


def edit_meta(layout: Layout, line: str) -> Path:
    """Set one key of meta.yaml from a YAML line such as "fps: fast"."""
    meta = layout.path / "meta.yaml"
    values = yaml.safe_load(meta.read_text())
    values.update(yaml.safe_load(line))
    meta.write_text(yaml.safe_dump(values, sort_keys=False))
    return meta


def data_check(capsys, layout: Layout, *args: str) -> tuple[int, list[str]]:
    """Exit code and output lines (stdout and stderr) of `hoirecon data check`; never a traceback."""
    rc = main(["data", "check", str(layout.path), *(args or layout.args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert len(err.splitlines()) <= 2  # an error line and its hint, if the check itself failed
    return rc, out.splitlines() + err.splitlines()


def refused(capsys, layout: Layout, message: str, *args: str, starts: bool = False) -> None:
    """`data check` exits 1 and prints ``message`` as one error line (or a line starting with it)."""
    rc, lines = data_check(capsys, layout, *args)
    errors = [line.split("error: ", 1)[1] for line in lines if "error: " in line]
    assert rc == 1
    assert any(e.startswith(message) if starts else e == message for e in errors), "\n".join(lines)


def accepted(capsys, layout: Layout) -> list[str]:
    """`data check` passes; its warning lines."""
    rc, lines = data_check(capsys, layout)
    assert rc == 0 and lines[-1] == "ok", "\n".join(lines)
    return [line for line in lines if line.startswith("warning: ")]


def save_npz(path: Path, **changes) -> None:
    """Rewrite an .npz with some arrays replaced."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    np.savez(path, **{**arrays, **changes})


def stored(path: Path, key: str) -> np.ndarray:
    with np.load(path) as data:
        return data[key]


@pytest.fixture(params=["hoirecon", "diffhoi", "folder", "hoi4d"])
def any_layout(request, tmp_path) -> Layout:
    return build(request.param, tmp_path)


def layouts(*names):
    return pytest.mark.parametrize("layout", names, indirect=True)


@pytest.fixture
def layout(request, tmp_path) -> Layout:
    return build(request.param, tmp_path)


def test_valid_clips_pass_in_every_layout(any_layout, capsys):
    warned = accepted(capsys, any_layout)
    clip = any_layout.load()
    assert len(clip) == (6 if any_layout.name == "hoi4d" else N) and clip.category == "mug"
    assert all("no initial hands" in w for w in warned)  # the folder layout has none: said, not refused
    assert bool(warned) == (any_layout.name == "folder")


# -- 1. values of the wrong type inside valid containers -------------------------------------------


#: The shapes each layout's loader accepts for a key, as its messages list them (4 frames).
SHAPES = {
    "K": "(4, 3, 3) or (3, 3)",
    "K_pix": "(4, 4, 4) or (4, 3, 3) or (4, 4) or (3, 3)",
    "hand_pose": "(4, 45)",
    "hA": "(4, 45) or (4, 1, 45)",
}


@layouts("hoirecon", "diffhoi")
@pytest.mark.parametrize(
    "role, value, problem",
    [
        ("K", np.full((N, 3, 3), "abc"), "holds text (<U3), expected numbers"),
        ("K", np.float32(50), "is a scalar, expected {shapes} (4 frames)"),
        ("T", np.full((N, 4, 4), "abc"), "holds text (<U3), expected numbers"),
        ("T", np.array([None] * N, dtype=object), "holds pickled Python objects, expected numbers"),
        ("T", np.zeros((N, 4, 4), dtype=complex), "holds complex numbers (complex128), expected numbers"),
        ("pose", np.full((N, 45), "abc"), "holds text (<U3), expected numbers"),
        ("pose", np.float32(0), "is a scalar, expected {shapes} (4 frames)"),
        ("pose", np.zeros((N, 45), dtype=bool), "holds booleans (bool), expected numbers"),
    ],
)
def test_wrong_types_name_file_and_key(layout, capsys, role, value, problem):
    file = layout.hands if role == "pose" else layout.cameras
    key = getattr(layout, role)
    save_npz(file, **{key: value})
    refused(capsys, layout, f"{file}: '{key}' {problem.format(shapes=SHAPES.get(key))}")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("fps: fast", "'fps' must be a positive number of frames per second, got 'fast'"),
        ("fps: true", "'fps' must be a positive number of frames per second, got True"),
        ("image_size: abc", "'image_size' must be [H, W], two positive integers (pixels), got 'abc'"),
        ("category: [1, 2]", "'category' must be text, got [1, 2]"),
    ],
)
def test_wrong_types_in_meta_yaml(tmp_path, capsys, line, problem):
    layout = build("hoirecon", tmp_path)
    meta = edit_meta(layout, line)
    refused(capsys, layout, f"{meta}: {problem}")


@layouts("diffhoi")
def test_diffhoi_files_in_their_own_words(layout, capsys):
    hands, text = layout.hands, layout.path / "text.txt"
    text.write_bytes("Mug".encode("utf-16"))
    refused(capsys, layout, f"{text}: not UTF-8 text (byte 0xff at 0); save it as UTF-8")
    text.write_text("Mug\n")
    save_npz(hands, beta=np.float32(0))
    refused(capsys, layout, f"{hands}: 'beta' is a scalar, expected (B, 10) or (B, 1, 10) or (10,)")
    save_npz(hands, beta=np.zeros((N, 10)))
    save_npz(layout.path / "eval_poses.npz", hTo=np.full((N, 4, 4), "abc"))
    refused(capsys, layout, f"{layout.path / 'eval_poses.npz'}: 'hTo' holds text (<U3), expected numbers")


@layouts("hoi4d")
def test_hoi4d_files_in_their_own_words(layout, capsys):
    K = np.load(layout.cameras)
    np.save(layout.cameras, np.full((3, 3), "abc"))
    refused(capsys, layout, f"{layout.cameras}: the array holds text (<U3), expected numbers")
    np.save(layout.cameras, np.zeros((3, 4)))
    refused(capsys, layout, f"{layout.cameras}: the array has shape (3, 4), expected (3, 3)")
    np.save(layout.cameras, K)
    hand_dir = hoi4d_annotations(layout) / "handpose" / "refinehandpose_right"
    for f in hand_dir.iterdir():  # text where numbers belong: HOI4D's fallback, then its error
        f.write_bytes(pickle.dumps({"poseCoeff": ["x"] * 48, "beta": np.zeros(10), "trans": np.zeros(3)}))
    refused(capsys, layout, f"{hand_dir}: 6 of 6 hand poses missing or malformed", starts=True)


@pytest.mark.parametrize("override, problem", [("fps=fast", "could not be converted"), ("fps=-30", "allowed")])
def test_folder_config_values(tmp_path, capsys, override, problem):
    layout = build("folder", tmp_path)
    rc, lines = data_check(capsys, layout, *layout.args, override)
    assert rc == 1 and lines[0].startswith("error: bad value 'clip_format.fps'") and problem in lines[0]


# -- 2. every error names its file; precise wording ------------------------------------------------


@layouts("hoirecon", "diffhoi")
@pytest.mark.parametrize("role", ["K", "T", "pose"])
def test_nan_names_the_file(layout, capsys, role):
    file = layout.hands if role == "pose" else layout.cameras
    key = getattr(layout, role)
    array = stored(file, key).astype(np.float32)
    array[1].flat[0] = np.nan
    save_npz(file, **{key: array})
    refused(capsys, layout, f"{file}: '{key}' has 1 NaN/inf values (frames 1)")


@layouts("hoirecon", "diffhoi")
def test_geometry_errors_name_the_file(layout, capsys):
    T = stored(layout.cameras, layout.T).copy()
    T[3, 0, 0] = 2.0
    save_npz(layout.cameras, **{layout.T: T})
    refused(capsys, layout, f"{layout.cameras}: '{layout.T}' is not a rigid transform in frames 3")
    save_npz(layout.cameras, **{layout.T: make_clip().T_cam_from_hand[:3]})
    refused(capsys, layout, f"{layout.cameras}: '{layout.T}' has shape (3, 4, 4), expected (4, 4, 4) (4 frames)")
    K = stored(layout.cameras, layout.K).copy()
    K[:, 0, 0] = -1
    save_npz(layout.cameras, **{layout.T: make_clip().T_cam_from_hand, layout.K: K})
    refused(capsys, layout, f"{layout.cameras}: '{layout.K}' has non-positive focal lengths (frames 0, 1, 2, 3)")


@layouts("hoirecon", "diffhoi", "hoi4d")
@pytest.mark.parametrize(
    "content, what",
    [
        (b"hand_pose 0 0 0\n", "a text file"),
        (pickle.dumps({"K": [1.0]}), "pickled Python data"),
        (b"", "an empty file"),
        (b"\x00\x01\x02garbage", "unrecognised content"),
    ],
)
def test_files_that_are_not_numpy_files(layout, capsys, content, what):
    file = layout.hands or layout.cameras
    file.write_bytes(content)
    expected = "an .npz archive (write it with numpy.savez)" if file.suffix == ".npz" else "a single .npy array"
    refused(capsys, layout, f"{file}: {what}, not {expected}", starts=True)


@layouts("hoirecon", "diffhoi")
def test_cameras_as_a_folder_and_missing_keys(layout, capsys):
    with np.load(layout.cameras) as data:
        kept = {key: data[key] for key in data.files if key != layout.K}
    np.savez(layout.cameras, **kept)
    refused(capsys, layout, f"{layout.cameras}: missing key(s) {layout.K} (has: ", starts=True)
    layout.cameras.unlink()
    layout.cameras.mkdir()
    refused(capsys, layout, f"{layout.cameras}: is a folder, expected an .npz archive", "--format", layout.name)


@layouts("hoirecon", "diffhoi", "folder")
def test_images_as_a_file(layout, capsys):
    shutil.rmtree(layout.images)
    layout.images.write_text("not a folder")
    args = layout.args or ["--format", layout.name]  # an image folder is how the layout is detected
    refused(capsys, layout, f"{layout.images}: is a file, expected a folder of images", *args)


def write_masks(layout: Layout, convert, suffix: str = ".png") -> None:
    for f in sorted(layout.hand_masks.iterdir()):
        mask = iio.imread(f)
        f.unlink()
        iio.imwrite(f.with_suffix(suffix), convert(mask > 0), **({"quality": 75} if suffix == ".jpg" else {}))


@layouts("hoirecon", "diffhoi", "folder")
def test_16_bit_masks(layout, capsys):
    write_masks(layout, lambda m: m.astype(np.uint16) * 65535)
    assert all("no initial hands" in w for w in accepted(capsys, layout))  # the folder layout's only warning
    np.testing.assert_array_equal(layout.load().hand_masks, make_clip().hand_masks)
    write_masks(layout, lambda m: m.astype(np.uint16) * 40000 + 1000)
    first = sorted(layout.hand_masks.iterdir())[0]
    refused(
        capsys, layout, f"{first}: mask is not binary (2 distinct values from 1000 to 41000, 16-bit); "
        "save it with two values, 0 and 255",
    )  # fmt: skip


@layouts("hoirecon", "diffhoi", "folder")
def test_jpeg_masks_are_thresholded_like_mask_videos(layout, capsys):
    write_masks(layout, lambda m: m.astype(np.uint8) * 255, ".jpg")
    warned = accepted(capsys, layout)
    assert f"warning: {layout.hand_masks}: {N} JPEG mask(s) with grey edges thresholded at half their range" in (
        " ".join(warned)
    )
    loaded, ref = layout.load().hand_masks, make_clip().hand_masks
    assert (loaded & ref).sum() / (loaded | ref).sum() > 0.9
    second = sorted(layout.hand_masks.iterdir())[1]
    second.unlink()
    iio.imwrite(second.with_suffix(".png"), (ref[1] * 200).astype(np.uint8) + 20)  # a grey PNG: still an error
    refused(capsys, layout, f"{second.with_suffix('.png')}: mask is not binary", starts=True)


# -- 3. accepted, but wrong: units, intrinsics, meta, hands -----------------------------------------

MM = "looks like millimetres: hoirecon uses metres"


@layouts("hoirecon", "diffhoi")
def test_millimetres(layout, capsys):
    T = stored(layout.cameras, layout.T)
    mm = T.copy()
    mm[:, :3, 3] *= 1000  # 500, 510, 520, 530 mm from the camera
    save_npz(layout.cameras, **{layout.T: mm})
    refused(capsys, layout, f"{layout.cameras}: '{layout.T}' has a median translation of 515 m; {MM}")
    save_npz(layout.cameras, **{layout.T: T})
    box = trimesh.creation.box((50.0, 80.0, 50.0))  # a box in mm
    box.export(layout.mesh)
    refused(capsys, layout, f"{layout.mesh}: the mesh spans 80 m; {MM}")


def test_millimetres_in_hand_translations(tmp_path, capsys):
    layout = build("hoirecon", tmp_path)
    save_npz(layout.hands, transl=np.tile([0.0, 0.0, 450.0], (N, 1)))
    refused(capsys, layout, f"{layout.hands}: 'transl' has a median length of 450 m; {MM}")


@layouts("hoi4d")
def test_millimetres_in_hoi4d(layout, capsys):
    anno = hoi4d_annotations(layout)
    for f in (anno / "objpose").iterdir():
        data = json.loads(f.read_text())
        data["dataList"][0]["center"] = {k: v * 1000 for k, v in data["dataList"][0]["center"].items()}
        f.write_text(json.dumps(data))
    refused(capsys, layout, f"{anno / 'objpose'}: 'center' has a median translation of", starts=True)
    hand_dir = anno / "handpose" / "refinehandpose_right"
    for f in hand_dir.iterdir():
        with open(f, "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
        data["trans"] = data["trans"] * 1000
        f.write_bytes(pickle.dumps(data))
    refused(capsys, layout, f"{hand_dir}: 'trans' has a median length of 400 m; {MM}")


@layouts("hoirecon", "diffhoi", "hoi4d")
def test_intrinsics_for_other_pixels(layout, capsys):
    """A principal point far outside, or a normalised K: the hand projects elsewhere, or the FOV is absurd."""
    K = (stored(layout.cameras, layout.K) if layout.K else np.load(layout.cameras)).copy()
    far, normalised = K.copy(), K.copy()
    far[..., 0, 2] = 3000.0
    normalised[..., :2, :] /= 100.0
    key = f"'{layout.K}'" if layout.K else "the array"
    for array, problem in (
        (far, "puts the hand ("),
        (normalised, "has a focal length of"),
    ):
        if layout.K:
            save_npz(layout.cameras, **{layout.K: array})
        else:
            np.save(layout.cameras, array)
        refused(capsys, layout, f"{layout.cameras}: {key} {problem}", starts=True)


def test_projection_message(tmp_path, capsys):
    layout = build("hoirecon", tmp_path)
    K = stored(layout.cameras, "K").copy()
    K[:, 0, 2] = 500.0
    save_npz(layout.cameras, K=K)
    refused(
        capsys, layout, f"{layout.cameras}: 'K' puts the hand ('T_cam_from_hand') outside the {W}x{H} image in "
        "frames 0, 1, 2, 3 (frame 0: at (500, 16) px); is K for images of this size, in pixels?",
    )  # fmt: skip


def test_folder_with_only_k_warns_about_its_principal_point(tmp_path, capsys):
    """Without a pose, nothing contradicts an off-centre principal point (a crop has one): a warning."""
    layout = build("folder", tmp_path)
    layout.args = [*layout.args[:2], "K=[[50, 0, 300], [0, 50, 16], [0, 0, 1]]", "category=mug"]
    assert f"warning: {layout.path} (clip_format): 'K': principal point outside the {W}x{H} image" in (
        " ".join(accepted(capsys, layout))
    )
    layout.args[2] = "K=[[0.8, 0, 0.5], [0, 0.8, 0.5], [0, 0, 1]]"
    refused(capsys, layout, f"{layout.path} (clip_format): 'K' has a focal length of 0.8 px", starts=True)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("fps: -30", "'fps' must be a positive number of frames per second, got -30"),
        ("fps: 0", "'fps' must be a positive number of frames per second, got 0"),
        ("fps: .nan", "'fps' must be a positive number of frames per second, got nan"),
        ("image_size: [64, 48]", f"'image_size' is [64, 48] ([H, W]), the frames are [{H}, {W}]"),
        ("units: mm", "'units' must be 'm' (metres), got 'mm'"),
    ],
)
def test_meta_yaml_values(tmp_path, capsys, line, problem):
    layout = build("hoirecon", tmp_path)
    meta = edit_meta(layout, line)
    refused(capsys, layout, f"{meta}: {problem}")


def test_clip_without_hands_says_which_initializer(any_layout, capsys):
    if any_layout.name == "hoi4d":
        shutil.rmtree(hoi4d_annotations(any_layout) / "handpose")
    elif any_layout.hands is not None:
        any_layout.hands.unlink()
    note = f"warning: {any_layout.path}: no initial hands; a fit with the default initializer (provided) stops; use "
    assert f"{note}initializer.type=mediapipe" in " ".join(accepted(capsys, any_layout))
    mocap = any_layout.path / "mocap"
    mocap.mkdir()
    (mocap / "000000_prediction_result.pkl").write_bytes(b"")
    assert f"{note}initializer.type=frankmocap (FrankMocap's output is in {mocap})" in (
        " ".join(accepted(capsys, any_layout))
    )


def test_errors_stop_a_load_with_every_problem(tmp_path):
    """The API sees the same lines: a ClipError whose report holds each, the first as its message."""
    layout = build("hoirecon", tmp_path)
    save_npz(layout.cameras, K=np.full((N, 3, 3), "abc"))
    save_npz(layout.hands, hand_pose=np.float32(0))
    with pytest.raises(ClipError) as info:
        layout.load()
    assert info.value.report.errors == [
        f"{layout.cameras}: 'K' holds text (<U3), expected numbers",
        f"{layout.hands}: 'hand_pose' is a scalar, expected (4, 45) (4 frames)",
    ]
