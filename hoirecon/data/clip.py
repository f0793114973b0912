"""The Clip: everything a fit reads from one video clip, validated once when it is loaded.

Arrays are numpy, in the clip's frame order. Frames: cameras see the hand frame through
``T_cam_from_hand``; ground truth (for evaluation only) adds the object frame. Units are metres.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hoirecon.categories import KNOWN_CATEGORIES, normalize_category
from hoirecon.errors import DataError, HoireconWarning

MIN_FRAMES = 2  # every fit step uses frames t and t+1


@dataclass
class HandParams:
    """MANO parameters per frame, in the hand model's convention (axis-angle, metres).

    hand_pose (N, 45), betas (10,) shared by the clip, global_orient (N, 3), transl (N, 3).
    """

    hand_pose: np.ndarray
    betas: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray

    def __len__(self) -> int:
        return len(self.hand_pose)


@dataclass
class ClipGT:
    """Ground truth for evaluation. Any part may be missing.

    object_vertices (V, 3) metres in the object frame, object_faces (F, 3);
    T_cam_from_obj, T_hand_from_obj, T_cam_from_hand (N, 4, 4); hands per frame.
    """

    object_vertices: np.ndarray | None = None
    object_faces: np.ndarray | None = None
    T_cam_from_obj: np.ndarray | None = None
    T_hand_from_obj: np.ndarray | None = None
    T_cam_from_hand: np.ndarray | None = None
    hands: HandParams | None = None


@dataclass
class Clip:
    """One clip, loaded and validated.

    images (N, H, W, 3) uint8; hand_masks, object_masks (N, H, W) bool (disjoint: where both were
    set the pixel counts as hand); K (N, 3, 3) pixel intrinsics; frame_weights (N,) float32 in
    [0, 1], 0 for frames whose masks are empty; optional initial T_cam_from_hand (N, 4, 4) and
    hands; optional gt.
    """

    path: Path
    frame_names: list[str]
    images: np.ndarray
    hand_masks: np.ndarray
    object_masks: np.ndarray
    K: np.ndarray
    category: str
    fps: float = 30.0
    source: str = ""
    T_cam_from_hand: np.ndarray | None = None
    hands: HandParams | None = None
    gt: ClipGT | None = None
    frame_weights: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    #: Where values came from when not from hoirecon's layout: "K", "hands.transl", "gt.T_hand_from_obj", ...
    origins: dict[str, Origin] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame_names)

    def origin(self, name: str) -> Origin:
        """The file and key value ``name`` was read from, in the file's own words (for messages)."""
        return self.origins.get(name) or layout_origin(self.path, name)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.images.shape[1]), int(self.images.shape[2])


class Report:
    """Problems found while loading a clip: errors stop the load, warnings are kept on the Clip.

    Loaders add every problem they can find in one phase, then call ``raise_if_errors`` before a
    phase that needs the previous one to have succeeded; ``hoirecon data check`` prints them all.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        if message not in self.errors:  # the same value may be read twice (HOI4D's hands are also its gt)
            self.errors.append(message)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ClipError(self)


class ClipError(DataError):
    """A clip failed validation; ``report`` holds every problem found."""

    def __init__(self, report: Report):
        more = len(report.errors) - 1
        hint = f"{more} more problem(s): run `hoirecon data check {report.path}`" if more else None
        super().__init__(report.errors[0], hint=hint)
        self.report = report


# -- where arrays came from ----------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where a value of a clip came from, in its file's own words: a file (or config) and its key.

    Messages about the value start with it: ``cameras_hoi.npz: 'cTw' ...``; a file without keys
    (an .npy, a mesh) is named by ``noun``: ``intrin.npy: the array ...``.
    """

    file: str
    key: str | None = None
    noun: str = "the array"

    def __str__(self) -> str:
        return f"{self.file}: " + (f"'{self.key}'" if self.key else self.noun)


#: Files of hoirecon's layout holding each Clip value: the origin of values a loader does not name.
LAYOUT_FILES = {
    "K": "cameras.npz",
    "T_cam_from_hand": "cameras.npz",
    "fps": "meta.yaml",
    "hands": "hands.npz",
    "gt": "gt/poses.npz",
    "gt.hands": "gt/hands.npz",
    "gt.object_vertices": "gt/object.obj",
}


