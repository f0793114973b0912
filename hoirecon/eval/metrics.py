"""torchmetrics Metrics over many samples, built on ``hoirecon.eval.geometry``.

Each reported key carries its convention, e.g. ``f@5mm[rigid]`` or ``mpjpe_mm[procrustes]``.
"""

from __future__ import annotations

import torch
import trimesh
from torchmetrics import Metric

from hoirecon.eval.geometry import mpjpe_mm, object_scores

HAND_ALIGNMENTS = ("root", "procrustes", "scale_translation")


class ObjectMetrics(Metric):
    """Mean F-scores and chamfer distances of predicted object meshes against ground truth."""

    full_state_update = False

    def __init__(
        self, align: str = "rigid", thresholds: tuple[float, ...] = (0.005, 0.01, 0.02), n_points: int = 10000
    ):
        super().__init__()
        self.align, self.thresholds, self.n_points = align, thresholds, n_points
        self.keys = [f"f@{t * 1000:g}mm" for t in thresholds] + ["chamfer_cm2", "chamfer_l1_cm"]
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, pred: trimesh.Trimesh, gt: trimesh.Trimesh) -> None:
        scores = object_scores(pred, gt, self.align, self.thresholds, self.n_points)
        self.values.append(torch.tensor([[scores[k] for k in self.keys]], dtype=torch.float64))

    def compute(self) -> dict[str, float]:
        values = torch.cat(self.values) if isinstance(self.values, list) else self.values
        return {f"{k}[{self.align}]": float(v) for k, v in zip(self.keys, values.mean(0))}


class HandMPJPE(Metric):
    """Mean per-joint position error (mm) over frames, in the three alignments of REFERENCE.md."""

    full_state_update = False

    def __init__(self, root: int = 5):
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
