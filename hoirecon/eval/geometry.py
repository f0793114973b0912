"""Shape and hand accuracy as functions of point sets, in the conventions of DiffHOI and HOLD.

Distances are Euclidean in metres unless a name says otherwise. Object conventions:

- F-score at threshold tau: precision = share of predicted points within tau of the ground truth,
  recall = share of ground-truth points within tau of the prediction, F = 2PR / (P + R).
- ``chamfer_cm2``: mean(d_pred->gt^2) + mean(d_gt->pred^2), in cm^2 (DiffHOI, iHOI, HOLD).
- ``chamfer_l1_cm``: mean(d_pred->gt) + mean(d_gt->pred), in cm.

Alignment before scoring (``align_points``): "none"; "rigid" (centre both, then rotation +
translation minimising chamfer from several starting rotations, DiffHOI); "similarity" (the same plus
a scale, DiffHOI's variant and HOLD's ICP-with-scale). Hand-relative scores need no alignment: the
caller expresses both objects in their own hand frames first.
"""

from __future__ import annotations

import numpy as np
import roma
import torch
import trimesh
from scipy.spatial import cKDTree

from hoirecon.hand.joints import INDEX_MCP

ALIGNMENTS = ("none", "rigid", "similarity")


def sample_surface(mesh: trimesh.Trimesh, n: int = 10000, seed: int = 0) -> np.ndarray:
    """(n, 3) points uniformly on the surface (area weighted), reproducible for a seed."""
    points, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, dtype=np.float64)


def nearest_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,) distance of every source point to its nearest target point."""
    return cKDTree(target).query(source, k=1, workers=-1)[0]


def fscore(pred: np.ndarray, gt: np.ndarray, thresholds: tuple[float, ...] = (0.005, 0.01, 0.02)) -> dict[float, float]:
    """F-score per threshold (metres) between (N,3) and (M,3) point sets."""
    d_pred, d_gt = nearest_distances(pred, gt), nearest_distances(gt, pred)
    out = {}
    for tau in thresholds:
        precision, recall = float((d_pred < tau).mean()), float((d_gt < tau).mean())
        out[tau] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return out


def chamfer(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Chamfer distances in the two reported units (see module docstring)."""
    d_pred, d_gt = nearest_distances(pred, gt), nearest_distances(gt, pred)
    return {
        "chamfer_cm2": float((d_pred**2).mean() + (d_gt**2).mean()) * 1e4,
        "chamfer_l1_cm": float(d_pred.mean() + d_gt.mean()) * 100,
    }


def _chamfer_torch(a: torch.Tensor, b: torch.Tensor, b_tree: cKDTree | None = None) -> torch.Tensor:
    """Squared chamfer per batch entry: a (S, N, 3) against b (M, 3) -> (S,), differentiable in ``a``.

    Nearest neighbours are found by k-d trees (``b_tree``: one over ``b``, reused across calls), without
    gradient; the loss is then the squared distance to them. Its value and gradient are those of the
    minimum over all pairs, at O(S (N + M) log) cost instead of a dense (S, N, M) distance matrix and
    its backward (an ``align_points`` call takes a third to a quarter of the time it did that way).
    """
    a_np, b_np = a.detach().numpy(), b.numpy()
    b_tree = cKDTree(b_np) if b_tree is None else b_tree
    to_b = b_tree.query(a_np.reshape(-1, 3), k=1)[1].reshape(a_np.shape[:2])  # (S, N)
    to_a = torch.from_numpy(np.stack([cKDTree(x).query(b_np, k=1)[1] for x in a_np]))  # (S, M)
    a_to_b = (a - torch.from_numpy(b_np[to_b])).pow(2).sum(-1).mean(-1)  # b needs no gradient: numpy gathers
    b_to_a = (b - a.gather(1, to_a[..., None].expand(-1, -1, 3))).pow(2).sum(-1).mean(-1)
    return a_to_b + b_to_a


