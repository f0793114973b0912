"""HOI4D's raw release, read into a Clip (and written in hoirecon's layout by `hoirecon data hoi4d`).

A sequence id names the path below the release root, ``ZY2021080000*/H*/C*/N*/S*/s*/T*``. Files
are looked for where HOI4D's releases put them (the first that exists wins)::

  frames     {root}[/HOI4D_release]/{seq}/align_rgb/image.mp4, or decoded align_rgb/%05d.jpg|png
  masks      {root}[/HOI4D_annotations]/{seq}/2Dseg/mask/%05d.png, or .../2Dseg/shift_mask/
             colour coded: red = object, green = right hand (other colours ignored)
  objpose    {root}[/HOI4D_annotations]/{seq}/objpose/{t}.json, t zero padded to 5 or not;
             "dataList" or "objects"; center (m), rotation (intrinsic XYZ Euler), object -> camera
  hands      {root}[/HOI4D_annotations]/{seq}/handpose/refinehandpose_right/{t}.pickle, or
             {root}/handpose/refinehandpose_right/{seq}/{t}.pickle (also "handpose_right");
             latin1 pickles: poseCoeff (48, incl. global), beta (10), trans (camera frame);
             MANO with flat_hand_mean=True, no PCA
  intrinsics {root}/camera_params/{ZY...}/intrin.npy (3x3, pixels)
  CAD        {root}/HOI4D_CAD_Model_for_release/rigid/{Category}/{NNN}.obj (N31 -> 031.obj)

Frames are cropped to a square around the hand and object (per frame, like DiffHOI), resized to
``size`` pixels; K is adjusted per frame. Quirks each get a precise error, or the documented
fallback: a malformed hand pickle (e.g. a 1-element poseCoeff) marks that frame's hand missing and
it is interpolated from its neighbours (reported); an error when more than half are missing.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch
from skimage.transform import resize

from hoirecon.data.clip import Clip, ClipGT, HandParams, Origin, Report, finish, short_list
from hoirecon.data.files import ArrayFile
from hoirecon.data.formats.folder import read_video
from hoirecon.data.formats.hoirecon import read_mesh
from hoirecon.data.images import IMAGE_SUFFIXES, read_rgb
from hoirecon.dataclass_config import ranged
from hoirecon.registry import register
from hoirecon.utils.interp import fill_missing_rotvecs, fill_missing_rows

#: HOI4D's class index (the C in the sequence id) -> category name of its CAD folder.
HOI4D_CLASSES: dict[int, str] = {
    1: "ToyCar",
    2: "Mug",
    3: "Laptop",
    4: "StorageFurniture",
    5: "Bottle",
    6: "Safe",
    7: "Bowl",
    8: "Bucket",
    9: "Scissors",
    11: "Pliers",
    12: "Kettle",
    13: "Knife",
    14: "TrashCan",
    17: "Lamp",
    18: "Stapler",
    20: "Chair",
}

SEQ_PATTERN = re.compile(r"^(ZY\d+)/H\d+/C(\d+)/N(\d+)/S\d+/s\d+/T\d+$")


def parse_frames(spec: str) -> slice:
    """'a:b' or 'a:b:step' (b may be empty for 'to the end') -> slice."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(p.strip().isdigit() or p.strip() == "" for p in parts):
        raise ValueError(f"frames must look like a:b or a:b:step, got '{spec}'")
    values = [int(p) if p.strip() else None for p in parts]
    return slice(*values)


def euler_xyz_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Intrinsic XYZ Euler angles (radians) -> 3x3, as HOI4D's toolbox reads them (Rx @ Ry @ Rz)."""
    return roma.euler_to_rotmat("XYZ", torch.as_tensor(angles, dtype=torch.float64)).numpy()


def square_box(mask: np.ndarray, scale: float) -> tuple[int, int, int] | None:
    """(x0, y0, side) of the square around a mask's bounding box, enlarged by ``scale``; None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    side = int(np.ceil(max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * scale))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(side, 8)


def crop_resize(image: np.ndarray, box: tuple[int, int, int], size: int, order: int) -> np.ndarray:
    """Crop the square ``box`` (zero padding outside the image) and resize it to ``size`` x ``size``."""
    x0, y0, side = box
    h, w = image.shape[:2]
    out = np.zeros((side, side, *image.shape[2:]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    resized = resize(out, (size, size), order=order, anti_aliasing=order > 0, preserve_range=True)
    return resized.round().astype(image.dtype) if image.dtype != bool else resized.astype(bool)


def crop_intrinsics(K: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """K of the crop: pixel centres at integers, so u' = (u - x0 + 0.5) * s - 0.5 with s = size / side."""
    x0, y0, side = box
    s = size / side
    out = K.astype(np.float64).copy()
    out[0, :] *= s
    out[1, :] *= s
    out[0, 2] = (K[0, 2] - x0 + 0.5) * s - 0.5
    out[1, 2] = (K[1, 2] - y0 + 0.5) * s - 0.5
    return out


