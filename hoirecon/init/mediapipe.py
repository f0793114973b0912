"""The ``mediapipe`` initialiser: hands from the clip's own frames, with no files but the images.

MediaPipe Hands finds 21 landmarks per frame on the CPU (``pip install -e ".[video]"``); the hand
model is fitted to them in full perspective with the clip's K (``landmark_fit``). Undetected frames
are interpolated and listed in the notes; detection scores become frame weights. hoirecon fits right
hands: a left hand is refused with a hint to mirror the video (docs/data.md, "From a video").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hoirecon.data.clip import Clip, short_list
from hoirecon.data.video import Crop
from hoirecon.dataclass_config import ranged
from hoirecon.errors import DataError
from hoirecon.init.base import HandFn, HandInit
from hoirecon.init.landmark_fit import LandmarkFitConfig, fit_to_landmarks
from hoirecon.init.mediapipe_detect import Landmarks, detect_hands
from hoirecon.init.steady_turn import degrees_between, steady_turn, turned_about
from hoirecon.registry import register
from hoirecon.render.raster import rasterize

#: The depth is set from the masks' size this many times (the silhouette, and so what the occluders
#: hide of it, changes with the depth).
DEPTH_ROUNDS = 2


@register("initializer", "mediapipe")
class MediaPipeInitializer:
    """Detect the hand in every frame, then fit the hand model to the landmarks."""

    @dataclass
    class Config:
        #: Frames are upscaled to at least this short side before detection (small frames miss hands).
        min_side: int = ranged(256, at_least=1)
        min_detection_confidence: float = ranged(0.3, at_least=0, at_most=1)
        min_tracking_confidence: float = ranged(0.3, at_least=0, at_most=1)
        #: Frame weight of a frame with no detection (its hand is interpolated); detected frames
        #: weigh their detection score (0-1).
        undetected_weight: float = ranged(0.5, at_least=0, at_most=1)
        #: Refuse a clip whose hand MediaPipe calls left in more than this share of its detections. Off
        #: (1) by default: on synthetic renders it calls our right hand left when it is seen from the
        #: back (a depth-mirrored reading, which the fit undoes); a note says so when most are left.
        max_left_share: float = ranged(1.0, at_least=0, at_most=1)
        #: Move each clip's hand along the camera rays so the part of its silhouette the object masks
        #: leave visible covers the hand masks' area (median over frames): MediaPipe's compact
        #: landmarks on our renders put it up to 3.7x too far.
        depth_from_masks: bool = True
        #: Frames whose hand rotation is more than this many degrees off the clip's steady turn, and
        #: undetected ones, take the turn's rotation (``hoirecon/init/steady_turn.py``); 0: off. Off
        #: by default: 25 raised the object's F@5 on four synthetic videos but worsened every hand
        #: (rotations that agree, not right ones), on clips whose cameras turn at constant speed (docs/data.md).
        steady_degrees: float = ranged(0.0, at_least=0, below=180)
        #: ... if the frames that agree with the turn carry at least this share of the detection weight
        #: (a hand that turns back and forth has no steady turn: its rotations stay as detected).
        steady_min_agreement: float = ranged(0.5, at_least=0, at_most=1)
        fit: LandmarkFitConfig = field(default_factory=LandmarkFitConfig)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def initialize(self, clip: Clip, hand_model: HandFn) -> HandInit:
        cfg = self.cfg
        init = init_from_landmarks(clip, hand_model, detect(clip.images, cfg), cfg)
        if cfg.depth_from_masks:
            init = depth_from_clip_masks(hand_model, init, clip)
        return init


def detect(images: np.ndarray, cfg: MediaPipeInitializer.Config, regions: tuple[Crop, ...] = ()) -> Landmarks:
    """``detect_hands`` with the initialiser's detection settings."""
    return detect_hands(images, cfg.min_side, cfg.min_detection_confidence, cfg.min_tracking_confidence, regions)


def init_from_landmarks(
    clip: Clip, hand_model: HandFn, landmarks: Landmarks, cfg: MediaPipeInitializer.Config
) -> HandInit:
    """The hands of ``clip`` from its landmarks, with notes and frame weights (see the module)."""
    found = landmarks.found
    if not found.any():
        raise DataError(
            f"{clip.path}: MediaPipe found no hand in any of the {len(clip)} frames",
            hint="is the hand large enough in the frame? try initializer.min_side=512 or a provided hands.npz",
        )
    left_share = float(1 - landmarks.right[found].mean())
    if left_share > cfg.max_left_share:
        raise DataError(
            f"{clip.path}: MediaPipe sees a left hand in {left_share:.0%} of the frames; hoirecon fits right hands",
            hint="mirror the video (hoirecon data video --mirror): the object then comes out mirrored too",
        )
    init = fit_to_landmarks(hand_model, landmarks, clip.K, cfg.fit)
    if cfg.steady_degrees > 0:
        scores = torch.as_tensor(np.where(found, landmarks.score, 0.0), dtype=torch.float32)
        init = with_steady_turn(hand_model, init, scores, cfg.steady_degrees, cfg.steady_min_agreement)
    init.frame_weights = torch.as_tensor(np.where(found, landmarks.score, cfg.undetected_weight), dtype=torch.float32)
    init.notes.append(f"MediaPipe found the hand in {int(found.sum())} of {len(clip)} frames")
    if left_share > 0.5:
        init.notes.append(
            f"MediaPipe calls the hand left in {left_share:.0%} of them; fitted as a right hand (its depth mirrored):"
            " if it is a left hand, make the clip again with --mirror"
        )
    missing = [clip.frame_names[i] for i in np.flatnonzero(~found)]
    if missing:
        init.notes.append(f"no hand detected in frame(s) {short_list(missing)}: interpolated")
    return init


