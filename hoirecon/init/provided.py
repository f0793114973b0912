"""Initialisers that read hands already in the clip: ``provided`` (hands.npz) and ``groundtruth`` (gt/)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hoirecon.data.clip import Clip, HandParams
from hoirecon.dataclass_config import ranged
from hoirecon.errors import DataError
from hoirecon.init.base import HandFn, HandInit, fold_global_pose, root_joint, smooth
from hoirecon.registry import register


def init_from_params(hands: HandParams, T_cam_from_mano, hand_model: HandFn) -> HandInit:
    """Fold the parameters' global orientation and translation into T_cam_from_hand."""
    betas = torch.as_tensor(hands.betas, dtype=torch.float32)
    n = len(hands)
    root = root_joint(hand_model, betas[None]).expand(n, 3)
    T = None if T_cam_from_mano is None else torch.as_tensor(T_cam_from_mano, dtype=torch.float32)
    T_cam_from_hand = fold_global_pose(
        torch.as_tensor(hands.global_orient, dtype=torch.float32),
        torch.as_tensor(hands.transl, dtype=torch.float32),
        root,
        T,
    )
    return HandInit(torch.as_tensor(hands.hand_pose, dtype=torch.float32), betas, T_cam_from_hand)


@register("initializer", "provided")
class ProvidedInitializer:
    """The clip's own initial hands (hands.npz, e.g. from an off-the-shelf estimator), optionally smoothed."""

    @dataclass
    class Config:
        #: DiffHOI smooths its initial poses (1000 steps on a GPU); 0 turns smoothing off.
        smooth_steps: int = ranged(0, at_least=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def initialize(self, clip: Clip, hand_model: HandFn) -> HandInit:
        if clip.hands is None:
            # a video or image folder has no file of hands: its hands come from an initialiser
            from_images = clip.source.startswith("folder")
            raise DataError(
                f"{clip.path}: the clip has no initial hands"
                + (" (a video or image folder holds none)" if from_images else " (hands.npz)"),
                hint="use initializer.type=mediapipe (hands from the images, pip install -e '.[video]') or "
                "initializer.type=frankmocap (FrankMocap's *_prediction_result.pkl in mocap/; docs/data.md)"
                + ("" if from_images else ", or add hands.npz"),
            )
        init = init_from_params(clip.hands, clip.T_cam_from_hand, hand_model)
        return smooth(init, hand_model, self.cfg.smooth_steps)


@register("initializer", "groundtruth")
class GroundTruthInitializer:
    """The ground-truth hands (synthetic or HOI4D clips): for ablations that isolate the object."""

    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def initialize(self, clip: Clip, hand_model: HandFn) -> HandInit:
        if clip.gt is None or clip.gt.hands is None:
            raise DataError(f"{clip.path}: no ground-truth hands (gt/hands.npz)", hint="use initializer.type=provided")
        init = init_from_params(clip.gt.hands, clip.gt.T_cam_from_hand, hand_model)
        init.notes.append("ground-truth hands")
        return init
