"""A plain clip: frames as an image folder or a video file, masks as folders or videos, K from config.

Select it explicitly (it is never auto-detected), e.g. in a fit config::

    clip_format: {type: folder, images: video.mp4, hand_masks: hand.mp4, object_masks: masks/object,
                  fov_degrees: 60, category: mug}

Paths are relative to the clip folder. Masks from a folder must be binary PNGs, or JPEGs, which are
thresholded at half their range (with a warning) as masks decoded from a video are, since lossy
codecs blur their edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoirecon.data.clip import Clip, Origin, Report, check_array, finish
from hoirecon.data.files import first_line
from hoirecon.data.images import IMAGE_SUFFIXES, list_frames, match_frames, read_masks, read_rgb
from hoirecon.dataclass_config import ranged
from hoirecon.geometry.camera import intrinsics_from_fov
from hoirecon.registry import register

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def read_video(report: Report, path: Path, stride: int = 1, max_frames: int = 0) -> tuple[np.ndarray, float] | None:
    """(N, H, W, 3) uint8 frames of a video and its frame rate (after ``stride``), or None."""
    import av  # imported here: only this format and the HOI4D converter decode video

    frames = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 30) / stride
            for i, frame in enumerate(container.decode(stream)):
                if i % stride == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if max_frames and len(frames) >= max_frames:
                        break
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's problem
        report.error(f"{path}: unreadable video ({first_line(exc)})")
        return None
    if not frames:
        report.error(f"{path}: video has no frames")
        return None
    return np.stack(frames), rate


@register("clip_format", "folder")
class FolderFormat:
    #: Detection order (highest first): never detected: it needs K or a field of view from the user.
    priority = 0

    @dataclass
    class Config:
        #: Image folder or video file of the RGB frames.
        images: str = "images"
        #: Folder of binary hand masks, or a mask video.
        hand_masks: str = "masks/hand"
        #: Folder of binary object masks, or a mask video.
        object_masks: str = "masks/object"
        #: 3x3 pixel intrinsics shared by all frames; if empty, `fov_degrees` is used.
        K: list[list[float]] | None = None
        #: Horizontal field of view in degrees, used when K is not given (0: not given, K is needed).
        fov_degrees: float = ranged(0.0, at_least=0, below=180)
        category: str = ""
        #: Frame rate; 0 = the video's, or 30 for image folders.
        fps: float = ranged(0.0, at_least=0)
        #: Keep every stride-th frame.
        stride: int = ranged(1, at_least=1)
        #: Keep at most this many frames (after stride); 0 = all.
        max_frames: int = ranged(0, at_least=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @staticmethod
    def detect(path: Path) -> bool:
        return False  # needs K or a field of view from the user: never guessed

    def load(self, path: str | Path) -> Clip:
        path = Path(path)
        cfg = self.cfg
        report = Report(path)
        if not path.is_dir():
            report.error(f"{path}: clip folder not found")
        if cfg.K is None and cfg.fov_degrees <= 0:
            report.error(f"{path}: the folder format needs K (3x3) or fov_degrees in its config")
        if cfg.stride < 1:
            report.error(f"{path}: stride must be >= 1, got {cfg.stride}")
        report.raise_if_errors()

        images, fps, names = self._read_images(report, path / cfg.images)
        size = images.shape[1:3] if images is not None else None
        hand = self._read_masks(report, path / cfg.hand_masks, names, path / cfg.images, size)
        obj = self._read_masks(report, path / cfg.object_masks, names, path / cfg.images, size)
        report.raise_if_errors()

        n, (h, w) = len(images), size
        config = f"{path} (clip_format)"
        if cfg.K is not None:
            K = check_array(report, Origin(config, "K"), cfg.K, (3, 3))
            report.raise_if_errors()
        else:
            K = intrinsics_from_fov(cfg.fov_degrees, h, w).numpy()
        clip = Clip(
            path=path,
            frame_names=names,
            images=images,
            hand_masks=hand,
            object_masks=obj,
            K=np.broadcast_to(K, (n, 3, 3)).copy(),
            category=cfg.category,
            fps=cfg.fps or fps,
            source=f"folder ({cfg.images})",
            origins={"K": Origin(config, "K" if cfg.K is not None else "fov_degrees"), "fps": Origin(config, "fps")},
        )
        return finish(report, clip)

    def _read_images(self, report: Report, source: Path) -> tuple[np.ndarray | None, float, list[str]]:
        cfg = self.cfg
        if source.suffix.lower() in VIDEO_SUFFIXES:
            if not source.is_file():
                problem = "is a folder, expected a video file" if source.is_dir() else "video not found"
                report.error(f"{source}: {problem}")
                return None, 0.0, []
            video = read_video(report, source, cfg.stride, cfg.max_frames)
            if video is None:
                return None, 0.0, []
            frames, fps = video
            return frames, fps, [f"{i * cfg.stride:06d}" for i in range(len(frames))]
        files = list_frames(report, source, "images")
        names = sorted(files)[:: cfg.stride]
        if cfg.max_frames:
            names = names[: cfg.max_frames]
        frames = [read_rgb(report, files[name]) for name in names]
        if any(f is None for f in frames):
            return None, 0.0, names
        sizes = {f.shape for f in frames}
        if len(sizes) > 1:
            report.error(f"{source}: images differ in size ({', '.join(str(s[1]) + 'x' + str(s[0]) for s in sizes)})")
            return None, 0.0, names
        return (np.stack(frames) if frames else None), 30.0, names

    def _read_masks(
        self, report: Report, source: Path, names: list[str], image_source: Path, size: tuple[int, int] | None
    ) -> np.ndarray | None:
        cfg = self.cfg
        if not names:  # the frames failed to load; that error is already reported
            return None
        if source.suffix.lower() in VIDEO_SUFFIXES:
            if not source.is_file():
                problem = "is a folder, expected a video file" if source.is_dir() else "mask video not found"
                report.error(f"{source}: {problem}")
                return None
            video = read_video(report, source, cfg.stride, cfg.max_frames)
            if video is None:
                return None
            masks = video[0].max(axis=3) >= 128
            if len(masks) != len(names):
                report.error(f"{source}: {len(masks)} frames, the images have {len(names)}")
                return None
            if size is not None and masks.shape[1:] != tuple(size):
                report.error(f"{source}: masks are {masks.shape[2]}x{masks.shape[1]}, images {size[1]}x{size[0]}")
                return None
            return masks
        files = list_frames(report, source, "masks")
        if not files:
            return None
        if image_source.suffix.lower() in VIDEO_SUFFIXES:  # frames are numbered; mask files are matched by order
            ordered = [files[k] for k in sorted(files)][:: cfg.stride][: len(names)]
            if len(ordered) != len(names):
                report.error(f"{source}: {len(ordered)} masks for {len(names)} video frames")
                return None
            files = dict(zip(names, ordered))
        else:
            # compare with every image (not just the strided ones) so extra masks are still named
            all_images = {p.stem: p for p in image_source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
            match_frames(report, all_images, files, image_source, source)
            if any(name not in files for name in names):
                return None
        sizes = [tuple(size) if size is not None else None] * len(names)
        masks = read_masks(report, [files[name] for name in names], sizes)
        if any(m is None for m in masks):
            return None
        return np.stack(masks)
