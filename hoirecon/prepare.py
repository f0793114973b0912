"""From a user's own video (or a clip of frames with no masks) to a clip ``hoirecon fit`` can read.

``hoirecon data video my.mp4 --category mug --object-box x0,y0,x1,y1 --out clips/mine`` decodes the
video, finds the hand with MediaPipe, crops one square around the hand and the object, fits the hand
model to the landmarks (``init/landmark_fit``), renders its silhouette and bootstraps both masks with
GrabCut (``data/bootstrap_masks``), then writes the clip in hoirecon's layout with the hands in
hands.npz. ``hoirecon data masks CLIP --object-box ...`` does the last steps for a clip that has
frames but no masks. docs/data.md, section "From a video", has the details and the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import yaml

from hoirecon.data.bootstrap_masks import boxes_moving_with_hand, refine_hand_masks, track_object_masks
from hoirecon.data.clip import Clip, HandParams, Report
from hoirecon.data.files import ArrayFile
from hoirecon.data.formats.folder import read_video
from hoirecon.data.formats.hoirecon import HAND_KEYS, write_clip
from hoirecon.data.images import list_frames, read_rgb
from hoirecon.data.video import Crop, crop_frames, cropped_intrinsics, square_crop
from hoirecon.errors import ConfigError, DataError
from hoirecon.geometry.camera import intrinsics_from_fov
from hoirecon.geometry.transforms import transform_points
from hoirecon.init.base import HandFn, HandInit
from hoirecon.init.landmark_fit import hand_joints
from hoirecon.init.mediapipe import (
    DEPTH_ROUNDS,
    MediaPipeInitializer,
    detect,
    hand_silhouettes,
    init_from_landmarks,
    scaled_to_masks,
)
from hoirecon.init.mediapipe_detect import Landmarks
from hoirecon.registry import build
from hoirecon.utils.io import atomic_folder, atomic_path, atomic_write_text
from hoirecon.utils.progress import progress_bar

#: GrabCut reaches REACH pixels past the fitted silhouette when it sizes the hand for its depth
#: (DEPTH_ROUNDS times; docs/data.md, "From a video").
REACH = 10
#: Written beside a video's clip: the square it was cut from (x0, y0, side in video pixels; size).
CROP_FILE = "video_crop.yaml"


@dataclass
class VideoOptions:
    """How ``hoirecon data video`` turns a video into a clip."""

    category: str = ""
    #: Horizontal field of view of the video camera, degrees (phones: 60-70 for the main camera).
    fov_degrees: float = 65.0
    #: Side of the square clip frames, pixels.
    size: int = 256
    stride: int = 1
    max_frames: int = 0
    #: Flip the frames left-right: a left hand becomes the right hand hoirecon fits (the object is mirrored).
    mirror: bool = False
    initializer: MediaPipeInitializer.Config = field(default_factory=MediaPipeInitializer.Config)


def zoom_around(box: tuple[float, float, float, float], image_size: tuple[int, int]) -> Crop:
    """The square twice the object box's size around it: where the hand holding it is, zoomed for the detector."""
    return square_crop(np.array([box]), image_size, 256, margin=2.0)


