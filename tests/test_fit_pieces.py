"""Fit building blocks: parameter groups, pixel sampling, compositing, losses, novel views."""

from __future__ import annotations

import pytest
import roma
import torch

from hoirecon.fit.losses import (
    contour_chamfer,
    eikonal_loss,
    mask_contour,
    mask_loss,
    temporal_loss,
)
from hoirecon.fit.params import HandDeltas, IntrinsicsDeltas, RigidDeltas
from hoirecon.fit.rays import PixelSampler
from hoirecon.geometry.camera import project
from hoirecon.geometry.transforms import transform_from_rotvec, transform_points
from hoirecon.priors.novel_view import box_corners, framed_novel_view
from hoirecon.render.composite import composite_labels


def test_rigid_deltas_start_at_the_init_and_left_multiply():
    T_init = transform_from_rotvec(torch.randn(4, 3) * 0.3, torch.randn(4, 3))
    deltas = RigidDeltas(T_init)
    frames = torch.tensor([2, 0])
    assert torch.allclose(deltas(frames), T_init[frames], atol=1e-6)
    with torch.no_grad():
        deltas.transl[2] = torch.tensor([0.0, 0.0, 0.1])
    assert torch.allclose(deltas(frames)[0, :3, 3], T_init[2, :3, 3] + torch.tensor([0.0, 0.0, 0.1]), atol=1e-6)
    shared = RigidDeltas(torch.eye(4).expand(3, 4, 4), shared=True)
    assert shared.rotvec.shape == (1, 3)
    loss = shared(torch.tensor([0, 1, 2]))[:, :3, 3].sum()
    loss.backward()
    assert shared.transl.grad.abs().sum() > 0


def test_intrinsics_deltas():
    K = torch.tensor([[100.0, 0, 31.5], [0, 110.0, 23.5], [0, 0, 1]]).expand(3, 3, 3)
    deltas = IntrinsicsDeltas(K)
    assert torch.allclose(deltas(torch.tensor([1])), K[:1])
    with torch.no_grad():
        deltas.focal_root[1] = 1.1
        deltas.principal_offset[1] = torch.tensor([2.0, -1.0])
    out = deltas(torch.tensor([1]))[0]
    assert out[0, 0].item() == pytest.approx(121.0) and out[1, 1].item() == pytest.approx(133.1)
    assert out[0, 2].item() == pytest.approx(33.5) and out[1, 2].item() == pytest.approx(22.5)


def test_hand_deltas():
    hand = HandDeltas(torch.ones(5, 45), torch.arange(10.0))
    pose, betas = hand(torch.tensor([4, 1]))
    assert torch.equal(pose, torch.ones(2, 45)) and betas.shape == (2, 10) and betas[1, 3] == 3.0
    (pose.sum() + betas.sum()).backward()
    assert hand.pose_delta.grad[4].abs().sum() > 0 and hand.pose_delta.grad[0].abs().sum() == 0


def test_pixel_sampler_follows_proportions_and_labels():
    hand = torch.zeros(2, 8, 10, dtype=torch.bool)
    obj = torch.zeros_like(hand)
    hand[0, 1:3, 1:3] = True
    obj[0, 4:7, 5:9] = True
    sampler = PixelSampler(hand, obj)
    gen = torch.Generator().manual_seed(0)
    pixels, labels = sampler.sample(0, 100, (0.3, 0.35, 0.35), gen)
    assert pixels.shape == (100, 2) and labels.sum(0).tolist() == [35.0, 30.0, 35.0]
    u, v = pixels[:, 0].long(), pixels[:, 1].long()
    assert hand[0, v, u][labels[:, 0] == 1].all() and obj[0, v, u][labels[:, 1] == 1].all()
    assert not (hand[0, v, u] | obj[0, v, u])[labels[:, 2] == 1].any()
    pixels, labels = sampler.sample(1, 50, (0.8, 0.1, 0.1), gen)  # frame 1 has only background
    assert labels[:, 2].sum() == 50


