"""DiffHOI's preprocessed clip folders, read as they are.

```
clip/
  image/00000.png ...            RGB
  hand_mask/00000.png ...        binary
  obj_mask/00000.png ...         binary
  cameras_hoi{suffix}.npz        cTw (N,4,4): hand frame -> camera, i.e. T_cam_from_hand;
                                 K_pix (N,4,4) or (N,3,3): pixel intrinsics
  hands{suffix}.npz              hA (N,45) or (N,1,45) articulation; beta (N,10) or (N,1,10)
  text.txt                       category ("Mug", or the prompt "an image of a hand grasping a mug")
  oObj.obj                       ground-truth object, object frame
  eval_poses.npz                 hTo (N,4,4): ground-truth T_hand_from_obj
```

The suffix picks the estimate to start from (e.g. ``_smooth_100``); without a suffix the files hold
HOI4D's ground truth, which is also read into ``clip.gt`` when present. DiffHOI's hand frame is the
fit's world: global orientation and translation are zero, the camera carries the pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoirecon.data.clip import Clip, ClipGT, HandParams, Origin, Report, finish
from hoirecon.data.files import ArrayFile, read_text
from hoirecon.data.formats.hoirecon import load_frames, read_mesh
from hoirecon.registry import register

#: Shapes of DiffHOI's arrays as its preprocessing writes them ("B": any count, averaged).
K_SHAPES = [("N", 4, 4), ("N", 3, 3), (4, 4), (3, 3)]
HA_SHAPES = [("N", 45), ("N", 1, 45)]
BETA_SHAPES = [("B", 10), ("B", 1, 10), (10,)]
HTO_SHAPES = [("N", 4, 4), ("N", 1, 4, 4)]


@register("clip_format", "diffhoi")
class DiffHOIFormat:
    #: Detection order (highest first): DiffHOI's cameras_hoi*.npz is the most specific sign.
    priority = 30

    @dataclass
    class Config:
        #: "auto": cameras_hoi.npz if present, else the only cameras_hoi*.npz; or e.g. "_smooth_100".
        suffix: str = "auto"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @staticmethod
    def detect(path: Path) -> bool:
        path = Path(path)
        return (path / "image").is_dir() and any(path.glob("cameras_hoi*.npz"))

    def _suffix(self, report: Report, path: Path) -> str | None:
        if self.cfg.suffix != "auto":
            return self.cfg.suffix
        found = sorted(p.name[len("cameras_hoi") : -len(".npz")] for p in path.glob("cameras_hoi*.npz"))
        if "" in found or not found:
            return ""
        if len(found) > 1:
            choices = ", ".join(f"'{s}'" for s in found)
            report.error(f"{path}: several cameras_hoi*.npz files; choose one with clip_format.suffix ({choices})")
            return None
        return found[0]

    def load(self, path: str | Path) -> Clip:
        path = Path(path)
        report = Report(path)
        suffix = self._suffix(report, path)
        report.raise_if_errors()
        cameras = ArrayFile(report, path / f"cameras_hoi{suffix}.npz", required=("cTw", "K_pix"))
        hands_file = self._hands_file(report, path / f"hands{suffix}.npz")
        category = read_text(report, path / "text.txt") if (path / "text.txt").exists() else ""
        report.raise_if_errors()
        names, images, hand_masks, object_masks = load_frames(
            report, path / "image", path / "hand_mask", path / "obj_mask"
        )
        n = len(names)
        K = cameras.read("K_pix", K_SHAPES, n)
        T_cam_from_hand = cameras.read("cTw", ("N", 4, 4), n)
        hands = self._read_hands(hands_file, n) if hands_file is not None else None
        origins = {"K": cameras.origin("K_pix"), "T_cam_from_hand": cameras.origin("cTw")}
        origins.update(self._hand_origins("hands", hands_file))
        gt = self._read_gt(report, path, suffix, n, origins)
        report.raise_if_errors()
        clip = Clip(
            path=path,
            frame_names=names,
            images=images,
            hand_masks=hand_masks,
            object_masks=object_masks,
            K=np.broadcast_to(K[..., :3, :3], (n, 3, 3)).copy(),
            category=category.strip(),
            source=f"diffhoi ({cameras.path.name})",
            T_cam_from_hand=T_cam_from_hand,
            hands=hands,
            gt=gt,
            origins=origins,
        )
        return finish(report, clip)

    @staticmethod
    def _hands_file(report: Report, path: Path) -> ArrayFile | None:
        return ArrayFile(report, path, required=("hA", "beta")) if path.exists() else None

    @staticmethod
    def _hand_origins(group: str, file: ArrayFile | None) -> dict[str, Origin]:
        if file is None:
            return {}
        return {f"{group}.hand_pose": file.origin("hA"), f"{group}.betas": file.origin("beta")}

    @staticmethod
    def _read_hands(file: ArrayFile, n: int) -> HandParams | None:
        """DiffHOI's articulation and shape; its hand frame is the fit's world (no global pose)."""
        hA = file.read("hA", HA_SHAPES, n)
        beta = file.read("beta", BETA_SHAPES)
        if hA is None or beta is None:
            return None
        zeros = np.zeros((n, 3), dtype=np.float32)
        return HandParams(hA.reshape(n, 45), beta.reshape(-1, 10).mean(axis=0), zeros, zeros.copy())

    def _read_gt(self, report: Report, path: Path, suffix: str, n: int, origins: dict[str, Origin]) -> ClipGT | None:
        gt = ClipGT()
        if (path / "oObj.obj").is_file():
            mesh = read_mesh(report, path / "oObj.obj")
            if mesh is not None:
                gt.object_vertices, gt.object_faces = mesh
            origins["gt.object_vertices"] = Origin(str(path / "oObj.obj"), noun="the mesh")
        if (path / "eval_poses.npz").exists():
            poses = ArrayFile(report, path / "eval_poses.npz", required=("hTo",))
            hTo = poses.read("hTo", HTO_SHAPES, n)
            gt.T_hand_from_obj = None if hTo is None else hTo.reshape(n, 4, 4)
            origins["gt.T_hand_from_obj"] = poses.origin("hTo")
        if suffix and (path / "cameras_hoi.npz").exists():  # the unsuffixed files are HOI4D's ground truth
            cams = ArrayFile(report, path / "cameras_hoi.npz", required=("cTw",))
            gt.T_cam_from_hand = cams.read("cTw", ("N", 4, 4), n)
            origins["gt.T_cam_from_hand"] = cams.origin("cTw")
            hands_file = self._hands_file(report, path / "hands.npz")
            if hands_file is not None:
                gt.hands = self._read_hands(hands_file, n)
                origins.update(self._hand_origins("gt.hands", hands_file))
        if gt.T_cam_from_hand is not None and gt.T_hand_from_obj is not None:
            gt.T_cam_from_obj = gt.T_cam_from_hand @ gt.T_hand_from_obj
            origins["gt.T_cam_from_obj"] = origins["gt.T_hand_from_obj"]  # cTw @ hTo
        if all(v is None for v in vars(gt).values()):
            return None
        return gt