def bootstrap(
    clip: Clip,
    object_box: tuple[float, float, float, float],
    landmarks: Landmarks | None = None,
    initializer: MediaPipeInitializer.Config | None = None,
) -> Clip:
    """``clip`` with hands (hands.npz's fields), hand masks and object masks from its frames alone.

    ``landmarks`` are detected when not given; ``object_box`` is the object on the first frame.
    """
    cfg = initializer or MediaPipeInitializer.Config()
    if landmarks is None:
        landmarks = detect(clip.images, cfg, (zoom_around(object_box, clip.image_size),))
    hand_model = build("hand_model", {"type": "mano"})
    init = init_from_landmarks(clip, hand_model, landmarks, cfg)
    with progress_bar(2 + DEPTH_ROUNDS, "masks (GrabCut)") as advance:
        for _ in range(DEPTH_ROUNDS if cfg.depth_from_masks else 0):
            # how big the hand really is in the image: GrabCut let far past the fitted silhouette
            silhouettes = hand_silhouettes(hand_model, init, clip.K, clip.image_size)
            wide = refine_hand_masks(clip.images, silhouettes, band=REACH)
            init = scaled_to_masks(hand_model, init, wide, clip.K, silhouettes)
            advance()
        silhouettes = hand_silhouettes(hand_model, init, clip.K, clip.image_size)
        hand = refine_hand_masks(clip.images, silhouettes, landmarks.pixels)
        advance()
        T = init.T_cam_from_hand.numpy().astype(np.float64)
        boxes = boxes_moving_with_hand(object_box, T, clip.K.astype(np.float64), _hand_depth(hand_model, init))
        try:
            obj = track_object_masks(clip.images, boxes, hand)
        except ValueError as exc:
            raise ConfigError(f"--object-box: {exc}") from None
        advance()
    n = len(clip)
    clip.hand_masks, clip.object_masks = hand, obj & ~hand
    clip.hands = HandParams(init.hand_pose.numpy(), init.betas.numpy(), np.zeros((n, 3)), np.zeros((n, 3)))
    clip.T_cam_from_hand = init.T_cam_from_hand.numpy()
    clip.warnings = list(init.notes)
    return clip


def video_to_clip(
    video: str | Path, out: str | Path, object_box: tuple[float, float, float, float], options: VideoOptions
) -> tuple[Clip, Crop, Landmarks]:
    """Decode ``video``, crop it around the hand and object, bootstrap hands and masks, write the clip to ``out``.

    Returns the clip, the crop that maps video pixels to clip pixels, and the landmarks (video pixels).
    """
    video, out = Path(video), Path(out)
    if out.exists():
        raise DataError(f"{out}: already exists; choose a new --out folder")
    if not video.is_file():
        raise DataError(f"{video}: video not found")
    report = Report(video)
    decoded = read_video(report, video, options.stride, options.max_frames)
    report.raise_if_errors()
    frames, fps = decoded
    h, w = frames.shape[1:3]
    if options.mirror:
        frames = np.ascontiguousarray(frames[:, :, ::-1])
        object_box = (w - object_box[2], object_box[1], w - object_box[0], object_box[3])
    cfg = options.initializer
    landmarks = detect(frames, cfg, (zoom_around(object_box, (h, w)),))
    boxes = [object_box] + [_landmark_box(p) for p in landmarks.pixels[landmarks.found]]
    crop = square_crop(np.array(boxes), (h, w), options.size)
    K = cropped_intrinsics(intrinsics_from_fov(options.fov_degrees, h, w).numpy(), crop)
    n = len(frames)
    clip = Clip(
        path=out,
        frame_names=[f"{i * options.stride:06d}" for i in range(n)],
        images=crop_frames(frames, crop),
        hand_masks=np.zeros((n, crop.size, crop.size), dtype=bool),
        object_masks=np.zeros((n, crop.size, crop.size), dtype=bool),
        K=np.broadcast_to(K.astype(np.float32), (n, 3, 3)).copy(),
        category=options.category,
        fps=fps,
        source=f"video {video.name}" + (" (mirrored)" if options.mirror else ""),
    )
    cropped = Landmarks(crop.points(landmarks.pixels), landmarks.world, landmarks.score, landmarks.right)
    bootstrap(clip, crop.box(object_box), cropped, cfg)
    write_clip(clip, out)
    write_crop(out, crop, video)
    return clip, crop, landmarks


def write_crop(clip_dir: str | Path, crop: Crop, video: str | Path) -> None:
    """Record beside the clip which square of which video it was cut from (``CROP_FILE``)."""
    text = yaml.safe_dump({"video": str(video), **crop.as_dict()}, sort_keys=False)
    atomic_write_text(Path(clip_dir) / CROP_FILE, text)


def read_crop(clip_dir: str | Path) -> Crop:
    """The crop ``hoirecon data video`` cut the clip with (video pixels -> clip pixels)."""
    path = Path(clip_dir) / CROP_FILE
    if not path.is_file():
        raise DataError(f"{path}: not found (the clip was not made by hoirecon data video)")
    values = yaml.safe_load(path.read_text())
    return Crop(float(values["x0"]), float(values["y0"]), float(values["side"]), int(values["size"]))


