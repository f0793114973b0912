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

from hoirecon.data.clip import Clip, ClipGT, HandParams, Report, check_shape, finish
from hoirecon.data.formats.hoirecon import load_frames, read_mesh, read_npz
from hoirecon.registry import register


def _squeeze_frames(array: np.ndarray, width: int) -> np.ndarray:
    """(N, 1, width) -> (N, width); other shapes unchanged for the shape check to report."""
    return array.reshape(array.shape[0], width) if array.ndim == 3 and array.shape[1:] == (1, width) else array


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
        cam_path = path / f"cameras_hoi{suffix}.npz"
        cameras = read_npz(report, cam_path, required=("cTw", "K_pix"))
        report.raise_if_errors()
        names, images, hand_masks, object_masks = load_frames(
            report, path / "image", path / "hand_mask", path / "obj_mask"
        )
        n = len(names)
        K = np.asarray(cameras["K_pix"], dtype=np.float32)
        if K.ndim == 3 and K.shape[1:] == (4, 4):
            K = K[:, :3, :3].copy()
        elif K.shape in ((3, 3), (4, 4)):
            K = np.broadcast_to(K[:3, :3], (n, 3, 3)).copy()
        hands = self._read_hands(report, path / f"hands{suffix}.npz", n)
        category = (path / "text.txt").read_text().strip() if (path / "text.txt").is_file() else ""
        gt = self._read_gt(report, path, suffix, n)
        report.raise_if_errors()
        clip = Clip(
            path=path,
            frame_names=names,
            images=images,
            hand_masks=hand_masks,
            object_masks=object_masks,
            K=K,
            category=category,
            source=f"diffhoi ({cam_path.name})",
            T_cam_from_hand=np.asarray(cameras["cTw"], dtype=np.float32),
            hands=hands,
            gt=gt,
        )
        return finish(report, clip)

    @staticmethod
    def _read_hands(report: Report, path: Path, n: int) -> HandParams | None:
        if not path.is_file():
            report.warn(f"{path}: not found; the fit needs an initialiser that provides hands")
            return None
        arrays = read_npz(report, path, required=("hA", "beta"))
        if arrays is None:
            return None
        hA = _squeeze_frames(arrays["hA"], 45)
        beta = _squeeze_frames(arrays["beta"], 10)
        if beta.ndim == 2 and check_shape(report, str(path), "beta", beta, (None, 10)):
            beta = beta.mean(axis=0)
        zeros = np.zeros((len(hA), 3), dtype=np.float32)
        return HandParams(hA.astype(np.float32), np.asarray(beta, np.float32), zeros, zeros.copy())

    def _read_gt(self, report: Report, path: Path, suffix: str, n: int) -> ClipGT | None:
        gt = ClipGT()
        if (path / "oObj.obj").is_file():
            mesh = read_mesh(report, path / "oObj.obj")
            if mesh is not None:
                gt.object_vertices, gt.object_faces = mesh
        if (path / "eval_poses.npz").is_file():
            poses = read_npz(report, path / "eval_poses.npz", required=("hTo",))
            if poses is not None:
                hTo = np.asarray(poses["hTo"], dtype=np.float32)
                gt.T_hand_from_obj = hTo.reshape(-1, 4, 4) if hTo.size % 16 == 0 else hTo  # (N,1,4,4) -> (N,4,4)
        if suffix and (path / "cameras_hoi.npz").is_file():  # the unsuffixed files are HOI4D's ground truth
            cams = read_npz(report, path / "cameras_hoi.npz", required=("cTw",))
            if cams is not None:
                gt.T_cam_from_hand = cams["cTw"].astype(np.float32)
            if (path / "hands.npz").is_file():
                gt.hands = self._read_hands(report, path / "hands.npz", n)
        if gt.T_cam_from_hand is not None and gt.T_hand_from_obj is not None:
            if len(gt.T_cam_from_hand) == len(gt.T_hand_from_obj):
                gt.T_cam_from_obj = gt.T_cam_from_hand @ gt.T_hand_from_obj
        if all(v is None for v in vars(gt).values()):
            return None
        return gt
