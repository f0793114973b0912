"""Procedural objects: watertight, real-world sizes, deterministic, SDF agrees with the mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from hoirecon.categories import KNOWN_CATEGORIES
from hoirecon.registry import REGISTRY, build

# largest bounding-box side, metres
SIZES = {
    "mug": (0.08, 0.16),
    "cup": (0.07, 0.13),
    "bowl": (0.1, 0.2),
    "bottle": (0.15, 0.27),
    "spraybottle": (0.15, 0.3),
    "kettle": (0.12, 0.3),
    "knife": (0.18, 0.32),
    "toycar": (0.08, 0.16),
    "can": (0.09, 0.14),
    "box": (0.04, 0.16),
    "ball": (0.05, 0.11),
}


def test_every_known_category_has_a_generator():
    assert set(KNOWN_CATEGORIES) <= set(REGISTRY.names("object_generator"))


@pytest.mark.parametrize("category", sorted(SIZES))
def test_generator_gives_a_plausible_watertight_object(category):
    obj = build("object_generator", category).generate(seed=1)
    mesh = obj.mesh
    assert obj.category == category
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    low, high = SIZES[category]
    assert low <= mesh.extents.max() <= high
    np.testing.assert_allclose((mesh.bounds[0] + mesh.bounds[1]) / 2, 0.0, atol=0.003)  # centred
    # the analytic SDF vanishes on the mesh and is negative at interior points
    on_surface = obj.sdf(torch.from_numpy(mesh.vertices[::50]))
    assert on_surface.abs().max() < 0.002
    inside = trimesh.sample.volume_mesh(mesh, 200)
    assert (obj.sdf(torch.from_numpy(inside)) < 0.0005).all()


def test_same_seed_same_object_and_seeds_vary():
    a = build("object_generator", "bottle").generate(seed=3)
    b = build("object_generator", "bottle").generate(seed=3)
    c = build("object_generator", "bottle").generate(seed=4)
    assert a.params == b.params and np.array_equal(a.mesh.vertices, b.mesh.vertices)
    assert a.params != c.params


def test_mug_has_a_cavity_and_a_handle():
    obj = build("object_generator", "mug").generate(seed=0)
    r, h = obj.params["radius"], obj.params["height"]
    axis = torch.from_numpy(obj.design_origin)  # the body's axis; the handle moved the box centre
    inside_cavity = axis + torch.tensor([[0.0, 0.0, h / 4]], dtype=torch.float64)
    in_wall = axis + torch.tensor([[r - obj.params["wall"] / 2, 0.0, 0.0]], dtype=torch.float64)
    assert obj.sdf(inside_cavity).item() > 0.01  # empty: a mug is not a cylinder
    assert obj.sdf(in_wall).item() < 0
    assert obj.mesh.bounds[1][0] - obj.mesh.bounds[0][0] > 2 * r + 0.02  # the handle sticks out


def test_config_ranges_are_used():
    obj = build("object_generator", {"type": "ball", "radius": [0.04, 0.04]}).generate(seed=9)
    assert obj.mesh.extents.max() == pytest.approx(0.08, abs=0.003)
    assert obj.mesh.volume == pytest.approx(4 / 3 * np.pi * 0.04**3, rel=0.03)
