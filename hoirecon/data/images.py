"""Reading frames and masks with precise errors, collected in a Report rather than raised one by one."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from hoirecon.data.clip import Report, short_list
from hoirecon.data.files import first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Formats whose compression blurs a mask's edges into grey levels.
LOSSY_SUFFIXES = (".jpg", ".jpeg")


def list_frames(report: Report, folder: Path, what: str) -> dict[str, Path]:
    """Frame name (file stem) -> path for the images in ``folder``; an error if there are none."""
    if folder.is_file():
        report.error(f"{folder}: is a file, expected a folder of {what}")
        return {}
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


def read_masks(report: Report, paths: list[Path], sizes: list[tuple[int, int] | None]) -> list[np.ndarray | None]:
    """``read_mask`` of each path (each of its frame's size); one warning per folder of thresholded JPEGs."""
    thresholded: list[Path] = []
    masks = [read_mask(report, path, size, thresholded) for path, size in zip(paths, sizes)]
    for folder in sorted({p.parent for p in thresholded}):
        count = sum(p.parent == folder for p in thresholded)
        report.warn(
            f"{folder}: {count} JPEG mask(s) with grey edges thresholded at half their range, like mask videos; "
            "PNG masks keep their edges exact"
        )
    return masks


def read_mask(
    report: Report, path: Path, size: tuple[int, int] | None, thresholded: list[Path] | None = None
) -> np.ndarray | None:
    """(H, W) bool from a two-valued mask: 0 and 1, 255 or (16-bit) 65535.

    Lossy files (JPEG) blur edges into grey levels: they are thresholded at half their range, as
    mask videos are, and listed in ``thresholded``; grey levels in a lossless file are an error.
    """
    mask = _read(report, path)
    if mask is None:
        return None
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2) if mask.shape[2] >= 3 else mask[..., 0]
    if size is not None and mask.shape[:2] != size:
        h, w = size
        report.error(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image is {w}x{h}")
        return None
    full = np.iinfo(mask.dtype).max if mask.dtype.kind in "iu" else 1
    values = np.unique(mask)
    if any(set(values.tolist()) <= {0, top} for top in (1, 255, full)):
        return mask > 0
    if path.suffix.lower() in LOSSY_SUFFIXES:
        if thresholded is not None:
            thresholded.append(path)
        return mask >= (full + 1) / 2
    depth = f"{mask.dtype.itemsize * 8}-bit" if mask.dtype.kind in "iu" else str(mask.dtype)
    report.error(
        f"{path}: mask is not binary ({len(values)} distinct values from {values.min()} to {values.max()}, "
        f"{depth}); save it with two values, 0 and 255"
    )
    return None


def _read(report: Report, path: Path) -> np.ndarray | None:
    try:
        return np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's problem
        report.error(f"{path}: unreadable image ({first_line(exc)})")
        return None
