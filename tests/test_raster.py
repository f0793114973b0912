"""Soft rasteriser: equals its dense reference, matches analytic silhouettes and depths, gradients, no NaN."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from hoirecon.geometry.camera import intrinsics_from_fov, pixel_grid
from hoirecon.hand.model import HandModel
from hoirecon.render.raster import RasterSettings, rasterize, rasterize_dense

SIZE = (24, 32)


def sphere(radius: float = 0.1, depth: float = 0.5, subdivisions: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    mesh = trimesh.creation.icosphere(subdivisions, radius=radius)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)[None] + torch.tensor([0.0, 0.0, depth])
    return verts, torch.tensor(mesh.faces)


def K_for(size=SIZE, fov=50.0) -> torch.Tensor:
    return intrinsics_from_fov(fov, *size)[None]


def square(z: float = 0.5, half: float = 0.1, tilt: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A square facing the camera (normal -z), optionally tilted about the y axis."""
    xy = torch.tensor([[-half, -half], [half, -half], [half, half], [-half, half]])
    x, y = xy[:, 0], xy[:, 1]
    verts = torch.stack([x * math.cos(tilt), y, z + x * math.sin(tilt)], dim=-1)[None]
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])  # counter-clockwise seen from the camera: normal towards it
    return verts, faces


@pytest.mark.parametrize("cell", [0, 1, 3, 8])  # the cell size trades speed only
def test_culled_equals_dense_in_values_and_gradients(cell):
    verts, faces = sphere()
    verts.requires_grad_(True)
    attrs = verts.detach()[..., :2] * 10
    a = rasterize(verts, faces, K_for(), image_size=SIZE, attributes=attrs, settings=RasterSettings(cell=cell))
    b = rasterize_dense(verts, faces, K_for(), image_size=SIZE, attributes=attrs)
    for x, y in ((a.mask, b.mask), (a.depth, b.depth), (a.normal, b.normal), (a.attributes, b.attributes)):
        assert torch.allclose(x, y, atol=1e-5)
    ga = torch.autograd.grad((a.mask + a.depth + a.normal.sum(-1)).sum(), verts)[0]
    gb = torch.autograd.grad((b.mask + b.depth + b.normal.sum(-1)).sum(), verts)[0]
    assert torch.allclose(ga, gb, atol=1e-3 * ga.abs().max().item())


def test_silhouette_matches_the_projected_disc():
    verts, faces = sphere(subdivisions=4)
    K = K_for((48, 48))
    out = rasterize(verts, faces, K, image_size=(48, 48))
    # a sphere of radius r at distance d projects to a disc of radius f * r / sqrt(d^2 - r^2)
    f, r, d = K[0, 0, 0].item(), 0.1, 0.5
    radius = f * r / math.sqrt(d * d - r * r)
    uv = pixel_grid(48, 48).reshape(48, 48, 2)
    disc = ((uv - K[0, :2, 2]) ** 2).sum(-1).sqrt() < radius
    hard = out.mask[0] > 0.5
    iou = (hard & disc).sum() / (hard | disc).sum()
    assert iou > 0.95
    assert torch.equal(out.covered[0], hard) or (out.covered[0] ^ hard).sum() < 0.03 * disc.sum()


def test_depth_and_normal_of_known_planes():
    verts, faces = square(z=0.5)
    out = rasterize(verts, faces, K_for(), image_size=SIZE)
    inside = out.covered[0]
    assert inside.sum() > 50
    assert torch.allclose(out.depth[0][inside], torch.tensor(0.5), atol=1e-5)
    assert torch.allclose(out.normal[0][inside], torch.tensor([0.0, 0.0, -1.0]), atol=1e-5)
    tilt = 0.6
    verts, faces = square(z=0.5, tilt=tilt)
    K = K_for()
    out = rasterize(verts, faces, K, image_size=SIZE)
    inside = out.covered[0]
    # ray through pixel (u, v) hits the plane z = 0.5 + x tan(tilt) at x / z = (u - cx) / f
    u = pixel_grid(*SIZE)[:, 0].reshape(SIZE)
    slope = (u - K[0, 0, 2]) / K[0, 0, 0]
    expected = 0.5 / (1 - slope * math.tan(tilt))
    assert torch.allclose(out.depth[0][inside], expected[inside], rtol=1e-4)
    normal = torch.tensor([math.sin(tilt), 0.0, -math.cos(tilt)])
    assert torch.allclose(out.normal[0][inside], normal, atol=1e-4)


def test_queries_equal_the_full_image():
    verts, faces = sphere()
    full = rasterize(verts, faces, K_for(), image_size=SIZE)  # cells of 4 px; queries: 8
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, SIZE[0] * SIZE[1], (1, 50), generator=gen)
    pixels = pixel_grid(*SIZE)[idx[0]][None]
    part = rasterize(verts, faces, K_for(), image_size=SIZE, pixels=pixels)
    assert torch.allclose(part.mask[0], full.mask.reshape(1, -1)[0, idx[0]], atol=1e-6)
    assert torch.allclose(part.depth[0], full.depth.reshape(1, -1)[0, idx[0]], atol=1e-6)
    assert torch.allclose(part.normal[0], full.normal.reshape(1, -1, 3)[0, idx[0]], atol=1e-6)