def test_composite_labels():
    a_h, a_o = torch.tensor([1.0, 1.0, 0.0, 0.5]), torch.tensor([1.0, 1.0, 0.0, 0.5])
    z_h, z_o = torch.tensor([0.4, 0.6, 0.5, 0.5]), torch.tensor([0.5, 0.5, 0.5, 0.5])
    labels = composite_labels(a_h, z_h, a_o, z_o, temperature=0.001)
    assert torch.allclose(labels.sum(-1), torch.ones(4))
    assert torch.allclose(labels[0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)  # hand in front
    assert torch.allclose(labels[1], torch.tensor([0.0, 1.0, 0.0]), atol=1e-4)  # object in front
    assert torch.allclose(labels[2], torch.tensor([0.0, 0.0, 1.0]))
    # half-transparent layers at equal depth: 0.5 * (0.5 + 0.5 * 0.5) each, background 0.25
    assert torch.allclose(labels[3], torch.tensor([0.375, 0.375, 0.25]))
    z_h = torch.tensor([0.5], requires_grad=True)
    composite_labels(torch.ones(1), z_h, torch.ones(1), torch.tensor([0.5]), 0.01)[0, 0].backward()
    assert z_h.grad.item() < 0  # moving the hand closer makes it more visible


def test_losses_on_known_values():
    labels = torch.tensor([[0.8, 0.1, 0.1], [0.0, 0.5, 0.5]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert mask_loss(labels, target).item() == pytest.approx(((0.2 + 0.1) + 0.5) / 2)
    assert mask_loss(labels, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.3)
    contour = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    projected = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    assert contour_chamfer(contour, projected, scale=10.0).item() == pytest.approx((0 + 4) / 2 / 10)
    assert eikonal_loss(torch.tensor([[0.0, 2.0, 0.0], [0.6, 0.8, 0.0]])).item() == pytest.approx(0.5)
    joints = torch.zeros(3, 21, 3)
    joints[1] += 0.5  # pure translation: no loss after centring on joint 5
    assert temporal_loss(joints).item() == 0.0
    joints[2, 0, 0] = 0.21
    assert temporal_loss(joints).item() == pytest.approx(0.21 / 21 / 2)


def test_mask_contour():
    mask = torch.zeros(6, 7, dtype=torch.bool)
    mask[1:5, 2:6] = True
    contour = mask_contour(mask)
    assert len(contour) == 4 * 4 - 2 * 2  # the ring of a 4x4 square
    assert {(2.0, 1.0), (5.0, 4.0)} <= {tuple(p) for p in contour.tolist()}
    assert (2.0 + 1, 1.0 + 1) not in {tuple(p) for p in contour.tolist()}


def test_novel_view_frames_the_hand_and_object():
    gen = torch.Generator().manual_seed(3)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.1, 0.05, 0.0], [0.1, -0.05, 0.0]])
    T, K = framed_novel_view(points, 32, gen, fill=0.8)
    assert roma.is_rotation_matrix(T[:3, :3], epsilon=1e-5)
    # the box centre (0.1, 0, 0) projects to the image centre; the sphere's radius (0.1 m) spans
    # 0.8 of the half-width at the distance focal * r / (0.8 * 16) = 1.6 * 32 * 0.1 / 12.8 = 0.4 m
    uv, z = project(transform_points(T, torch.tensor([[0.1, 0.0, 0.0]])), K)
    assert torch.allclose(uv, torch.tensor([[15.5, 15.5]]), atol=1e-4)
    assert z.item() == pytest.approx(0.4, abs=1e-5) and K[0, 0].item() == pytest.approx(1.6 * 32)
    T2, _ = framed_novel_view(points, 32, gen)
    assert not torch.allclose(T[:3, :3], T2[:3, :3])
    corners = box_corners(torch.tensor([0.0, -1.0, 2.0]), torch.tensor([1.0, 0.0, 3.0]))
    assert {tuple(c) for c in corners.tolist()} == {(x, y, z) for x in (0, 1) for y in (-1, 0) for z in (2, 3)}