def layout_origin(clip_path: Path, name: str) -> Origin:
    """The origin of Clip value ``name`` ("K", "hands.transl", "gt.T_cam_from_obj", ...) in hoirecon's layout."""
    group, _, key = name.rpartition(".")
    file = LAYOUT_FILES.get(name) or LAYOUT_FILES[group]
    if name == "gt.object_vertices":
        return Origin(str(clip_path / file), noun="the mesh")
    return Origin(str(clip_path / file), key)


# -- the one check of every array -----------------------------------------------------------------

#: A dimension: an int is that length, "N" the clip's frame count, any other name any length.
Shape = tuple[int | str, ...]

KIND_NAMES = {
    "b": "booleans",
    "c": "complex numbers",
    "U": "text",
    "S": "bytes",
    "O": "Python objects",
    "V": "structured records",
    "M": "dates",
    "m": "time spans",
}


def check_array(
    report: Report,
    origin: Origin,
    value,
    shapes: Shape | list[Shape],
    n: int | None = None,
    dtype: type = np.float32,
) -> np.ndarray | None:
    """``value`` as a finite ``dtype`` array of one of ``shapes`` (``n`` frames), or None after one error.

    The error names ``origin``: "holds text (<U3), expected numbers", "is a scalar, expected
    (4, 45) or (4, 1, 45) (4 frames)", "has 1 NaN/inf values (frames 2)".
    """
    shapes = [shapes] if isinstance(shapes, tuple) else list(shapes)
    try:
        array = np.asarray(value)
    except ValueError:
        report.error(f"{origin} is not a rectangular array")
        return None
    if array.dtype.kind not in "iuf":
        report.error(
            f"{origin} holds {KIND_NAMES.get(array.dtype.kind, str(array.dtype))} ({array.dtype}), expected numbers"
        )
        return None
    matched = next((s for s in shapes if _fits(array.shape, s, n)), None)
    if matched is None:
        got = "is a scalar" if array.ndim == 0 else f"has shape {tuple(array.shape)}"
        frames = f" ({n} frames)" if n is not None and any("N" in s for s in shapes) else ""
        report.error(f"{origin} {got}, expected {' or '.join(_shape_text(s, n) for s in shapes)}{frames}")
        return None
    with np.errstate(over="ignore"):
        array = array.astype(dtype)
    bad = ~np.isfinite(array)
    if bad.any():
        rows = sorted({int(i) for i in np.nonzero(bad)[0]}) if matched[:1] == ("N",) else []
        at = f" (frames {short_list(rows)})" if rows else ""
        report.error(f"{origin} has {int(bad.sum())} NaN/inf values{at}")
        return None
    return array


def _fits(shape: tuple[int, ...], spec: Shape, n: int | None) -> bool:
    if len(shape) != len(spec):
        return False
    return all(a == s if isinstance(s, int) else (s != "N" or n is None or a == n) for a, s in zip(shape, spec))


def _shape_text(spec: Shape, n: int | None) -> str:
    dims = [str(n) if s == "N" and n is not None else str(s) for s in spec]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


# -- what the arrays mean -------------------------------------------------------------------------

#: No length in a clip of a hand-held object is longer (metres); beyond it the units are likely mm.
MAX_METRES = 5.0
#: A focal length below this share of the image's long side (a field of view beyond 157 degrees)
#: is not a pinhole camera's in pixels: K is likely normalised.
MIN_FOCAL_SHARE = 0.1
#: The hand's projection may lie this many image sizes beside the image (MANO's origin is ~10 cm
#: from the wrist) before K and the pose are called inconsistent.
PROJECTION_MARGIN = 1.0

HAND_SHAPES: dict[str, Shape] = {"hand_pose": ("N", 45), "betas": (10,), "global_orient": ("N", 3), "transl": ("N", 3)}
GT_POSES = ("T_cam_from_obj", "T_hand_from_obj", "T_cam_from_hand")