def _fit_similarity(
    a: torch.Tensor, b: torch.Tensor, starts: torch.Tensor, scale: bool, steps: int, lr: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on rotation (6D) + translation (+ log-scale) per start; returns (R, t, s, loss) per start.

    ``a`` (N, 3) and ``b`` (M, 3) are centred point sets, ``starts`` (S, 3, 3) rotations; returns R (S, 3, 3),
    t (S, 1, 3), s (S, 1, 1) and the squared chamfer (S,). The rotation is applied as a broadcast product,
    not a batched matmul, and ``b`` is gathered in numpy: these tensors are small, and multi-threaded
    bmm and indexing on them made a second torch thread wait on a loaded machine (7-10x slower).
    """
    rot6d = starts[:, :, :2].transpose(1, 2).reshape(-1, 6).clone().requires_grad_(True)
    t = torch.zeros(len(starts), 1, 3, requires_grad=True)
    log_s = torch.zeros(len(starts), 1, 1, requires_grad=scale)
    opt = torch.optim.Adam([rot6d, t] + ([log_s] if scale else []), lr=lr)
    b_tree = cKDTree(b.numpy())
    for _ in range(steps + 1):
        R = roma.special_gramschmidt(rot6d.reshape(-1, 2, 3).transpose(1, 2))
        rotated = (a[None, :, None] * R[:, None]).sum(-1)  # (S, N, 3): R a for every start
        loss = _chamfer_torch(log_s.exp() * rotated + t, b, b_tree)
        if _ == steps:
            break
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    return R.detach(), t.detach(), log_s.exp().detach(), loss.detach()


def align_points(
    pred: np.ndarray,
    gt: np.ndarray,
    mode: str = "rigid",
    n_starts: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Move ``pred`` (N,3) onto ``gt`` (M,3) as ``mode`` allows; returns the moved points and the transform.

    Both are centred on their means; rotation (6D, through roma) + translation (+ log-scale) are
    fitted with Adam to the chamfer distance: first from ``n_starts`` rotations at once (the identity
    and random ones) on 300-point subsets, then the best start is refined on 1500 points.
    """
    if mode not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got '{mode}'")
    if mode == "none":
        return pred, {"scale": 1.0}
    gen = torch.Generator().manual_seed(seed)
    pred_t, gt_t = torch.from_numpy(pred), torch.from_numpy(gt)
    pred_c, gt_c = pred_t.mean(0), gt_t.mean(0)
    p, g = (pred_t - pred_c).float(), (gt_t - gt_c).float()

    def subset(x: torch.Tensor, n: int) -> torch.Tensor:
        return x[torch.randperm(len(x), generator=gen)[:n]]

    scale = mode == "similarity"
    starts = torch.cat([torch.eye(3)[None], roma.random_rotmat(max(n_starts - 1, 0), generator=gen)])
    R, t, s, loss = _fit_similarity(subset(p, 300), subset(g, 300), starts, scale, steps=100, lr=0.01)
    best = int(loss.argmin())
    # refine the winner; its translation and scale are folded into the points it starts from
    p1 = s[best] * p @ R[best].T + t[best]
    R2, t2, s2, _ = _fit_similarity(subset(p1, 1500), subset(g, 1500), torch.eye(3)[None], scale, steps=60, lr=0.002)
    out = s2[0] * p1 @ R2[0].T + t2[0]
    return (out.double() + gt_c).numpy(), {"scale": float(s[best] * s2[0])}


def object_scores(
    pred_mesh: trimesh.Trimesh,
    gt_mesh: trimesh.Trimesh,
    align: str = "rigid",
    thresholds: tuple[float, ...] = (0.005, 0.01, 0.02),
    n_points: int = 10000,
    seed: int = 0,
    gt_seen=None,
) -> dict[str, float]:
    """F-scores and chamfers of a predicted object against the ground truth, after ``align``.

    Keys name their convention: ``f@5mm``, ``f@10mm``, ``chamfer_cm2``, ``chamfer_l1_cm``, ``align``.
    ``gt_seen``: optional function of ground-truth points (N, 3) -> (N,) bool, whether an input view
    saw each; then the unseen side is scored too (``unseen_scores``: ``unseen_f@5mm`` ...).
    """
    pred = sample_surface(pred_mesh, n_points, seed)
    gt = sample_surface(gt_mesh, n_points, seed + 1)
    pred, transform = align_points(pred, gt, align, seed=seed)
    scores: dict[str, float] = {f"f@{tau * 1000:g}mm": f for tau, f in fscore(pred, gt, thresholds).items()}
    scores.update(chamfer(pred, gt))
    scores["align_scale"] = transform["scale"]
    if gt_seen is not None:
        scores.update(unseen_scores(pred, gt, ~np.asarray(gt_seen(gt), dtype=bool), thresholds))
    return scores


def unseen_scores(
    pred: np.ndarray, gt: np.ndarray, unseen: np.ndarray, thresholds: tuple[float, ...] = (0.005, 0.01)
) -> dict[str, float]:
    """F-scores on the part of the ground truth no input view saw, where only a prior can help.

    recall: share of unseen ground-truth points within tau of the prediction; precision: share of the
    predicted points whose nearest ground-truth point is unseen that are within tau of it. Also
    ``unseen_share``, the unseen part of the ground truth's surface. NaN where nothing is unseen."""
    scores = {"unseen_share": float(unseen.mean())}
    if not unseen.any():
        return {**scores, **{f"unseen_f@{tau * 1000:g}mm": float("nan") for tau in thresholds}}
    d_gt = nearest_distances(gt[unseen], pred)
    d_pred, nearest = cKDTree(gt).query(pred, k=1, workers=-1)
    towards_unseen = unseen[nearest]
    for tau in thresholds:
        recall = float((d_gt < tau).mean())
        precision = float((d_pred[towards_unseen] < tau).mean()) if towards_unseen.any() else 0.0
        f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        key = f"{tau * 1000:g}mm"
        scores.update({f"unseen_f@{key}": f, f"unseen_precision@{key}": precision, f"unseen_recall@{key}": recall})
    return scores


# -- hands ----------------------------------------------------------------------------------------


def _procrustes(pred: torch.Tensor, gt: torch.Tensor, rotation: bool) -> torch.Tensor:
    """Similarity (rotation + scale + translation), or scale + translation only, of (B,J,3) onto gt."""
    mu_p, mu_g = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p, g = pred - mu_p, gt - mu_g
    if rotation:
        R, t, s = roma.rigid_points_registration(p, g, compute_scaling=True)
        return s[:, None, None] * p @ R.transpose(-1, -2) + t[:, None] + mu_g
    s = (p * g).sum((1, 2)) / (p * p).sum((1, 2)).clamp(min=1e-12)
    return s[:, None, None] * p + mu_g


def mpjpe_mm(pred: torch.Tensor, gt: torch.Tensor, root: int = INDEX_MCP, align: str = "root") -> torch.Tensor:
    """Mean per-joint position error in millimetres per frame, (B,).

    ``align``: "root" (both relative to joint ``root``, by default the index MCP: DiffHOI's joint 5
    in its own order, joint 1 in the hand model's), "procrustes" (similarity transform),
    "scale_translation".
    """
    if align == "root":
        pred, gt = pred - pred[:, root : root + 1], gt - gt[:, root : root + 1]
    elif align == "procrustes":
        pred = _procrustes(pred, gt, rotation=True)
    elif align == "scale_translation":
        pred = _procrustes(pred, gt, rotation=False)
    else:
        raise ValueError(f"align must be root, procrustes or scale_translation, got '{align}'")
    return (pred - gt).norm(dim=-1).mean(-1) * 1000
