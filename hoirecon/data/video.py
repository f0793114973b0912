"""Turning a video into a clip's frames: one square crop around the hand and object, resized, and K.

The crop is the same for every frame (so K is too): a square around the object box and every
frame's hand, grown by ``margin``; parts outside the video are padded by repeating its edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoirecon.errors import ConfigError
from hoirecon.utils.io import atomic_path


@dataclass(frozen=True)
class Crop:
    """A square of ``side`` pixels whose top-left corner is (x0, y0) in the video, resized to ``size``."""

    x0: float
    y0: float
    side: float
    size: int

    def as_dict(self) -> dict[str, float]:
        return {"x0": float(self.x0), "y0": float(self.y0), "side": float(self.side), "size": int(self.size)}

    @property
    def scale(self) -> float:
        """Clip pixels per video pixel."""
        return self.size / self.side

    def points(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) video pixels -> clip pixels."""
        return (uv - np.array([self.x0, self.y0])) * self.scale

    def points_back(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) clip pixels -> video pixels."""
        return uv / self.scale + np.array([self.x0, self.y0])

    def box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.points(np.array([box[:2], box[2:]], dtype=np.float64))
        return float(x0), float(y0), float(x1), float(y1)


def square_crop(boxes: np.ndarray, image_size: tuple[int, int], size: int, margin: float = 1.3) -> Crop:
    """The square around (B, 4) boxes (x0, y0, x1, y1), ``margin`` times larger, at most the image's long side."""
    boxes = np.asarray(boxes, dtype=np.float64)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = min(max(x1 - x0, y1 - y0) * margin, max(image_size))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Crop(cx - side / 2, cy - side / 2, side, size)


def crop_frames(frames: np.ndarray, crop: Crop) -> np.ndarray:
    """(N, H, W, 3) video frames -> (N, size, size, 3), edge-padded where the square leaves the video."""
    import cv2

    s = crop.scale
    # one affine map per frame: scale about the crop's corner; INTER_AREA-like quality from a pre-blur
    M = np.array([[s, 0, -crop.x0 * s], [0, s, -crop.y0 * s]], dtype=np.float64)
    out = []
    for frame in frames:
        if s < 0.5:  # shrinking a lot: blur first so fine texture does not alias
            frame = cv2.GaussianBlur(frame, (0, 0), 0.5 / s)
        out.append(
            cv2.warpAffine(frame, M, (crop.size, crop.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        )
    return np.stack(out)


def cropped_intrinsics(K: np.ndarray, crop: Crop) -> np.ndarray:
    """(3, 3) K of the video -> K of the crop."""
    out = np.array(K, dtype=np.float64)
    out[:2] *= crop.scale
    out[0, 2] -= crop.x0 * crop.scale
    out[1, 2] -= crop.y0 * crop.scale
    return out


def parse_box(text: str, what: str = "--object-box") -> tuple[float, float, float, float]:
    """'x0,y0,x1,y1' -> a box; a clear error for anything else."""
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} must be four numbers x0,y0,x1,y1 (pixels), got '{text}'") from None
    if x1 <= x0 or y1 <= y0:
        raise ConfigError(f"{what} {text}: x1 must exceed x0 and y1 exceed y0")
    return x0, y0, x1, y1


def write_video(path: str | Path, frames: np.ndarray, fps: float = 30.0, crf: int = 18) -> Path:
    """Encode (N, H, W, 3) uint8 frames as an H.264 mp4 (H and W even), atomically."""
    import av  # imported here: only video input and output need it

    n, h, w = frames.shape[:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 needs even frame sides, got {w}x{h}")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=round(fps))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf)}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
            container.mux(stream.encode())
    return Path(path)