def masks_for_clip(
    path: str | Path,
    object_box: tuple[float, float, float, float],
    fov_degrees: float = 0.0,
    overwrite: bool = False,
    initializer: MediaPipeInitializer.Config | None = None,
    category: str = "",
) -> Clip:
    """Write masks/hand, masks/object and hands.npz for a clip folder with images/ (K in cameras.npz or
    a FOV); and meta.yaml if it has none (``category``, 30 fps), so the folder is a hoirecon clip."""
    path = Path(path)
    report = Report(path)
    if not path.is_dir():
        raise DataError(f"{path}: clip folder not found")
    if (path / "masks").exists() and not overwrite:
        raise DataError(f"{path}/masks: already exists (pass --overwrite to replace the masks)")
    files = list_frames(report, path / "images", "images")
    report.raise_if_errors()
    names = sorted(files)
    images = [read_rgb(report, files[name]) for name in names]
    report.raise_if_errors()
    if len({i.shape for i in images}) > 1:
        raise DataError(f"{path / 'images'}: the images differ in size")
    images = np.stack(images)
    n, h, w = images.shape[:3]
    cameras = None  # the clip's other camera arrays, kept when cameras.npz is rewritten
    if (path / "cameras.npz").is_file():
        file = ArrayFile(report, path / "cameras.npz", required=("K",))
        K = file.read("K", [("N", 3, 3), (3, 3)], n)
        report.raise_if_errors()
        K = np.broadcast_to(K, (n, 3, 3)).copy() if K.shape == (3, 3) else K
        cameras = file.stored()
    elif fov_degrees > 0:
        K = np.broadcast_to(intrinsics_from_fov(fov_degrees, h, w).numpy(), (n, 3, 3)).copy()
    else:
        raise DataError(
            f"{path}: no cameras.npz with K", hint="pass --fov DEGREES (the camera's horizontal field of view)"
        )
    has_meta = (path / "meta.yaml").is_file()
    meta = yaml.safe_load((path / "meta.yaml").read_text()) if has_meta else {}
    category = category or str(meta.get("category", ""))
    clip = Clip(path, names, images, np.zeros((n, h, w), bool), np.zeros((n, h, w), bool), K, category)
    bootstrap(clip, object_box, None, initializer)
    _write_masks_and_hands(clip, path, cameras)
    if not has_meta:
        meta = {"category": category, "fps": 30, "image_size": [h, w], "source": "hoirecon data masks", "units": "m"}
        atomic_write_text(path / "meta.yaml", yaml.safe_dump(meta, sort_keys=False))
    return clip


def _write_masks_and_hands(clip: Clip, path: Path, cameras: dict | None) -> None:
    """masks/ as one folder renamed into place, then hands.npz and cameras.npz, each atomically."""
    with atomic_folder(path / "masks") as tmp:
        for kind, masks in (("hand", clip.hand_masks), ("object", clip.object_masks)):
            (tmp / kind).mkdir()
            for name, mask in zip(clip.frame_names, masks):
                iio.imwrite(tmp / kind / f"{name}.png", mask.astype(np.uint8) * 255)
    with atomic_path(path / "hands.npz") as hands_tmp:
        np.savez(hands_tmp, **{key: getattr(clip.hands, key) for key in HAND_KEYS})
    with atomic_path(path / "cameras.npz") as cameras_tmp:
        np.savez(cameras_tmp, **{**(cameras or {}), "K": clip.K, "T_cam_from_hand": clip.T_cam_from_hand})


def _hand_depth(hand_model: HandFn, init: HandInit) -> float:
    """The mean camera depth of the initialised hand's joints on frame 0, metres."""
    with torch.no_grad():
        joints = hand_joints(hand_model, init.hand_pose[:1], init.betas[None])
        return float(transform_points(init.T_cam_from_hand[:1], joints)[0, :, 2].mean())


def _landmark_box(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """(21, 2) landmarks -> their bounding box, grown by a fifth of its size (the hand is wider than its joints)."""
    (x0, y0), (x1, y1) = pixels.min(axis=0), pixels.max(axis=0)
    pad = 0.2 * max(x1 - x0, y1 - y0)
    return x0 - pad, y0 - pad, x1 + pad, y1 + pad
