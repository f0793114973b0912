"""torchmetrics Metrics over many samples, built on ``hoirecon.eval.geometry``.

Each reported key carries its convention, e.g. ``mpjpe_mm[procrustes]``.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from hoirecon.eval.geometry import mpjpe_mm
from hoirecon.hand.joints import INDEX_MCP

HAND_ALIGNMENTS = ("root", "procrustes", "scale_translation")


class HandMPJPE(Metric):
    """Mean per-joint position error (mm) over frames, in three alignments (docs/compare.md, section "One run")."""

    full_state_update = False

    def __init__(self, root: int = INDEX_MCP):
        super().__init__()
        self.root = root
        self.add_state("total", default=torch.zeros(len(HAND_ALIGNMENTS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """pred, gt: (B, J, 3) joints in metres."""
        pred, gt = pred.double(), gt.double()
        self.total += torch.stack([mpjpe_mm(pred, gt, self.root, a).sum() for a in HAND_ALIGNMENTS])
        self.count += pred.shape[0]

    def compute(self) -> dict[str, float]:
        return {f"mpjpe_mm[{a}]": float(t / self.count) for a, t in zip(HAND_ALIGNMENTS, self.total)}


class MaskIoU(Metric):
    """Mean intersection over union of rendered and ground-truth masks over frames (B, H, W) bool."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        pred, gt = pred.bool(), gt.bool()
        union = (pred | gt).flatten(1).sum(1)
        inter = (pred & gt).flatten(1).sum(1)
        seen = union > 0  # frames where neither mask has the object say nothing
        self.total += (inter[seen].double() / union[seen].double()).sum()
        self.count += seen.sum()

    def compute(self) -> float:
        return float(self.total / self.count) if self.count > 0 else float("nan")


class HandObjectContact(Metric):
    """From the object's signed distance at every hand vertex, per frame (B, V) in metres (negative inside):
    ``penetration_mm`` (mean over frames of the deepest vertex, 0 when none is inside),
    ``penetration_max_mm`` (the deepest over all frames) and
    ``contact_ratio`` (share of frames with a vertex within ``contact_mm`` of the surface or inside)."""

    full_state_update = False

    def __init__(self, contact_mm: float = 5.0):
        super().__init__()
        self.contact_mm = contact_mm
        self.add_state("depth", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("touching", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("deepest", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="max")

    def update(self, sdf_at_hand: torch.Tensor) -> None:
        sdf = sdf_at_hand.double()
        depth = (-sdf.min(dim=1).values).clamp(min=0) * 1000  # (B,) mm
        self.depth += depth.sum()
        self.deepest = torch.maximum(self.deepest, depth.max())
        self.touching += (sdf.min(dim=1).values * 1000 < self.contact_mm).sum()
        self.count += sdf.shape[0]

    def compute(self) -> dict[str, float]:
        return {
            "penetration_mm": float(self.depth / self.count),
            "penetration_max_mm": float(self.deepest),
            f"contact_ratio@{self.contact_mm:g}mm": float(self.touching / self.count),
        }