def test_gradcheck_on_a_triangle():
    verts, faces = square(z=0.5)
    verts = verts[:, :3].double().requires_grad_(True)
    faces = faces[:1]
    K = K_for((8, 8), fov=60).double()
    pixels = torch.tensor([[[3.2, 3.7], [1.5, 4.1], [5.5, 5.0]]], dtype=torch.float64)
    settings = RasterSettings(sigma=1.0)

    def fn(v: torch.Tensor) -> torch.Tensor:
        out = rasterize(v, faces, K, image_size=(8, 8), pixels=pixels, settings=settings)
        return torch.cat([out.mask.reshape(-1), out.depth.reshape(-1), out.normal.reshape(-1)])

    assert torch.autograd.gradcheck(fn, (verts,), eps=1e-6, atol=1e-4)


def test_silhouette_gradient_from_outside_the_hard_mask():
    verts, faces = sphere()
    verts.requires_grad_(True)
    out = rasterize(verts, faces, K_for(), image_size=SIZE)
    ring = (out.mask[0] > 0.01) & ~out.covered[0]
    assert ring.any()
    (out.mask[0][ring].sum()).backward()
    assert verts.grad.abs().sum() > 0
    # growing the sphere raises coverage there: the gradient points outwards on average
    radial = verts.detach()[0] - verts.detach()[0].mean(0)
    assert (verts.grad[0] * radial).sum() > 0


@pytest.mark.parametrize("case", ["behind", "offscreen", "degenerate", "empty"])
def test_no_nan_on_degenerate_input(case):
    verts, faces = sphere()
    if case == "behind":
        verts = verts - torch.tensor([0.0, 0.0, 0.55])  # straddles and passes the camera plane
    elif case == "offscreen":
        verts = verts + torch.tensor([5.0, 0.0, 0.0])
    elif case == "degenerate":
        verts = verts.clone()
        faces = torch.cat([faces, torch.tensor([[0, 0, 1], [2, 2, 2]])])
        verts[0, 5] = verts[0, 6]  # a zero-area face inside the mesh
    else:
        faces = faces[:0]
    verts = verts.clone().requires_grad_(True)
    out = rasterize(verts, faces, K_for(), image_size=SIZE)
    total = out.mask.sum() + out.depth.sum() + out.normal.sum()
    total.backward()
    for x in (out.mask, out.depth, out.normal, verts.grad):
        assert torch.isfinite(x).all()
    if case in ("offscreen", "empty"):
        assert out.mask.abs().max() == 0


def test_full_image_mask_is_solid_across_inner_contours():
    """A small sphere in front of a big one: its outline inside the big one's silhouette is not a dark ring."""
    v1, f1 = sphere(radius=0.1, depth=0.6)
    v2, f2 = sphere(radius=0.04, depth=0.45)
    verts = torch.cat([v1, v2], dim=1)
    faces = torch.cat([f1, f2 + v1.shape[1]])
    size = (64, 64)
    out = rasterize(verts, faces, K_for(size), image_size=size)
    c = out.covered[0]
    inside = c.clone()
    inside[1:-1, 1:-1] &= c[:-2, 1:-1] & c[2:, 1:-1] & c[1:-1, :-2] & c[1:-1, 2:]
    assert inside.sum() > 300
    assert out.mask[0][inside].min() == 1.0
    # the queried-pixel path keeps the contour's soft value there (no neighbours to look at)
    q = rasterize(verts, faces, K_for(size), image_size=size, pixels=pixel_grid(*size)[None])
    assert q.mask[0].reshape(size)[inside].min() < 0.8
    assert torch.equal(out.mask[0][~inside], q.mask[0].reshape(size)[~inside])


def test_contour_edges_are_the_edges_of_exactly_one_face():
    from hoirecon.render.raster import contour_edges

    tetra = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 3, 2], [0, 2, 3]])
    assert contour_edges(tetra).shape == (0, 2)  # closed: every edge has two faces
    assert contour_edges(tetra[1:]).tolist() == [[0, 1], [0, 2], [1, 2]]  # the missing face's rim, sorted
    assert contour_edges(tetra[:0]).shape == (0, 2)
    # the built-in hand with half its faces dropped: the same as counting unique rows
    faces = HandModel(HandModel.Config()).faces
    kept = faces[torch.rand(len(faces), generator=torch.Generator().manual_seed(0)) < 0.5]
    rows = torch.cat([kept[:, [0, 1]], kept[:, [1, 2]], kept[:, [2, 0]]]).sort(dim=1).values
    unique, counts = torch.unique(rows, dim=0, return_counts=True)
    assert torch.equal(contour_edges(kept), unique[counts == 1])