def check_fps(report: Report, origin: Origin, value) -> float | None:
    """A frame rate: a positive finite number (not a boolean), or None after an error naming ``origin``."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        report.error(f"{origin} must be a positive number of frames per second, got {value!r}")
        return None
    return float(value)


def check_intrinsics(report: Report, origin: Origin, K: np.ndarray, image_size: tuple[int, int]) -> None:
    """Focal lengths positive and in pixels (not normalised), a proper last row; K already checked as (N, 3, 3)."""
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    if (fx <= 0).any() or (fy <= 0).any():
        report.error(
            f"{origin} has non-positive focal lengths (frames {short_list(np.flatnonzero((fx <= 0) | (fy <= 0)))})"
        )
        return
    if not np.allclose(K[:, 2], [0.0, 0.0, 1.0]) or not np.allclose(K[:, 1, 0], 0.0):
        report.error(f"{origin} is not an intrinsics matrix (last row must be [0, 0, 1], K[1, 0] = 0)")
        return
    h, w = image_size
    f = float(min(fx.min(), fy.min()))
    if f < MIN_FOCAL_SHARE * max(h, w):
        fov = math.degrees(2 * math.atan(w / (2 * f)))
        report.error(
            f"{origin} has a focal length of {f:.3g} px for a {w}x{h} image (a {fov:.0f} degree field of view); "
            "is K normalised? hoirecon needs pixels"
        )


def check_transforms(report: Report, origin: Origin, T: np.ndarray) -> None:
    """Rigid (N, 4, 4) transforms; T already checked for shape and NaN."""
    R = T[:, :3, :3]
    ortho = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bad = np.flatnonzero((ortho > 1e-3) | (det < 0) | (np.abs(T[:, 3] - [0, 0, 0, 1]).max(axis=1) > 1e-6))
    if len(bad):
        report.error(f"{origin} is not a rigid transform in frames {short_list(bad)}")


def check_metres(report: Report, origin: Origin, lengths: np.ndarray, what: str) -> None:
    """An error when the median of ``lengths`` (metres, e.g. translations) is beyond a few metres."""
    typical = float(np.median(lengths)) if np.size(lengths) else 0.0
    if typical > MAX_METRES:
        report.error(f"{origin} {what} {typical:.4g} m; looks like millimetres: hoirecon uses metres")


def check_projection(report: Report, clip: Clip) -> bool:
    """The initial hand (its MANO origin) in front of the camera and in or near the image in most frames.

    K and the pose then agree on pixels; a principal point or focal length meant for other frames
    puts the hand far outside. False when the clip has no pose to project.
    """
    if clip.T_cam_from_hand is None and clip.hands is None:
        return False
    n = len(clip)
    T = clip.T_cam_from_hand if clip.T_cam_from_hand is not None else np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    transl = clip.hands.transl if clip.hands is not None else np.zeros((n, 3), np.float32)
    p = np.einsum("nij,nj->ni", T[:, :3, :3].astype(np.float64), transl) + T[:, :3, 3]
    z = p[:, 2]
    uvw = np.einsum("nij,nj->ni", clip.K.astype(np.float64), p)
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uvw[:, 0] / z, uvw[:, 1] / z
    h, w = clip.image_size
    m = PROJECTION_MARGIN
    out = (z <= 0) | (u < -m * w) | (u > (1 + m) * w) | (v < -m * h) | (v > (1 + m) * h)
    if out.sum() * 2 > n:
        i = int(np.flatnonzero(out)[0])
        seen = f"depth {z[i]:.3g} m, not in front of the camera" if z[i] <= 0 else f"at ({u[i]:.0f}, {v[i]:.0f}) px"
        k = clip.origin("K")
        pose = clip.origin("T_cam_from_hand" if clip.T_cam_from_hand is not None else "hands.transl")
        by = f"'{pose.key}'" if pose.file == k.file and pose.key else str(pose)
        report.error(
            f"{k} puts the hand ({by}) outside the {w}x{h} image in frames {short_list(np.flatnonzero(out))} "
            f"(frame {i}: {seen}); is K for images of this size, in pixels?"
        )
    return True


def check_hands(report: Report, clip: Clip, group: str, hands: HandParams) -> None:
    for name, shape in HAND_SHAPES.items():
        check_array(report, clip.origin(f"{group}.{name}"), getattr(hands, name), shape, len(clip))


def check_geometry(report: Report, clip: Clip) -> None:
    """Units, rigidity and projection, on arrays that passed ``check_array``."""
    check_intrinsics(report, clip.origin("K"), clip.K, clip.image_size)
    poses = [("T_cam_from_hand", clip.T_cam_from_hand)]
    poses += [(f"gt.{name}", getattr(clip.gt, name)) for name in GT_POSES if clip.gt is not None]
    for name, T in poses:
        if T is not None:
            check_transforms(report, clip.origin(name), T)
            lengths = np.linalg.norm(T[:, :3, 3], axis=1)
            check_metres(report, clip.origin(name), lengths, "has a median translation of")
    for group, hands in (("hands", clip.hands), ("gt.hands", clip.gt.hands if clip.gt else None)):
        if hands is not None:
            lengths = np.linalg.norm(hands.transl, axis=1)
            check_metres(report, clip.origin(f"{group}.transl"), lengths, "has a median length of")
    if clip.gt is not None and clip.gt.object_vertices is not None:
        size = np.ptp(clip.gt.object_vertices, axis=0).max()
        check_metres(report, clip.origin("gt.object_vertices"), np.array([size]), "spans")
    if not check_projection(report, clip):
        h, w = clip.image_size
        cx, cy = clip.K[:, 0, 2], clip.K[:, 1, 2]
        if ((cx < 0) | (cx > w) | (cy < 0) | (cy > h)).any():
            report.warn(
                f"{clip.origin('K')}: principal point outside the {w}x{h} image in some frames; is K in pixels?"
            )


def check_masks(report: Report, clip: Clip) -> None:
    """Empty frames (weights), overlap (hand wins), all-empty clips."""
    hand_area = clip.hand_masks.reshape(len(clip), -1).sum(axis=1)
    obj_area = clip.object_masks.reshape(len(clip), -1).sum(axis=1)
    if (obj_area == 0).all():
        report.error(f"{clip.path}: every object mask is empty")
    if (hand_area == 0).all():
        report.error(f"{clip.path}: every hand mask is empty")
    overlap = (clip.hand_masks & clip.object_masks).reshape(len(clip), -1).sum(axis=1)
    if overlap.any():
        frac = overlap / np.maximum(obj_area, 1)
        worst = int(np.argmax(frac))
        if frac[worst] > 0.5:
            report.error(
                f"{clip.path}: hand and object masks overlap on {frac[worst]:.0%} of the object in frame "
                f"{clip.frame_names[worst]}; are the mask folders swapped or identical?"
            )
        else:
            report.warn(
                f"{clip.path}: hand and object masks overlap in {int((overlap > 0).sum())} frame(s) "
                f"(at most {frac[worst]:.1%} of the object); overlapping pixels count as hand"
            )
            clip.object_masks &= ~clip.hand_masks
    empty = np.flatnonzero((hand_area == 0) | (obj_area == 0))
    weights = np.ones(len(clip), dtype=np.float32)
    if len(empty) and len(empty) < len(clip):
        weights[empty] = 0.0
        names = [clip.frame_names[i] for i in empty]
        report.warn(f"{clip.path}: empty hand or object mask in frame(s) {short_list(names)}; they get weight 0")
    clip.frame_weights = weights


def check_clip(report: Report, clip: Clip) -> None:
    """Checks every format shares, on a fully loaded clip; messages name each value's origin."""
    n = len(clip)
    if n < MIN_FRAMES:
        report.error(f"{clip.path}: {n} frame(s); a fit needs at least {MIN_FRAMES}")
    check_fps(report, clip.origin("fps"), clip.fps)
    before = len(report.errors)
    check_array(report, clip.origin("K"), clip.K, ("N", 3, 3), n)
    if clip.T_cam_from_hand is not None:
        check_array(report, clip.origin("T_cam_from_hand"), clip.T_cam_from_hand, ("N", 4, 4), n)
    if clip.hands is not None:
        check_hands(report, clip, "hands", clip.hands)
    if clip.gt is not None:
        for name in GT_POSES:
            if getattr(clip.gt, name) is not None:
                check_array(report, clip.origin(f"gt.{name}"), getattr(clip.gt, name), ("N", 4, 4), n)
        if clip.gt.hands is not None:
            check_hands(report, clip, "gt.hands", clip.gt.hands)
    if len(report.errors) == before:  # what the arrays mean, once they are sound
        check_geometry(report, clip)
    check_masks(report, clip)
    category = normalize_category(clip.category)
    if not category:
        report.warn(f"{clip.path}: no object category; the prior runs unconditioned")
    elif category not in KNOWN_CATEGORIES:
        report.warn(
            f"{clip.path}: category '{clip.category}' is unknown to the prior "
            f"(known: {', '.join(KNOWN_CATEGORIES)}); the prior runs unconditioned"
        )
    clip.category = category


def finish(report: Report, clip: Clip) -> Clip:
    """Run the shared checks, raise on errors, attach and emit warnings."""
    check_clip(report, clip)
    report.raise_if_errors()
    clip.warnings = list(report.warnings)
    for message in report.warnings:
        warnings.warn(message, HoireconWarning, stacklevel=3)
    return clip


def short_list(items: Iterable, limit: int = 6) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")
