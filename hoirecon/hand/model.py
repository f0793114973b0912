"""``HandModel`` (role ``hand_model``, name ``mano``): MANO through smplx, with 21 joints.

By default it loads the built-in MANO-format hand (``hoirecon/assets/HOIRECON_HAND_RIGHT.npz``);
``model_path`` points it at the real ``MANO_RIGHT.pkl`` instead, and nothing else changes.

Joints (B, 21, 3): MANO's 16 in MANO's order (0 wrist; index 1-3; middle 4-6; pinky 7-9; ring 10-12;
thumb 13-15), then the fingertips thumb, index, middle, ring, pinky (16-20), taken at fixed vertices.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hoirecon.dataclass_config import ranged
from hoirecon.errors import DataError
from hoirecon.registry import register

BUILTIN_ASSET = Path(__file__).resolve().parents[1] / "assets" / "HOIRECON_HAND_RIGHT.npz"
#: Fingertip vertices of the real MANO right hand (thumb, index, middle, ring, pinky).
MANO_TIP_VERTEX_IDS = (745, 317, 444, 556, 673)
REQUIRED_KEYS = (
    "v_template",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
    "f",
    "hands_components",
    "hands_mean",
)


@dataclass
class HandOutput:
    """vertices (B, V, 3) and joints (B, 21, 3) in metres; faces (F, 3) long."""

    vertices: torch.Tensor
    joints: torch.Tensor
    faces: torch.Tensor


def _check_model_file(path: Path) -> tuple[list[int] | None, np.ndarray]:
    """Validate a MANO-format file before smplx reads it; returns its fingertip ids (if stored) and hands_mean."""
    if path.is_dir():
        raise DataError(f"{path}: a folder; hand.model_path names the MANO file itself (e.g. .../MANO_RIGHT.pkl)")
    if not path.is_file():
        raise DataError(f"{path}: MANO model file not found", hint="download MANO_RIGHT.pkl from mano.is.tue.mpg.de")
    if "RIGHT" not in path.name:
        raise DataError(f"{path}: smplx decides the side from the file name; it must contain 'RIGHT'")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=True) as data:
                keys, tips = (
                    set(data.files),
                    data["tip_vertex_ids"].tolist() if "tip_vertex_ids" in data.files else None,
                )
                mean = data["hands_mean"] if "hands_mean" in data.files else None
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: unreadable MANO model ({exc})") from None
    elif path.suffix == ".pkl":
        try:
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")  # noqa: S301 - the user's own model file
        except ModuleNotFoundError as exc:
            if "chumpy" in str(exc) and importlib.util.find_spec("chumpy") is None:
                raise DataError(
                    f"{path}: this MANO file stores chumpy arrays; install chumpy to read it", hint="pip install chumpy"
                ) from None
            raise DataError(f"{path}: unreadable MANO model ({exc})") from None
        except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: unreadable MANO model ({exc})") from None
        keys, tips = set(data) if isinstance(data, dict) else set(), None
        mean = data.get("hands_mean") if isinstance(data, dict) else None
    else:
        raise DataError(f"{path}: MANO model must be a .pkl or .npz file")
    missing = [k for k in REQUIRED_KEYS if k not in keys]
    if missing:
        raise DataError(f"{path}: not a MANO model (missing {', '.join(missing)})")
    return tips, np.asarray(mean, dtype=np.float32).reshape(45)


def hand_code(v_template: torch.Tensor) -> torch.Tensor:
    """(V, 2) in [-1, 1]: where on the hand a vertex is, for the prior's condition (DiffHOI uses UV).

    First channel: position along the hand (its longest axis), second: across it (its second axis),
    folded so the back of the hand and the palm differ (back in [0, 1], palm in [-1, 0]).
    """
    centred = v_template - v_template.mean(0)
    _, _, axes = torch.linalg.svd(centred, full_matrices=False)  # rows: longest, middle, thinnest
    coords = centred @ axes.T
    along = coords[:, 0] / coords[:, 0].abs().max()
    across = (coords[:, 1] / coords[:, 1].abs().max() + 1) / 2  # [0, 1]
    side = torch.where(coords[:, 2] >= 0, 1.0, -1.0)
    return torch.stack([along, side * across], dim=-1).float()


@register("hand_model", "mano")
class HandModel(nn.Module):
    """``forward(hand_pose (B,45), betas (B,10), global_orient (B,3), transl (B,3)) -> HandOutput``."""

    @dataclass
    class Config:
        #: Empty: the built-in hand. Else a MANO_RIGHT.pkl / .npz in MANO's format.
        model_path: str = ""
        #: True: hand_pose = 0 is the flat hand. False: it is the model's mean (curled) hand.
        flat_hand_mean: bool = True
        use_pca: bool = False
        #: PCA components of the hand pose when ``use_pca`` (MANO has 45).
        num_pca_comps: int = ranged(45, at_least=1, at_most=45)
        #: Fingertip vertices (thumb..pinky); empty = the file's own, or MANO's for real MANO files.
        tip_vertex_ids: list[int] = ranged([], at_least=0)

    def __init__(self, cfg: Config):
        super().__init__()
        import smplx  # heavy; only when a hand is built

        self.cfg = cfg
        path = Path(cfg.model_path) if cfg.model_path else BUILTIN_ASSET
        stored_tips, hands_mean = _check_model_file(path)
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning on construction
            self.layer = smplx.MANO(
                model_path=str(path),
                is_rhand=True,
                use_pca=cfg.use_pca,
                num_pca_comps=cfg.num_pca_comps,
                flat_hand_mean=cfg.flat_hand_mean,
                ext=path.suffix[1:],
                batch_size=1,
            )
        tips = cfg.tip_vertex_ids or stored_tips or list(MANO_TIP_VERTEX_IDS)
        if len(tips) != 5 or max(tips) >= self.layer.v_template.shape[0]:
            raise DataError(f"{path}: tip_vertex_ids must be 5 vertex indices below {self.layer.v_template.shape[0]}")
        self.register_buffer("tip_vertex_ids", torch.tensor(tips, dtype=torch.long), persistent=False)
        self.register_buffer("faces", torch.as_tensor(np.asarray(self.layer.faces, dtype=np.int64)), persistent=False)
        #: (45,) the model's mean pose: what FrankMocap-style relative poses are measured from.
        self.register_buffer("hands_mean", torch.from_numpy(hands_mean), persistent=False)
        self.register_buffer("vertex_code", hand_code(self.layer.v_template), persistent=False)
        self.source = str(path)

    def forward(
        self, hand_pose: torch.Tensor, betas: torch.Tensor, global_orient: torch.Tensor, transl: torch.Tensor
    ) -> HandOutput:
        out = self.layer(hand_pose=hand_pose, betas=betas, global_orient=global_orient, transl=transl)
        tips = out.vertices[:, self.tip_vertex_ids]
        return HandOutput(out.vertices, torch.cat([out.joints, tips], dim=1), self.faces)
