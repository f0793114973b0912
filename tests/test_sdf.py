"""SDF backbones and mesh extraction: sphere init, gradients, density, fitting, marching cubes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from hoirecon.errors import ConfigError
from hoirecon.registry import build
from hoirecon.sdf.common import laplace_density, sdf_and_gradient
from hoirecon.sdf.mesh import EmptySurfaceError, extract_mesh, save_mesh

BACKBONES = ["mlp", "hashgrid"]


def test_laplace_density_values():
    beta = 0.01
    sdf = torch.tensor([0.0, 0.01, -0.01, 1e3, -1e3])
    expected = torch.tensor([0.5, 0.5 * math.exp(-1), 1 - 0.5 * math.exp(-1), 0.0, 1.0]) / beta
    assert torch.allclose(laplace_density(sdf, beta), expected, atol=1e-4)
    assert torch.isfinite(laplace_density(torch.tensor([1e30, -1e30]), 1e-6)).all()


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_starts_as_the_sphere(name):
    net = build("sdf", {"type": name, "init_radius": 0.08, "init_centre": [0.01, 0.0, -0.02]})
    x = (torch.rand(3000, 3) - 0.5) * 0.3
    sdf, grad = net.sdf_and_gradient(x)
    expected = (x - torch.tensor([0.01, 0.0, -0.02])).norm(dim=1) - 0.08
    assert torch.allclose(sdf, expected, atol=1e-5)
    assert torch.allclose(grad.norm(dim=1), torch.ones(3000), atol=1e-4)  # eikonal-consistent
    s, feature = net(x)
    assert feature.shape == (3000, net.feature_dim) and torch.equal(s, sdf)


@pytest.mark.parametrize("name", BACKBONES)
def test_gradient_matches_finite_differences(name):
    torch.manual_seed(0)
    net = build("sdf", {"type": name}).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = (torch.rand(6, 3, dtype=torch.float64) - 0.5) * 0.2
    _, grad = net.sdf_and_gradient(x)
    eps = 1e-6
    fd = torch.stack(
        [(net.sdf(x + eps * e) - net.sdf(x - eps * e)) / (2 * eps) for e in torch.eye(3, dtype=torch.float64)], 1
    )
    assert torch.allclose(grad, fd, atol=1e-5)
    _, auto = sdf_and_gradient(net.sdf, x)
    assert torch.allclose(grad, auto, atol=1e-8)


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"skip_layer": 2},
        {"skip_layer": 0, "weight_norm": False},
        {"skip_layer": 4, "layers": 4},  # the output layer reads the encoding
        {"n_freqs": 0, "layers": 2},
    ],
)
def test_mlp_hand_written_backward_matches_autograd(cfg):
    """Values, parameter gradients and point gradients of sdf_and_gradient against autograd's double
    backward (float64); 2501 points so the weight gradients take the split-batch path with a remainder."""
    torch.manual_seed(1)
    net = build("sdf", {"type": "mlp", **cfg}).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x0 = torch.randn(2501, 3, dtype=torch.float64) * 0.1
    w = torch.randn(2501, 3, dtype=torch.float64)
    params = list(net.parameters())
    results = []
    for fn in (net.sdf_and_gradient, lambda x: sdf_and_gradient(net.sdf, x)):
        x = x0.clone().requires_grad_(True)
        s, g = fn(x)
        loss = ((g.norm(dim=1) - 1) ** 2).mean() + (g * w).mean() + s.abs().mean()
        results.append((s, g, torch.autograd.grad(loss, [x, *params], allow_unused=True)))
    (s1, g1, d1), (s2, g2, d2) = results
    assert torch.allclose(s1, s2, atol=1e-12) and torch.allclose(g1, g2, atol=1e-10)
    assert torch.allclose(d1[0], d2[0], atol=1e-9)  # d loss / d x
    for a, b in zip(d1[1:], d2[1:]):
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        assert torch.allclose(a, b, atol=1e-9)


@pytest.mark.slow  # needs two torch threads to be able to fail
def test_hashgrid_gradients_are_reproducible():
    """The table's gradient is bit-identical run to run. With ``table[index]`` it was not: that
    backward accumulates with parallel atomic adds on a CPU (4 different results in 4 runs here)."""
    torch.manual_seed(0)
    enc = build("sdf", {"type": "hashgrid"}).encoding
    x = torch.rand(65536, 3)
    d_out = torch.randn(65536, 16)
    grads = []
    for _ in range(4):
        enc.table.grad = None
        enc(x).backward(d_out)
        grads.append(enc.table.grad.clone())
    assert all(torch.equal(grads[0], g) for g in grads[1:])


def test_mlp_rejects_impossible_shapes():
    with pytest.raises(ConfigError, match=r"'layers'.*>= 1"):
        build("sdf", {"type": "mlp", "layers": 0})
    with pytest.raises(ConfigError, match="sdf.skip_layer must be -1"):
        build("sdf", {"type": "mlp", "layers": 4, "skip_layer": 5})


def test_mlp_gradient_without_graph_is_detached():
    net = build("sdf", {"type": "mlp"})
    x = torch.randn(10, 3, requires_grad=True) * 0.1
    s, g = net.sdf_and_gradient(x, create_graph=False)
    assert not s.requires_grad and not g.requires_grad
    s2, g2 = net.sdf_and_gradient(x)
    assert torch.equal(s, s2.detach()) and torch.equal(g, g2.detach())


def test_hashgrid_indices_and_annealing():
    net = build("sdf", {"type": "hashgrid", "n_levels": 6, "anneal_steps": 100, "anneal_start_levels": 2})
    assert net.encoding.level_mask.tolist() == [1, 1, 0, 0, 0, 0]
    net.on_step(50, 1000)
    assert net.encoding.level_mask.tolist() == [1, 1, 1, 1, 0, 0]
    net.on_step(1000, 1000)
    assert net.encoding.level_mask.sum() == 6
    # every corner of every level reads its own level's slice of the table, also at the cube's faces
    enc = net.encoding
    x = torch.cat([torch.rand(500, 3), torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 1.0, 0.0]])])
    index, w = enc.lookup(x)
    level = torch.arange(6)[None, :, None]
    assert (index >= level * enc.size).all() and (index < (level + 1) * enc.size).all()
    assert torch.allclose(w.sum(-1), torch.ones(503, 6))
    assert enc.dense[0] and not enc.dense[-1]  # coarse levels dense, fine levels hashed
    with pytest.raises(ConfigError, match="tcnn needs CUDA"):
        build("sdf", {"type": "hashgrid", "implementation": "tcnn"}).sdf(torch.zeros(1, 3))


def _box_sdf(x: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    q = x.abs() - half
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


@pytest.mark.slow  # a 250-step fit
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_fits_a_box(name):
    torch.manual_seed(0)
    net = build("sdf", {"type": name, "init_radius": 0.06})
    half = torch.tensor([0.05, 0.03, 0.04])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(250):
        x = (torch.rand(2048, 3) - 0.5) * 0.2
        loss = (net.sdf(x) - _box_sdf(x, half)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = (torch.rand(4096, 3) - 0.5) * 0.2
    with torch.no_grad():
        err = (net.sdf(x) - _box_sdf(x, half)).abs().mean().item()
    assert err < 0.003  # mean error under 3 mm after 250 steps


@pytest.mark.slow  # marching cubes of an MLP at 96^3
def test_sphere_mesh_has_the_right_area_and_volume(tmp_path):
    net = build("sdf", {"type": "mlp", "init_radius": 0.05})
    mesh = extract_mesh(net.sdf, net.bound, resolution=96)
    assert mesh.is_watertight
    assert mesh.area == pytest.approx(4 * math.pi * 0.05**2, rel=0.02)
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.05**3, rel=0.02)
    for suffix in (".obj", ".ply"):
        path = save_mesh(mesh, tmp_path / f"sphere{suffix}")
        assert path.stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp*"))


def test_largest_component():
    def two_spheres(x: torch.Tensor) -> torch.Tensor:
        a = (x - torch.tensor([0.05, 0.0, 0.0])).norm(dim=1) - 0.04
        b = (x + torch.tensor([0.08, 0.0, 0.0])).norm(dim=1) - 0.01
        return torch.minimum(a, b)

    both = extract_mesh(two_spheres, 0.15, resolution=64)
    one = extract_mesh(two_spheres, 0.15, resolution=64, largest_component=True)
    assert len(both.split(only_watertight=False)) == 2 and len(one.split(only_watertight=False)) == 1
    np.testing.assert_allclose(one.bounds.mean(0), [0.05, 0.0, 0.0], atol=0.005)
    # the cached face normals follow the winding and point outwards (they once pointed inwards here)
    for mesh in (both, one):
        fresh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).face_normals
        np.testing.assert_allclose(mesh.face_normals, fresh, atol=1e-9)
    outward = one.triangles_center - np.array([0.05, 0.0, 0.0])
    assert (np.einsum("ij,ij->i", one.face_normals, outward) > 0).all()


def test_empty_level_set_is_a_clear_error():
    with pytest.raises(EmptySurfaceError, match="no surface inside the box"):
        extract_mesh(lambda x: x.norm(dim=1) + 1.0, 0.1, resolution=16)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'foo' for sdf 'mlp'"):
        build("sdf", {"type": "mlp", "foo": 1})


@pytest.mark.parametrize("name", ["mlp", "hashgrid"])
def test_no_points_give_empty_results(name):
    """A chunk of rays that all miss the object sends no points; that must not fail."""
    net = build("sdf", name)
    sdf, grad = net.sdf_and_gradient(torch.zeros(0, 3))
    assert sdf.shape == (0,) and grad.shape == (0, 3)
