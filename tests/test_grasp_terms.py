"""The penetration and contact terms on an analytic sphere: they push a sunk hand out (or carve the
object, as ``loss.penetration_moves`` says) and draw a hovering fingertip onto the surface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hoirecon.fit import losses
from hoirecon.fit.objective import grasp_terms
from hoirecon.hand.model import HandModel


class Sphere(nn.Module):
    """The exact SDF of a sphere at the origin whose radius is a parameter (the object can give way)."""

    def __init__(self, radius: float):
        super().__init__()
        self.radius = nn.Parameter(torch.tensor(radius))

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=-1) - self.radius

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sdf(x), x / x.norm(dim=-1, keepdim=True)


class HandNearSphere(nn.Module):
    """The built-in flat hand, shifted by a learnable offset: the stand-in for a FitScene's hand."""

    def __init__(self, hand_model: HandModel, rest: torch.Tensor, radius: float):
        super().__init__()
        self.hand_model, self.rest = hand_model, rest
        self.offset = nn.Parameter(torch.zeros(3))
        self.sdf = Sphere(radius)

    def hand_vertices_in_object(self, frames: torch.Tensor) -> torch.Tensor:
        return (self.rest + self.offset)[None].expand(len(frames), -1, -1)


@pytest.fixture(scope="module")
def flat_hand():
    model = HandModel(HandModel.Config())
    z = torch.zeros(1, 3)
    verts = model(torch.zeros(1, 45), torch.zeros(1, 10), z, z).vertices[0].detach()
    return model, verts - verts.mean(0)


def _lowered_onto_sphere(verts: torch.Tensor, gap: float, radius: float = 0.04) -> torch.Tensor:
    """``verts`` moved down along y from far above a sphere at the origin until their least signed
    distance to it is ``gap`` (negative: that deep inside), to 0.1 mm."""
    for shift in torch.arange(0.3, -0.3, -1e-4):
        moved = verts + torch.tensor([0.0, float(shift), 0.0])
        if float((moved.norm(dim=-1) - radius).min()) <= gap:
            return moved
    raise AssertionError("never reached the gap")


def _scene(flat_hand, gap: float) -> HandNearSphere:
    """The hand lowered onto a 4 cm sphere until its deepest vertex is ``gap`` from it."""
    model, verts = flat_hand
    return HandNearSphere(model, _lowered_onto_sphere(verts, gap), radius=0.04)


def _index_tip_above(flat_hand, gap: float) -> HandNearSphere:
    """The hand moved so that its index fingertip is ``gap`` straight above a 4 cm sphere's top."""
    model, verts = flat_hand
    tip = verts[model.tip_vertex_ids[1]]
    return HandNearSphere(model, verts - tip + torch.tensor([0.0, 0.04 + gap, 0.0]), radius=0.04)


def _depth_mm(scene: HandNearSphere) -> float:
    with torch.no_grad():
        return float(-scene.sdf.sdf(scene.hand_vertices_in_object(torch.zeros(1))).min()) * 1000


def test_penetration_loss_is_the_summed_depth_of_vertices_inside():
    sdf = torch.tensor([[-0.003, 0.01, -0.001, 0.0], [0.02, 0.02, 0.02, -0.004]])
    assert float(losses.penetration_loss(sdf)) == pytest.approx(((0.003 + 0.001) + 0.004) / 2)
    tips = torch.tensor([[0.01, -0.005, 0.03, 0.0, 0.019]])
    assert float(losses.contact_loss(tips)) == pytest.approx((0.01 + 0.005 + 0.0 + 0.019) / 5)


@pytest.mark.parametrize("moves", ["hand", "object", "both"])
def test_penetration_pushes_a_sunk_hand_out_or_carves_the_object(flat_hand, moves):
    scene = _scene(flat_hand, -0.006)  # its deepest vertex 6 mm inside
    assert 5.9 < _depth_mm(scene) < 6.1
    optim = torch.optim.Adam(scene.parameters(), lr=1e-3)
    for step in range(60):
        optim.zero_grad()
        grasp_terms(scene, torch.zeros(2), penetration=1.0, contact=0.0, moves=moves)["penetration"].backward()
        if step == 0:  # the gradient reaches what gives way, and only that
            hand_grad, object_grad = scene.offset.grad, scene.sdf.radius.grad
            assert (hand_grad is not None and float(hand_grad.abs().sum()) > 0) == (moves != "object")
            assert (object_grad is not None and float(object_grad.abs()) > 0) == (moves != "hand")
        optim.step()
    assert _depth_mm(scene) < 0.5
    if moves == "hand":  # pushed out along the sphere's normal (+y), the sphere untouched
        assert float(scene.offset[1]) > 0.005 and torch.equal(scene.sdf.radius.detach(), torch.tensor(0.04))
    if moves == "object":  # the sphere shrank under the hand, the hand stayed
        assert float(scene.sdf.radius) < 0.0345 and not scene.offset.detach().any()


def test_contact_draws_a_hovering_fingertip_onto_the_surface(flat_hand):
    model, _ = flat_hand
    scene = _index_tip_above(flat_hand, 0.01)
    scene.sdf.radius.requires_grad_(False)

    def tip_gaps() -> torch.Tensor:
        """(5,) signed distances of the fingertips, metres."""
        with torch.no_grad():
            return scene.sdf.sdf(scene.hand_vertices_in_object(torch.zeros(1))[0, model.tip_vertex_ids])

    before = tip_gaps()
    assert float(before[1]) == pytest.approx(0.01, abs=1e-6) and float(before.min()) > 0.005
    optim = torch.optim.Adam([scene.offset], lr=5e-4)
    for _ in range(80):
        optim.zero_grad()
        grasp_terms(scene, torch.zeros(1), penetration=0.0, contact=1.0)["contact"].backward()
        optim.step()
    after = tip_gaps()
    hovering = before.abs() < 0.02  # the index and middle fingertips, 10 and 8 mm away
    assert int(hovering.sum()) == 2 and float(after[hovering].abs().max()) < 0.003
    assert float(scene.offset[1]) < -0.005  # moved down, onto the sphere
    # beyond reach (3 cm away): no pull at all
    far = _index_tip_above(flat_hand, 0.03)
    assert "contact" in grasp_terms(far, torch.zeros(1), 0.0, 1.0)
    assert float(grasp_terms(far, torch.zeros(1), 0.0, 1.0)["contact"]) == 0.0
    assert grasp_terms(far, torch.zeros(1), 0.0, 0.0) == {}
