"""Hand landmarks from MediaPipe Hands, the CPU hand tracker whose models ship inside its wheel.

``mediapipe==0.10.21`` carries the palm-detection and hand-landmark models in the package (later
releases download them), so detection runs offline: ``pip install -e ".[video]"``. Frames are fed in
tracking mode (the landmark model follows the hand from frame to frame, and palm detection runs
again only when it loses it), upscaled so their short side is at least ``min_side`` pixels: on the
128 px demo mug this finds the hand in 24 of 24 frames against 9 of 24 frame by frame
(docs/data.md, section "From a video").

MediaPipe's handedness assumes a mirrored (selfie) image; ``Landmarks.right`` is un-mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hoirecon.data.video import Crop, crop_frames
from hoirecon.errors import HoireconError
from hoirecon.utils.progress import progress_bar
from hoirecon.utils.quiet import native_stderr_hidden


@dataclass
class Landmarks:
    """MediaPipe's detections for N frames; NaN (and score 0) where no hand was found.

    pixels (N, 21, 2) image pixels (u, v); world (N, 21, 3) metres, camera-aligned axes, centred near
    the hand's middle; score (N,) handedness confidence in [0.5, 1]; right (N,) bool, the hand is a
    right hand in the (un-mirrored) image.
    """

    pixels: np.ndarray
    world: np.ndarray
    score: np.ndarray
    right: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """(N,) bool: frames with a detection."""
        return np.isfinite(self.pixels).all(axis=(1, 2))

    def __len__(self) -> int:
        return len(self.pixels)

    @classmethod
    def empty(cls, n: int) -> Landmarks:
        """N frames with no detection."""
        return cls(np.full((n, 21, 2), np.nan), np.full((n, 21, 3), np.nan), np.zeros(n), np.zeros(n, dtype=bool))


def import_mediapipe() -> Any:
    """The mediapipe module, or a one-line error saying how to install it."""
    try:
        import mediapipe  # heavy (and optional): only when detecting hands
    except ImportError as exc:
        raise HoireconError(
            f"the MediaPipe hand detector is not installed ({exc})",
            hint='pip install -e ".[video]"  (mediapipe==0.10.21, the last release with its models in the wheel)',
        ) from None
    if not hasattr(mediapipe, "solutions"):
        raise HoireconError(
            f"mediapipe {getattr(mediapipe, '__version__', '?')} has no bundled hand models",
            hint='pip install "mediapipe==0.10.21"  (or pip install -e ".[video]")',
        )
    return mediapipe


def detect_hands(
    images: np.ndarray,
    min_side: int = 256,
    min_detection_confidence: float = 0.3,
    min_tracking_confidence: float = 0.3,
    regions: tuple[Crop, ...] = (),
) -> Landmarks:
    """MediaPipe Hands over (N, H, W, 3) uint8 frames; one hand per frame.

    The tracker runs forwards and backwards through the frames (a hand found late is followed back
    to the start), then the same over each of ``regions`` (zoomed squares where the hand should be,
    for a palm too small for the detector); each frame keeps the first pass that found its hand. On
    six synthetic hoi4d-like videos this finds 68% of the hands against 50% for one forward pass
    (docs/data.md, "From a video").
    """
    n = len(images)
    views = [(images, None)] + [(crop_frames(images, crop), crop) for crop in regions]
    out = Landmarks.empty(n)
    with progress_bar(2 * len(views) * n, "hand landmarks") as advance:
        for frames, crop in views:
            for order in (np.arange(n), np.arange(n)[::-1]):
                found = _track(frames[order], min_side, min_detection_confidence, min_tracking_confidence, advance)
                new = found.found & ~out.found[order]
                for k in np.flatnonzero(new):
                    i = order[k]
                    out.pixels[i] = found.pixels[k] if crop is None else crop.points_back(found.pixels[k])
                    out.world[i], out.score[i], out.right[i] = found.world[k], found.score[k], found.right[k]
    return out


def _track(frames: np.ndarray, min_side: int, detection: float, tracking: float, advance) -> Landmarks:
    """One tracking pass over the frames in the order given."""
    import cv2  # mediapipe depends on OpenCV

    mp = import_mediapipe()
    n, h, w = frames.shape[:3]
    scale = max(1.0, min_side / min(h, w))
    out = Landmarks.empty(n)
    with native_stderr_hidden():  # MediaPipe logs its graph set-up to stderr
        hands = mp.solutions.hands.Hands(
            static_image_mode=False,
            max_num_hands=1,
            min_detection_confidence=detection,
            min_tracking_confidence=tracking,
        )
    with hands:
        for i in range(n):
            frame = frames[i]
            if scale > 1:
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            with native_stderr_hidden():
                result = hands.process(np.ascontiguousarray(frame))
            advance()
            if not result.multi_hand_landmarks:
                continue
            out.pixels[i] = [(p.x * w, p.y * h) for p in result.multi_hand_landmarks[0].landmark]
            out.world[i] = [(p.x, p.y, p.z) for p in result.multi_hand_world_landmarks[0].landmark]
            label = result.multi_handedness[0].classification[0]
            out.score[i] = label.score
            out.right[i] = label.label == "Left"  # MediaPipe labels as if the image were mirrored
    return out
