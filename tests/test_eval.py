"""Metrics on hand-computed cases: identical shapes, known offsets, known scales, hand errors."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch
import trimesh

from hoirecon.eval.geometry import align_points, chamfer, fscore, mpjpe_mm, object_scores
from hoirecon.eval.metrics import HandMPJPE


def plane_grid(step: float = 0.001, n: int = 60) -> np.ndarray:
    u, v = np.meshgrid(np.arange(n) * step, np.arange(n) * step)
    return np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], axis=1)


def test_identical_shapes_score_perfectly():
    mesh = trimesh.creation.icosphere(3, radius=0.05)
    scores = object_scores(mesh, mesh, align="none")
    assert scores["f@5mm"] == 1.0 and scores["f@10mm"] == 1.0
    assert scores["chamfer_cm2"] < 0.05  # two independent 10k samples of one sphere: ~1 mm spacing


def test_known_offset_gives_known_chamfer_and_fscore():
    gt = plane_grid()
    pred = gt + [0.0, 0.0, 0.003]  # every nearest neighbour is exactly 3 mm away
    c = chamfer(pred, gt)
    assert c["chamfer_cm2"] == pytest.approx(2 * 0.3**2)  # 2 * (0.3 cm)^2
    assert c["chamfer_l1_cm"] == pytest.approx(0.6)
    f = fscore(pred, gt, thresholds=(0.002, 0.005))
    assert f[0.002] == 0.0 and f[0.005] == 1.0


def test_fscore_of_a_half_match():
    gt = plane_grid()
    pred = gt.copy()
    pred[: len(pred) // 2, 2] += 0.05  # half the prediction is far away (precision 0.5, recall ~0.5)
    f = fscore(pred, gt, thresholds=(0.005,))[0.005]
    assert 0.45 < f < 0.55


def test_alignment_recovers_rotation_translation_and_scale():
    mesh = trimesh.creation.box((0.04, 0.07, 0.1))
    gt = trimesh.sample.sample_surface(mesh, 3000, seed=0)[0]
    R = roma.rotvec_to_rotmat(torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)).numpy()
    pred = 1.25 * gt @ R.T + [0.1, -0.2, 0.05]
    moved, transform = align_points(pred, gt, "similarity")
    assert transform["scale"] == pytest.approx(0.8, rel=0.03)
    assert chamfer(moved, gt)["chamfer_cm2"] < 0.01
    moved, transform = align_points(pred / 1.25, gt, "rigid")
    assert transform["scale"] == 1.0 and chamfer(moved, gt)["chamfer_cm2"] < 0.01
    with pytest.raises(ValueError, match="alignment must be one of"):
        align_points(pred, gt, "affine")


def test_alignment_chamfer_equals_the_all_pairs_minimum_and_its_gradient():
    from hoirecon.eval.geometry import _chamfer_torch

    gen = torch.Generator().manual_seed(0)
    a = (torch.rand(3, 50, 3, generator=gen) * 0.1).requires_grad_(True)
    b = torch.rand(70, 3, generator=gen) * 0.1
    dense = torch.cdist(a, b.expand(3, 70, 3))
    expected = dense.min(dim=2).values.pow(2).mean(-1) + dense.min(dim=1).values.pow(2).mean(-1)
    (grad_expected,) = torch.autograd.grad(expected.sum(), a)
    loss = _chamfer_torch(a, b)
    (grad,) = torch.autograd.grad(loss.sum(), a)
    assert loss.shape == (3,) and torch.allclose(loss, expected, rtol=1e-4)
    assert torch.allclose(grad, grad_expected, rtol=1e-3, atol=1e-7) and grad.abs().sum() > 0


def test_mpjpe_conventions():
    torch.manual_seed(0)
    gt = torch.randn(3, 21, 3, dtype=torch.float64) * 0.05
    shifted = gt + torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)
    assert mpjpe_mm(shifted, gt, align="root").abs().max() < 1e-9  # root-relative ignores translation
    R = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.4, 0.0], dtype=torch.float64))
    similar = 1.1 * gt @ R.T + 0.2
    assert mpjpe_mm(similar, gt, align="procrustes").max() < 1e-6
    assert mpjpe_mm(1.1 * gt + 0.2, gt, align="scale_translation").max() < 1e-6
    noisy = gt.clone()
    noisy[:, 0] += torch.tensor([0.0, 0.021, 0.0], dtype=torch.float64)  # one joint 21 mm off
    assert mpjpe_mm(noisy, gt, root=5, align="root") == pytest.approx(torch.full((3,), 1.0, dtype=torch.float64))
    # the default root is the index MCP (joint 1 of the hand model, docs/compare.md): when it is off,
    # every other joint is off relative to it
    at_root = gt.clone()
    at_root[:, 1] += torch.tensor([0.0, 0.021, 0.0], dtype=torch.float64)
    assert mpjpe_mm(at_root, gt, align="root") == pytest.approx(torch.full((3,), 20.0, dtype=torch.float64))
    assert HandMPJPE().root == 1


def test_metric_classes_accumulate():
    metric = HandMPJPE(root=5)
    gt = torch.zeros(4, 21, 3)
    pred = gt.clone()
    pred[:2, 3, 0] = 0.042  # two frames with one joint 42 mm off: 2 mm mean each
    metric.update(pred[:2], gt[:2])
    metric.update(pred[2:], gt[2:])
    assert metric.compute()["mpjpe_mm[root]"] == pytest.approx(1.0)


def test_mask_iou_on_hand_counted_masks():
    from hoirecon.eval.metrics import MaskIoU

    pred = torch.zeros(2, 4, 4, dtype=torch.bool)
    gt = torch.zeros(2, 4, 4, dtype=torch.bool)
    pred[0, :2] = True  # 8 pixels
    gt[0, 1:3] = True  # 8 pixels, 4 shared: IoU 4/12
    metric = MaskIoU()
    metric.update(pred, gt)  # frame 1 is empty in both: not counted
    assert metric.compute() == pytest.approx(1 / 3)


def test_penetration_and_contact_from_signed_distances():
    from hoirecon.eval.metrics import HandObjectContact

    sdf = torch.tensor([[0.010, -0.003, 0.02], [0.004, 0.03, 0.05], [0.02, 0.03, 0.04], [-0.001, 0.0, 0.1]])
    metric = HandObjectContact(contact_mm=5.0)
    metric.update(sdf)
    out = metric.compute()
    assert out["penetration_mm"] == pytest.approx((3 + 0 + 0 + 1) / 4) and out["penetration_max_mm"] == pytest.approx(3)
    metric.update(torch.tensor([[-0.0025, 0.01, 0.01]]))  # a shallower frame: the deepest stays
    assert metric.compute()["penetration_max_mm"] == pytest.approx(3)
    assert out["contact_ratio@5mm"] == pytest.approx(3 / 4)


def test_unseen_scores_count_only_the_unseen_side():
    from hoirecon.eval.geometry import unseen_scores

    gt = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0]])
    unseen = np.array([False, False, True, True])
    # the prediction matches the seen half, finds one unseen point and puts one point 3 mm off the other
    pred = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0.003, 0], [0.45, 0, 0]])
    s = unseen_scores(pred, gt, unseen, thresholds=(0.002, 0.005))
    assert s["unseen_share"] == 0.5
    # tau 2 mm: recall 1/2 (0.2 found, 0.3 is 3 mm off); the 3 predicted points nearest to unseen GT
    # points (0.2, 0.3+3mm, 0.45) are within 2 mm once: precision 1/3
    assert s["unseen_recall@2mm"] == 0.5 and s["unseen_precision@2mm"] == pytest.approx(1 / 3)
    assert s["unseen_f@2mm"] == pytest.approx(2 * 0.5 / 3 / (0.5 + 1 / 3))
    assert s["unseen_recall@5mm"] == 1.0 and s["unseen_precision@5mm"] == pytest.approx(2 / 3)
    assert np.isnan(unseen_scores(pred, gt, np.zeros(4, bool))["unseen_f@5mm"])


@pytest.mark.slow  # two clips rendered and checked frame by frame
def test_a_narrow_arc_sees_less_of_the_object_than_a_full_one():
    from hoirecon.data.synth.clip import SynthClipConfig, make_clip
    from hoirecon.eval.fit_scores import seen_by_the_clip
    from hoirecon.eval.geometry import sample_surface

    shares = {}
    for arc in (360.0, 40.0):
        clip = make_clip(SynthClipConfig(category="bottle", frames=8, resolution=64, arc_degrees=arc))
        gt = trimesh.Trimesh(clip.gt.object_vertices, clip.gt.object_faces, process=False)
        points = sample_surface(gt, 3000, 0)
        seen = seen_by_the_clip(clip, gt, points)
        shares[arc] = seen.mean()
        # some of the surface is always hidden (the bottom under the hand, the far side of the arc)
        assert 0 < seen.mean() < 1
    assert shares[40.0] < shares[360.0] - 0.15
