"""The ``frankmocap`` initialiser: FrankMocap's per-frame hand predictions, made full-perspective."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hoirecon.data.clip import Clip, Report, short_list
from hoirecon.dataclass_config import ranged
from hoirecon.init.base import HandFn, HandInit, fold_global_pose, root_joint, smooth
from hoirecon.init.frankmocap_io import OPENPOSE_INDEX_MCP, full_perspective_translation, read_mocap_frame
from hoirecon.registry import register
from hoirecon.utils.interp import fill_missing_rotvecs, fill_missing_rows


@register("initializer", "frankmocap")
class FrankMocapInitializer:
    """Reads ``{folder}/{frame}_prediction_result.pkl`` for every clip frame.

    FrankMocap's hand pose is relative to MANO's mean hand (SMPL-X's convention): the hand model's
    ``hands_mean`` is added for a flat-mean model. Its weak-perspective camera becomes a translation
    putting the index MCP (``anchor_joint`` of the hand model) at depth f / s on the ray through the
    joint's predicted pixel. Undetected frames are interpolated and reported; none detected is an error.
    """

    @dataclass
    class Config:
        #: Folder of FrankMocap's .pkl files, relative to the clip (or absolute).
        folder: str = "mocap"
        #: Index of the index-finger MCP in the hand model's joints (the depth anchor): one of its
        #: 21 (16 + 5 fingertips).
        anchor_joint: int = ranged(1, at_least=0, at_most=20)
        #: Add the hand model's mean pose to FrankMocap's relative pose.
        add_hands_mean: bool = True
        #: Steps of DiffHOI's temporal smoothing; 0 turns it off.
        smooth_steps: int = ranged(200, at_least=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def initialize(self, clip: Clip, hand_model: HandFn) -> HandInit:
        folder = Path(self.cfg.folder)
        folder = folder if folder.is_absolute() else clip.path / folder
        report = Report(folder)
        if not folder.is_dir():
            report.error(f"{folder}: FrankMocap output folder not found")
            report.raise_if_errors()
        frames = [read_mocap_frame(report, folder / f"{name}_prediction_result.pkl") for name in clip.frame_names]
        report.raise_if_errors()
        found = [i for i, f in enumerate(frames) if f is not None]
        if not found:
            report.error(f"{folder}: no right hand detected in any of the {len(frames)} frames")
            report.raise_if_errors()
        n = len(frames)
        pose = np.full((n, 48), np.nan)
        for i in found:
            pose[i] = frames[i].pose
        betas = torch.tensor(np.mean([frames[i].betas for i in found], axis=0), dtype=torch.float32)
        hand_pose = torch.tensor(fill_missing_rows(pose[:, 3:]), dtype=torch.float32)
        if self.cfg.add_hands_mean:
            hand_pose = hand_pose + hand_model.hands_mean.float().reshape(1, 45)
        global_orient = torch.tensor(fill_missing_rotvecs(pose[:, :3]), dtype=torch.float32)

        # the translation of each detected frame from its weak-perspective camera
        zeros3 = torch.zeros(n, 3)
        with torch.no_grad():
            joints = hand_model(
                hand_pose=hand_pose, betas=betas.expand(n, -1), global_orient=global_orient, transl=zeros3
            ).joints
        transl = np.full((n, 3), np.nan)
        for i in found:
            f = frames[i]
            if f.joints_img is not None:
                pixel = f.joints_img[OPENPOSE_INDEX_MCP, :2]
            else:  # FrankMocap's own projection of our anchor joint
                pixel = f.weak_project(joints[i, self.cfg.anchor_joint].numpy())
            anchor = joints[i, self.cfg.anchor_joint].numpy()
            transl[i] = full_perspective_translation(anchor, pixel, f.pixels_per_metre(), clip.K[i])
        transl_t = torch.tensor(fill_missing_rows(transl), dtype=torch.float32)

        root = root_joint(hand_model, betas[None]).expand(n, 3)
        init = HandInit(hand_pose, betas, fold_global_pose(global_orient, transl_t, root))
        missing = [clip.frame_names[i] for i in range(n) if frames[i] is None]
        if missing:
            init.notes.append(f"FrankMocap found no hand in frame(s) {short_list(missing)}: interpolated")
        return smooth(init, hand_model, self.cfg.smooth_steps)