def with_steady_turn(
    hand_model: HandFn, init: HandInit, scores: torch.Tensor, degrees: float, min_agreement: float
) -> HandInit:
    """``init`` with the rotations of frames off the clip's steady turn replaced (``steady_turn``),
    each turned about its hand's centre; scores (N,): detection scores, 0 where undetected."""
    turn = steady_turn(init.T_cam_from_hand[:, :3, :3], scores, degrees)
    if turn is None:
        return init
    if turn.agreement < min_agreement or int(turn.agrees.sum()) < 3:  # two frames always agree with their turn
        note = (
            f"no steady turn of the hand: {int(turn.agrees.sum())} detected frames ({turn.agreement:.0%} of the"
            " detection weight) agree; rotations as detected"
        )
        return HandInit(init.hand_pose, init.betas, init.T_cam_from_hand, [*init.notes, note], init.frame_weights)
    n = len(init.hand_pose)
    rotations = torch.where(turn.agrees[:, None, None], init.T_cam_from_hand[:, :3, :3], turn.rotations)
    T = turned_about(init.T_cam_from_hand, rotations, hand_frame_mesh(hand_model, init).vertices.mean(1))
    speed = float(degrees_between(turn.rotations[1:], turn.rotations[:-1]).mean()) if n > 1 else 0.0
    note = (
        f"hand rotation: {int((~turn.agrees).sum())} of {n} frames (off by more than {degrees:g} degrees, or"
        f" undetected) follow the clip's steady turn of {speed:.1f} degrees a frame"
    )
    return HandInit(init.hand_pose, init.betas, T, [*init.notes, note], init.frame_weights)


@torch.no_grad()
def hand_frame_mesh(hand_model: HandFn, init: HandInit):
    """The initialised hands of every frame in the hand frame: the model's output, vertices (N, V, 3)."""
    n = len(init.hand_pose)
    zeros = torch.zeros(n, 3)
    return hand_model(hand_pose=init.hand_pose, betas=init.betas.expand(n, -1), global_orient=zeros, transl=zeros)


def hand_silhouettes(hand_model: HandFn, init: HandInit, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool: where the initialised hand covers each frame (K (N, 3, 3))."""
    out = hand_frame_mesh(hand_model, init)
    K_t = torch.as_tensor(K, dtype=torch.float32)
    with torch.no_grad():
        return rasterize(out.vertices, out.faces, K_t, init.T_cam_from_hand, image_size=size).covered.numpy()


def depth_from_clip_masks(hand_model: HandFn, init: HandInit, clip: Clip) -> HandInit:
    """``init`` moved along the camera rays to the depth ``clip``'s hand masks' size implies, its
    object masks hiding the hand where they cover it (``scaled_to_masks``, DEPTH_ROUNDS times)."""
    for _ in range(DEPTH_ROUNDS):
        init = scaled_to_masks(hand_model, init, clip.hand_masks, clip.K, occluders=clip.object_masks)
    return init


def scaled_to_masks(
    hand_model: HandFn,
    init: HandInit,
    hand_masks: np.ndarray,
    K: np.ndarray,
    silhouettes: np.ndarray | None = None,
    occluders: np.ndarray | None = None,
) -> HandInit:
    """``init`` with every translation divided by s, the median over frames of sqrt(mask area / silhouette area).

    Scaling T_cam_from_hand's translation keeps the hand's origin on the same pixel and makes the
    hand look s times larger: the depth the masks' size implies, for the shape the landmarks gave.
    Frames with a tiny mask or silhouette (under 20 pixels) do not vote; no vote changes nothing.
    ``silhouettes``: ``init``'s (``hand_silhouettes``), when the caller has them already.
    ``occluders`` (N, H, W) bool, e.g. the object masks: the hand mask holds only the visible hand,
    so silhouette pixels under an occluder do not count (else a hand half behind a kettle is put
    twice as far as it is).
    """
    if silhouettes is None:
        silhouettes = hand_silhouettes(hand_model, init, K, hand_masks.shape[1:])
    if occluders is not None:
        silhouettes = silhouettes & ~occluders
    mask_area, sil_area = hand_masks.sum(axis=(1, 2)), silhouettes.sum(axis=(1, 2))
    votes = (mask_area >= 20) & (sil_area >= 20)
    if not votes.any():
        return init
    s = float(np.median(np.sqrt(mask_area[votes] / sil_area[votes])))
    T = init.T_cam_from_hand.clone()
    T[:, :3, 3] /= s
    note = f"hand moved to {1 / s:.2f}x its landmark depth, to cover the hand masks' area"
    return HandInit(init.hand_pose, init.betas, T, [*init.notes, note], init.frame_weights)