@register("clip_format", "hoi4d")
class HOI4DFormat:
    #: Detection order (highest first): HOI4D's align_rgb/ folder.
    priority = 20

    @dataclass
    class Config:
        #: The HOI4D release root (holding HOI4D_release/, HOI4D_annotations/, camera_params/, ...).
        root: str = ""
        #: Frame range a:b or a:b:step (HOI4D is 15 fps; DiffHOI uses short clips).
        frames: str = "0:"
        #: Side of the square output frames, pixels.
        size: int = ranged(256, at_least=1)
        #: Crop side over the hand+object bounding box side.
        crop_scale: float = ranged(1.5, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @staticmethod
    def detect(path: Path) -> bool:
        return (Path(path) / "align_rgb").is_dir()

    # -- locating files ---------------------------------------------------------------------------

    def _seq(self, report: Report, path: Path) -> tuple[Path, str] | None:
        """(root, sequence id) from the configured root and a sequence path or id."""
        root = Path(self.cfg.root) if self.cfg.root else None
        text = str(path).replace("\\", "/")
        match = re.search(r"ZY\d+/H\d+/C\d+/N\d+/S\d+/s\d+/T\d+", text)
        if match is None:
            report.error(f"{path}: not a HOI4D sequence id (expected ZY*/H*/C*/N*/S*/s*/T*)")
            return None
        seq = match.group(0)
        if root is None:  # infer the root: the folder above the id, or above HOI4D_release/
            root = Path(text[: match.start()].rstrip("/") or ".")
            if root.name in ("HOI4D_release", "HOI4D_annotations"):
                root = root.parent
        if not root.is_dir():
            report.error(f"{root}: HOI4D root not found")
            return None
        return root, seq

    @staticmethod
    def _first(candidates: list[Path]) -> Path | None:
        return next((c for c in candidates if c.exists()), None)

    # -- loading ----------------------------------------------------------------------------------

    def load(self, path: str | Path) -> Clip:
        report = Report(Path(path))
        try:
            frames = parse_frames(self.cfg.frames)
        except ValueError as exc:
            report.error(f"{path}: {exc}")
            report.raise_if_errors()
        located = self._seq(report, Path(path))
        report.raise_if_errors()
        root, seq = located
        zy, cls, inst = SEQ_PATTERN.match(seq).groups()
        data_dirs = [root / seq, root / "HOI4D_release" / seq]
        anno_dirs = [root / seq, root / "HOI4D_annotations" / seq]

        images, indices = self._read_frames(report, data_dirs, frames)
        report.raise_if_errors()
        hand_masks, obj_masks = self._read_masks(report, anno_dirs, indices, images.shape[1:3])
        origins: dict[str, Origin] = {}
        K = self._read_intrinsics(report, root, zy, origins)
        T_cam_from_obj = self._read_objposes(report, anno_dirs, indices, origins)
        hands = self._read_hands(report, root, anno_dirs, seq, indices, origins)
        category = HOI4D_CLASSES.get(int(cls), "")
        if not category:
            report.warn(f"{seq}: class C{cls} is not in hoirecon's HOI4D class table; no category or CAD model")
        mesh = self._read_cad(report, root, category, int(inst), origins) if category else None
        report.raise_if_errors()

        boxes = self._crop_boxes(report, hand_masks | obj_masks)
        size = self.cfg.size
        crops = [crop_resize(images[i], boxes[i], size, order=1) for i in range(len(indices))]
        crop_hand = [crop_resize(hand_masks[i], boxes[i], size, order=0) for i in range(len(indices))]
        crop_obj = [crop_resize(obj_masks[i], boxes[i], size, order=0) for i in range(len(indices))]
        Ks = np.stack([crop_intrinsics(K, boxes[i], size) for i in range(len(indices))]).astype(np.float32)
        gt = ClipGT(T_cam_from_obj=T_cam_from_obj, hands=hands)
        if mesh is not None:
            gt.object_vertices, gt.object_faces = mesh
        clip = Clip(
            path=Path(path),
            frame_names=[f"{i:05d}" for i in indices],
            images=np.stack(crops),
            hand_masks=np.stack(crop_hand),
            object_masks=np.stack(crop_obj),
            K=Ks,
            category=category,
            fps=15.0 / (frames.step or 1),
            source=f"hoi4d {seq}",
            hands=hands,  # HOI4D's refined hands double as the initialisation; see docs/data.md
            gt=gt,
            origins=origins,
        )
        return finish(report, clip)

    def _read_frames(self, report: Report, data_dirs: list[Path], frames: slice) -> tuple[np.ndarray | None, list[int]]:
        rgb_dir = self._first([d / "align_rgb" for d in data_dirs])
        if rgb_dir is None:
            report.error(f"{data_dirs[-1] / 'align_rgb'}: not found (nor under {data_dirs[0]})")
            return None, []
        files = sorted(p for p in rgb_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.isdigit())
        if files:
            selected = files[frames]
            images = [read_rgb(report, p) for p in selected]
            if any(im is None for im in images) or not images:
                if not images:
                    report.error(f"{rgb_dir}: frames {self.cfg.frames} select nothing ({len(files)} frames)")
                return None, []
            return np.stack(images), [int(p.stem) for p in selected]
        video = rgb_dir / "image.mp4"
        if not video.is_file():
            report.error(f"{rgb_dir}: neither image.mp4 nor decoded %05d.jpg frames")
            return None, []
        decoded = read_video(report, video)
        if decoded is None:
            return None, []
        indices = list(range(len(decoded[0])))[frames]
        if not indices:
            report.error(f"{video}: frames {self.cfg.frames} select nothing ({len(decoded[0])} frames)")
            return None, []
        return decoded[0][indices], indices

    def _read_masks(
        self, report: Report, anno_dirs: list[Path], indices: list[int], size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        seg = self._first([d / "2Dseg" / sub for d in anno_dirs for sub in ("mask", "shift_mask")])
        hand = np.zeros((len(indices), *size), dtype=bool)
        obj = np.zeros_like(hand)
        if seg is None:
            report.error(f"{anno_dirs[-1] / '2Dseg'}: no mask/ or shift_mask/ folder")
            return hand, obj
        missing = []
        for k, t in enumerate(indices):
            path = self._first([seg / f"{t:05d}.png", seg / f"{t}.png"])
            if path is None:
                missing.append(t)
                continue
            mask = read_rgb(report, path)
            if mask is None:
                continue
            if mask.shape[:2] != size:
                report.error(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, frames are {size[1]}x{size[0]}")
                continue
            r, g, b = (mask[..., c].astype(int) for c in range(3))
            obj[k] = (r > 127) & (g < 128) & (b < 128)
            hand[k] = (g > 127) & (r < 128) & (b < 128)
        if missing:
            report.error(f"{seg}: no mask for frame(s) {short_list(missing)}")
        return hand, obj

    @staticmethod
    def _read_intrinsics(report: Report, root: Path, zy: str, origins: dict[str, Origin]) -> np.ndarray:
        path = root / "camera_params" / zy / "intrin.npy"
        if not path.exists():
            report.error(f"{path}: camera intrinsics not found")
            return np.eye(3)
        file = ArrayFile(report, path)
        origins["K"] = file.origin()
        K = file.read(None, (3, 3), dtype=np.float64)
        return np.eye(3) if K is None else K

    def _read_objposes(
        self, report: Report, anno_dirs: list[Path], indices: list[int], origins: dict[str, Origin]
    ) -> np.ndarray | None:
        pose_dir = self._first([d / "objpose" for d in anno_dirs])
        if pose_dir is None:
            report.warn(f"{anno_dirs[-1] / 'objpose'}: not found; no ground-truth object poses")
            return None
        origins["gt.T_cam_from_obj"] = Origin(str(pose_dir), "center")
        poses = np.tile(np.eye(4, dtype=np.float32), (len(indices), 1, 1))
        for k, t in enumerate(indices):
            path = self._first([pose_dir / f"{t}.json", pose_dir / f"{t:05d}.json"])
            if path is None:
                report.error(f"{pose_dir}: no {t}.json (nor {t:05d}.json)")
                continue
            try:
                data = json.loads(path.read_text())
                entries = data.get("dataList", data.get("objects"))
                if not entries:
                    raise KeyError("neither 'dataList' nor 'objects' holds an entry")
                anno = entries[0]
                center = [float(anno["center"][a]) for a in "xyz"]
                euler = [float(anno["rotation"][a]) for a in "xyz"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                report.error(f"{path}: malformed object pose ({type(exc).__name__}: {exc})")
                continue
            poses[k, :3, :3] = euler_xyz_to_matrix(np.array(euler))
            poses[k, :3, 3] = center
        return poses

    def _read_hands(
        self,
        report: Report,
        root: Path,
        anno_dirs: list[Path],
        seq: str,
        indices: list[int],
        origins: dict[str, Origin],
    ) -> HandParams | None:
        candidates = [d / "handpose" / name for d in anno_dirs for name in ("refinehandpose_right", "handpose_right")]
        candidates += [root / "handpose" / name / seq for name in ("refinehandpose_right", "handpose_right")]
        hand_dir = self._first(candidates)
        if hand_dir is None:
            report.warn(f"{seq}: no handpose folder (looked for refinehandpose_right/ and handpose_right/)")
            return None
        keys = {"hand_pose": "poseCoeff", "global_orient": "poseCoeff", "betas": "beta", "transl": "trans"}
        for group in ("hands", "gt.hands"):  # the same hands are the initial ones and the ground truth
            origins.update({f"{group}.{name}": Origin(str(hand_dir), key) for name, key in keys.items()})
        pose = np.full((len(indices), 48), np.nan, dtype=np.float32)
        trans = np.full((len(indices), 3), np.nan, dtype=np.float32)
        betas = []
        bad = []
        for k, t in enumerate(indices):
            path = self._first([hand_dir / f"{t}.pickle", hand_dir / f"{t:05d}.pickle"])
            if path is None:
                bad.append(f"{t} (missing)")
                continue
            try:
                with open(path, "rb") as f:
                    data = pickle.load(f, encoding="latin1")  # noqa: S301 - HOI4D's own annotation files
                coeff = np.asarray(data["poseCoeff"], dtype=np.float32).reshape(-1)
                tr = np.asarray(data["trans"], dtype=np.float32).reshape(-1)
                beta = np.asarray(data["beta"], dtype=np.float32).reshape(-1)
            except Exception as exc:  # noqa: BLE001 - a corrupt pickle can raise anything
                bad.append(f"{t} ({type(exc).__name__})")
                continue
            if coeff.shape != (48,) or tr.shape != (3,) or beta.shape != (10,) or not np.isfinite(coeff).all():
                bad.append(f"{t} (poseCoeff {coeff.shape[0]} values)")
                continue
            pose[k], trans[k] = coeff, tr
            betas.append(beta)
        if len(bad) * 2 > len(indices):
            report.error(f"{hand_dir}: {len(bad)} of {len(indices)} hand poses missing or malformed: {short_list(bad)}")
            return None
        if bad:
            report.warn(f"{hand_dir}: hand poses of frame(s) {short_list(bad)} interpolated from their neighbours")
            pose = np.concatenate([fill_missing_rotvecs(pose[:, :3]), fill_missing_rows(pose[:, 3:])], axis=1)
            trans = fill_missing_rows(trans)
        return HandParams(
            hand_pose=pose[:, 3:].copy(),
            betas=np.mean(betas, axis=0).astype(np.float32),
            global_orient=pose[:, :3].copy(),
            transl=trans,
        )

    @staticmethod
    def _read_cad(
        report: Report, root: Path, category: str, instance: int, origins: dict[str, Origin]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        cad_root = root / "HOI4D_CAD_Model_for_release" / "rigid" / category
        path = cad_root / f"{instance:03d}.obj"
        origins["gt.object_vertices"] = Origin(str(path), noun="the mesh")
        if not path.is_file():
            report.warn(f"{path}: CAD model not found; no ground-truth object shape")
            return None
        return read_mesh(report, path)

    def _crop_boxes(self, report: Report, union: np.ndarray) -> list[tuple[int, int, int]]:
        boxes = [square_box(m, self.cfg.crop_scale) for m in union]
        known = [i for i, b in enumerate(boxes) if b is not None]
        if not known:
            report.error("every frame has empty hand and object masks; nothing to crop around")
            report.raise_if_errors()
        for i, b in enumerate(boxes):  # frames without masks borrow the nearest frame's box
            if b is None:
                boxes[i] = boxes[min(known, key=lambda j: abs(j - i))]
        return boxes
