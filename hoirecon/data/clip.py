"""The Clip: everything a fit reads from one video clip, validated once when it is loaded.

Arrays are numpy, in the clip's frame order. Frames: cameras see the hand frame through
``T_cam_from_hand``; ground truth (for evaluation only) adds the object frame. Units are metres.
"""

from __future__ import annotations

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

    def __len__(self) -> int:
        return len(self.frame_names)

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
        self.errors.append(message)

    def warn(self, message: str) -> None:
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


# -- validation of loaded arrays ------------------------------------------------------------------


def check_finite(report: Report, where: str, name: str, array: np.ndarray) -> bool:
    if not np.issubdtype(array.dtype, np.number):
        report.error(f"{where}: '{name}' is not numeric ({array.dtype})")
        return False
    bad = ~np.isfinite(array)
    if bad.any():
        frames = sorted({int(i) for i in np.argwhere(bad)[:, 0]}) if array.ndim > 1 else []
        at = f" (frames {short_list(frames)})" if frames else ""
        report.error(f"{where}: '{name}' has {int(bad.sum())} NaN/inf values{at}")
        return False
    return True


def check_shape(report: Report, where: str, name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> bool:
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        report.error(f"{where}: '{name}' has shape {tuple(array.shape)}, expected {want}")
    return ok


def check_intrinsics(report: Report, where: str, K: np.ndarray, n_frames: int, image_size: tuple[int, int]) -> None:
    if not check_shape(report, where, "K", K, (n_frames, 3, 3)) or not check_finite(report, where, "K", K):
        return
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    if (fx <= 0).any() or (fy <= 0).any():
        report.error(
            f"{where}: 'K' has non-positive focal lengths (frames {short_list(np.flatnonzero((fx <= 0) | (fy <= 0)))})"
        )
    if not np.allclose(K[:, 2], [0.0, 0.0, 1.0]) or not np.allclose(K[:, 1, 0], 0.0):
        report.error(f"{where}: 'K' is not an intrinsics matrix (last row must be [0, 0, 1], K[1, 0] = 0)")
    h, w = image_size
    cx, cy = K[:, 0, 2], K[:, 1, 2]
    if ((cx < 0) | (cx > w) | (cy < 0) | (cy > h)).any():
        report.warn(f"{where}: principal point outside the {w}x{h} image in some frames; is K in pixels?")


def check_transforms(report: Report, where: str, name: str, T: np.ndarray, n_frames: int) -> None:
    if not check_shape(report, where, name, T, (n_frames, 4, 4)) or not check_finite(report, where, name, T):
        return
    R = T[:, :3, :3]
    ortho = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bad = np.flatnonzero((ortho > 1e-3) | (det < 0) | (np.abs(T[:, 3] - [0, 0, 0, 1]).max(axis=1) > 1e-6))
    if len(bad):
        report.error(f"{where}: '{name}' is not a rigid transform in frames {short_list(bad)}")


def check_hands(report: Report, where: str, hands: HandParams, n_frames: int) -> None:
    for name, shape in [
        ("hand_pose", (n_frames, 45)),
        ("betas", (10,)),
        ("global_orient", (n_frames, 3)),
        ("transl", (n_frames, 3)),
    ]:
        array = getattr(hands, name)
        if check_shape(report, where, name, array, shape):
            check_finite(report, where, name, array)


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
    """Checks every format shares, on a fully loaded clip."""
    n = len(clip)
    if n < MIN_FRAMES:
        report.error(f"{clip.path}: {n} frame(s); a fit needs at least {MIN_FRAMES}")
    check_intrinsics(report, f"{clip.path} (intrinsics)", clip.K, n, clip.image_size)
    if clip.T_cam_from_hand is not None:
        check_transforms(report, f"{clip.path} (cameras)", "T_cam_from_hand", clip.T_cam_from_hand, n)
    if clip.hands is not None:
        check_hands(report, f"{clip.path} (hands)", clip.hands, n)
    if clip.gt is not None:
        for name in ("T_cam_from_obj", "T_hand_from_obj", "T_cam_from_hand"):
            if getattr(clip.gt, name) is not None:
                check_transforms(report, f"{clip.path} (ground truth)", name, getattr(clip.gt, name), n)
        if clip.gt.hands is not None:
            check_hands(report, f"{clip.path} (ground-truth hands)", clip.gt.hands, n)
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
