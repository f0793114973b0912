"""Reading frames and masks with precise errors, collected in a Report rather than raised one by one."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hoirecon.data.clip import Report, short_list

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_frames(report: Report, folder: Path, what: str) -> dict[str, Path]:
    """Frame name (file stem) -> path for the images in ``folder``; an error if there are none."""
    if not folder.is_dir():
        report.error(f"{folder}: {what} folder not found")
        return {}
    frames = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not frames:
        report.error(f"{folder}: no {what} (.png/.jpg) found")
    return frames


def match_frames(
    report: Report, reference: dict[str, Path], other: dict[str, Path], ref_dir: Path, other_dir: Path
) -> None:
    """Missing or extra frames of ``other`` compared to ``reference``, named."""
    missing = sorted(set(reference) - set(other))
    extra = sorted(set(other) - set(reference))
    if missing:
        report.error(f"{other_dir}: missing {len(missing)} frame(s) that {ref_dir.name}/ has: {short_list(missing)}")
    if extra:
        report.error(f"{other_dir}: {len(extra)} extra frame(s) not in {ref_dir.name}/: {short_list(extra)}")


def read_rgb(report: Report, path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8, or None after reporting why not."""
    image = _read(report, path)
    if image is None:
        return None
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image // 257).astype(np.uint8)
        else:
            report.error(f"{path}: unsupported pixel type {image.dtype}")
            return None
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        report.error(f"{path}: expected an RGB image, got shape {image.shape}")
        return None
    return image[..., :3]


def read_mask(report: Report, path: Path, size: tuple[int, int] | None) -> np.ndarray | None:
    """(H, W) bool from a binary 0/255 (or 0/1) image; wrong size or grey levels are errors."""
    mask = _read(report, path)
    if mask is None:
        return None
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2) if mask.shape[2] >= 3 else mask[..., 0]
    if size is not None and mask.shape[:2] != size:
        h, w = size
        report.error(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image is {w}x{h}")
        return None
    values = np.unique(mask)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        report.error(
            f"{path}: mask is not binary ({len(values)} distinct values from {values.min()} to {values.max()}); "
            "save it as 0/255"
        )
        return None
    return mask > 0


def _read(report: Report, path: Path) -> np.ndarray | None:
    try:
        return np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.error(f"{path}: unreadable image ({first})")
        return None
