"""hoirecon's own clip layout (docs/data.md), read and written.

```
clip/
  meta.yaml                 category, fps, image_size [H, W], source, units: m
  images/000000.png ...     RGB
  masks/hand/000000.png     binary 0/255 (or 0/1, 16-bit 0/65535; JPEGs are thresholded)
  masks/object/000000.png   binary 0/255
  cameras.npz               K (N,3,3) or (3,3); optional T_cam_from_hand (N,4,4)
  hands.npz                 optional: hand_pose (N,45), betas (10,), global_orient (N,3), transl (N,3)
  gt/object.obj             optional, object frame, metres
  gt/poses.npz              optional: T_cam_from_obj, T_hand_from_obj, T_cam_from_hand (N,4,4)
  gt/hands.npz              optional, as hands.npz
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import trimesh
import yaml

from hoirecon.data.clip import Clip, ClipGT, HandParams, Origin, Report, Shape, check_fps, finish
from hoirecon.data.files import ArrayFile, first_line, read_text
from hoirecon.data.images import list_frames, match_frames, read_masks, read_rgb
from hoirecon.errors import DataError
from hoirecon.registry import register
from hoirecon.utils.io import atomic_folder

HAND_KEYS = ("hand_pose", "betas", "global_orient", "transl")
GT_POSE_KEYS = ("T_cam_from_obj", "T_hand_from_obj", "T_cam_from_hand")
#: Shapes each hands.npz key may have; per-frame betas are averaged (the clip shares one shape).
HAND_FILE_SHAPES: dict[str, Shape | list[Shape]] = {
    "hand_pose": ("N", 45),
    "betas": [(10,), ("N", 10)],
    "global_orient": ("N", 3),
    "transl": ("N", 3),
}


def read_mesh(report: Report, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(vertices (V,3) float32, faces (F,3) int64) of a mesh file, or None after reporting why not."""
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's problem
        report.error(f"{path}: unreadable mesh ({first_line(exc)})")
        return None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        report.error(f"{path}: no triangles in the mesh")
        return None
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    if not np.isfinite(vertices).all():
        report.error(f"{path}: mesh has NaN/inf vertices")
        return None
    return vertices, np.asarray(mesh.faces, dtype=np.int64)


def read_hands(file: ArrayFile, n: int) -> HandParams | None:
    """The hands of a hands.npz (hoirecon's keys), checked; None after an error."""
    arrays = {key: file.read(key, shapes, n) for key, shapes in HAND_FILE_SHAPES.items()}
    if any(a is None for a in arrays.values()):
        return None
    betas = arrays["betas"]
    return HandParams(
        hand_pose=arrays["hand_pose"],
        betas=betas.mean(axis=0) if betas.ndim == 2 else betas,
        global_orient=arrays["global_orient"],
        transl=arrays["transl"],
    )


def load_frames(
    report: Report, image_dir: Path, hand_dir: Path, object_dir: Path
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """Frames present in all three folders, as (names, images, hand masks, object masks)."""
    images = list_frames(report, image_dir, "images")
    hands = list_frames(report, hand_dir, "hand masks")
    objects = list_frames(report, object_dir, "object masks")
    if images:
        for masks, folder in ((hands, hand_dir), (objects, object_dir)):
            if masks:
                match_frames(report, images, masks, image_dir, folder)
    report.raise_if_errors()
    names = sorted(images)
    rgb, sizes = [], []
    size = None
    for name in names:
        image = read_rgb(report, images[name])
        if image is not None:
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                report.error(
                    f"{images[name]}: image is {image.shape[1]}x{image.shape[0]}, the first is {size[1]}x{size[0]}"
                )
                image = None
        rgb.append(image)
        sizes.append(size if image is not None else None)
    hand = read_masks(report, [hands[name] for name in names], sizes)
    obj = read_masks(report, [objects[name] for name in names], sizes)
    report.raise_if_errors()
    return names, np.stack(rgb), np.stack(hand), np.stack(obj)


@register("clip_format", "hoirecon")
class HoireconFormat:
    """The project's own layout; what `hoirecon synth` writes and other formats convert to."""

    #: Detection order (highest first): a meta.yaml: checked after the layouts with rarer files.
    priority = 10

    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @staticmethod
    def detect(path: Path) -> bool:
        return (Path(path) / "meta.yaml").is_file()

    def load(self, path: str | Path) -> Clip:
        path = Path(path)
        report = Report(path)
        if not path.is_dir():
            report.error(f"{path}: clip folder not found")
            report.raise_if_errors()
        meta = read_meta(report, path / "meta.yaml")
        cameras = ArrayFile(report, path / "cameras.npz", required=("K",))
        hands_file = ArrayFile(report, path / "hands.npz", HAND_KEYS) if (path / "hands.npz").exists() else None
        report.raise_if_errors()
        names, images, hand_masks, object_masks = load_frames(
            report, path / "images", path / "masks" / "hand", path / "masks" / "object"
        )
        n = len(names)
        size = meta.get("image_size")
        if size is not None and tuple(size) != images.shape[1:3]:
            report.error(
                f"{path / 'meta.yaml'}: 'image_size' is {list(size)} ([H, W]), the frames are {list(images.shape[1:3])}"
            )
        K = cameras.read("K", [("N", 3, 3), (3, 3)], n)
        T_cam_from_hand = None
        if "T_cam_from_hand" in cameras:
            T_cam_from_hand = cameras.read("T_cam_from_hand", ("N", 4, 4), n)
        hands = read_hands(hands_file, n) if hands_file is not None else None
        gt = self._read_gt(report, path / "gt", n)
        report.raise_if_errors()
        clip = Clip(
            path=path,
            frame_names=names,
            images=images,
            hand_masks=hand_masks,
            object_masks=object_masks,
            K=np.broadcast_to(K, (n, 3, 3)).copy(),
            category=meta.get("category", ""),
            fps=meta.get("fps", 30.0),
            source=meta.get("source", ""),
            T_cam_from_hand=T_cam_from_hand,
            hands=hands,
            gt=gt,
        )
        return finish(report, clip)

    @staticmethod
    def _read_gt(report: Report, gt_dir: Path, n: int) -> ClipGT | None:
        if not gt_dir.is_dir():
            return None
        gt = ClipGT()
        if (gt_dir / "object.obj").is_file():
            mesh = read_mesh(report, gt_dir / "object.obj")
            if mesh is not None:
                gt.object_vertices, gt.object_faces = mesh
        if (gt_dir / "poses.npz").exists():
            poses = ArrayFile(report, gt_dir / "poses.npz")
            for key in GT_POSE_KEYS:
                if key in poses:
                    setattr(gt, key, poses.read(key, ("N", 4, 4), n))
        if (gt_dir / "hands.npz").exists():
            gt.hands = read_hands(ArrayFile(report, gt_dir / "hands.npz", HAND_KEYS), n)
        return gt


# meta.yaml's keys: each check returns the value (or None after an error naming the file and key)


def _text(report: Report, origin: Origin, value) -> str | None:
    if value is None or isinstance(value, str):
        return value or ""
    report.error(f"{origin} must be text, got {value!r}")
    return None


def _image_size(report: Report, origin: Origin, value) -> list[int] | None:
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int and v > 0 for v in value):
        return value
    report.error(f"{origin} must be [H, W], two positive integers (pixels), got {value!r}")
    return None


def _units(report: Report, origin: Origin, value) -> str | None:
    if value == "m":
        return value
    report.error(f"{origin} must be 'm' (metres), got {value!r}")
    return None


META_CHECKS = {"category": _text, "fps": check_fps, "image_size": _image_size, "source": _text, "units": _units}


def read_meta(report: Report, path: Path) -> dict:
    """meta.yaml's known keys, each checked (others are kept as they are); {} after a file error."""
    text = read_text(report, path)
    if text is None:
        return {}
    try:
        meta = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        report.error(f"{path}: invalid YAML ({str(exc).splitlines()[0]})")
        return {}
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        report.error(f"{path}: expected a mapping of keys ({', '.join(META_CHECKS)}), got {type(meta).__name__}")
        return {}
    for key, check in META_CHECKS.items():
        if key in meta:
            value = check(report, Origin(str(path), key), meta[key])
            meta[key] = meta[key] if value is None else value
    return meta


def write_clip(clip: Clip, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``clip`` in hoirecon's layout, atomically: a temporary folder renamed into place."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path}: already exists (pass overwrite to replace it)")
    with atomic_folder(path) as tmp:
        _write_contents(clip, tmp)
    return path


def _write_contents(clip: Clip, root: Path) -> None:
    h, w = clip.image_size
    meta = {"category": clip.category, "fps": clip.fps, "image_size": [h, w], "source": clip.source, "units": "m"}
    (root / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    for sub in ("images", "masks/hand", "masks/object"):
        (root / sub).mkdir(parents=True)
    for i, name in enumerate(clip.frame_names):
        iio.imwrite(root / "images" / f"{name}.png", clip.images[i])
        iio.imwrite(root / "masks" / "hand" / f"{name}.png", clip.hand_masks[i].astype(np.uint8) * 255)
        iio.imwrite(root / "masks" / "object" / f"{name}.png", clip.object_masks[i].astype(np.uint8) * 255)
    cameras = {"K": clip.K}
    if clip.T_cam_from_hand is not None:
        cameras["T_cam_from_hand"] = clip.T_cam_from_hand
    np.savez(root / "cameras.npz", **cameras)
    if clip.hands is not None:
        np.savez(root / "hands.npz", **{key: getattr(clip.hands, key) for key in HAND_KEYS})
    if clip.gt is not None:
        gt_dir = root / "gt"
        gt_dir.mkdir()
        gt = clip.gt
        if gt.object_vertices is not None:
            trimesh.Trimesh(gt.object_vertices, gt.object_faces, process=False).export(gt_dir / "object.obj")
        poses = {key: getattr(gt, key) for key in GT_POSE_KEYS if getattr(gt, key) is not None}
        if poses:
            np.savez(gt_dir / "poses.npz", **poses)
        if gt.hands is not None:
            np.savez(gt_dir / "hands.npz", **{key: getattr(gt.hands, key) for key in HAND_KEYS})
