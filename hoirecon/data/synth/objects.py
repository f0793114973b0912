"""Procedural everyday objects (role ``object_generator``), at real sizes in metres, seeded.

Each generator draws its proportions from ranges in its Config and returns a ``SynthObject``: an
analytic signed distance function (used for grasp contact and penetration tests) and its watertight
marching-cubes mesh. Object frame: origin at the centre of the bounding box, +z up (the axis of
revolution of round objects). Objects from mesh files (a user's, or the mesh library) are in
``mesh_objects`` and ``library``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import trimesh

from hoirecon.data.synth import shapes as S
from hoirecon.dataclass_config import ranged
from hoirecon.geometry.mesh_sdf import SDF
from hoirecon.registry import register
from hoirecon.sdf.mesh import extract_mesh


@dataclass
class SynthObject:
    """A generated object: ``sdf`` maps (N, 3) metres to (N,) signed distances (negative inside);
    ``mesh`` is its surface (closed for procedural objects, as given for mesh files)."""

    category: str
    sdf: SDF
    mesh: trimesh.Trimesh
    params: dict[str, float] = field(default_factory=dict)
    #: Where it came from: "procedural", or the mesh file(s) it was made of.
    source: str = "procedural"
    #: (3,) where the generator's own design frame origin sits in the object frame (the box centre moved).
    design_origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def extent(self) -> np.ndarray:
        """(3,) bounding box size in metres."""
        return self.mesh.bounds[1] - self.mesh.bounds[0]


def mesh_from_sdf(sdf: SDF, lo: np.ndarray, hi: np.ndarray, voxel: float) -> trimesh.Trimesh:
    """Marching cubes over [lo, hi] padded by 2 voxels (so the surface never touches the box)."""
    return extract_mesh(sdf, np.asarray(lo) - 2 * voxel, np.asarray(hi) + 2 * voxel, voxel=voxel, dtype=torch.float64)


def _make(category: str, sdf: SDF, half: np.ndarray, voxel: float, params: dict[str, float]) -> SynthObject:
    mesh = mesh_from_sdf(sdf, -half, half, voxel)
    centre = (mesh.bounds[0] + mesh.bounds[1]) / 2
    if np.abs(centre).max() > voxel:  # keep the origin at the box centre exactly
        offset = torch.from_numpy(centre)

        def shifted(p: torch.Tensor) -> torch.Tensor:
            return sdf(p + offset.to(p.dtype))

        mesh.apply_translation(-centre)
        return SynthObject(category, shifted, mesh, params, design_origin=-centre)
    return SynthObject(category, sdf, mesh, params)


class _Draw:
    """Uniform draws from (low, high) ranges, recorded for reproducibility."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, float] = {}

    def __call__(self, name: str, bounds: tuple[float, float]) -> float:
        value = float(self.rng.uniform(*bounds))
        self.params[name] = value
        return value


def _rot_x(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)


def _cup_profile(radius_bottom: float, radius_top: float, height: float, wall: float, base: float) -> list:
    """(r, z) outline of an open cup with walls, z from -height/2 to height/2."""
    z0, z1 = -height / 2, height / 2
    inner_bottom, inner_top = radius_bottom - wall, radius_top - wall
    return [
        (0.0, z0),
        (radius_bottom, z0),
        (radius_top, z1),
        (inner_top, z1),
        (inner_bottom, z0 + base),
        (0.0, z0 + base),
    ]


@register("object_generator", "mug")
class Mug:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.035, 0.045], above=0)
        height: list[float] = ranged([0.08, 0.11], above=0)
        wall: list[float] = ranged([0.004, 0.006], above=0)
        handle_radius: list[float] = ranged([0.022, 0.03], above=0)
        handle_thickness: list[float] = ranged([0.006, 0.009], above=0)
        voxel: float = ranged(0.0015, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r, h, w = d("radius", c.radius), d("height", c.height), d("wall", c.wall)
        hr, ht = d("handle_radius", c.handle_radius), d("handle_thickness", c.handle_thickness)
        hr = min(hr, 0.45 * h)
        profile = _cup_profile(r, r, h, w, 1.5 * w)
        hx = r + 0.55 * hr  # handle centre: most of the ring outside the body

        def sdf(p: torch.Tensor) -> torch.Tensor:
            body = S.revolve_z(p, profile) - 0.0008
            ring = S.torus_xz(p - torch.tensor([hx, 0.0, 0.0], dtype=p.dtype), hr, ht / 2)
            ring = S.intersect(ring, (r - w / 2) - p[..., 0])  # keep the handle out of the cavity
            return S.smooth_union(body, ring, 0.004)

        half = np.array([hx + hr + ht, r, h / 2]) + 0.002
        half[0] = max(half[0], r + 0.002)
        return _make("mug", sdf, half, c.voxel, d.params)


@register("object_generator", "cup")
class Cup:
    @dataclass
    class Config:
        radius_bottom: list[float] = ranged([0.025, 0.032], above=0)
        radius_top: list[float] = ranged([0.035, 0.045], above=0)
        height: list[float] = ranged([0.08, 0.12], above=0)
        wall: list[float] = ranged([0.003, 0.005], above=0)
        voxel: float = ranged(0.0015, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        rb, rt = d("radius_bottom", c.radius_bottom), d("radius_top", c.radius_top)
        h, w = d("height", c.height), d("wall", c.wall)
        profile = _cup_profile(rb, rt, h, w, 1.5 * w)
        return _make(
            "cup", lambda p: S.revolve_z(p, profile) - 0.0006, np.array([rt, rt, h / 2]) + 0.002, c.voxel, d.params
        )


@register("object_generator", "bowl")
class Bowl:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.06, 0.085], above=0)
        depth_ratio: list[float] = ranged([0.5, 0.7], above=0)
        wall: list[float] = ranged([0.003, 0.005], above=0)
        foot: list[float] = ranged([0.025, 0.04], above=0)
        voxel: float = ranged(0.0018, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r, k, w, foot = d("radius", c.radius), d("depth_ratio", c.depth_ratio), d("wall", c.wall), d("foot", c.foot)
        depth = r * k
        # an elliptical shell (open at z = 0) standing on a flat foot of radius `foot`
        angles = np.linspace(math.asin(min(foot / r, 0.9)), math.pi / 2, 20)
        outer = [(r * math.sin(a), -depth * math.cos(a)) for a in angles]
        inner = [((r - w) * math.sin(a), -(depth - w) * math.cos(a)) for a in angles[::-1]]
        profile = [(0.0, -depth), (foot, -depth), *outer, *inner, (0.0, -(depth - w))]

        def sdf(p: torch.Tensor) -> torch.Tensor:
            return S.revolve_z(p + torch.tensor([0.0, 0.0, -depth / 2], dtype=p.dtype), profile) - 0.0008

        return _make("bowl", sdf, np.array([r, r, depth / 2]) + 0.003, c.voxel, d.params)


@register("object_generator", "bottle")
class Bottle:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.03, 0.04], above=0)
        height: list[float] = ranged([0.18, 0.25], above=0)
        neck_radius: list[float] = ranged([0.011, 0.015], above=0)
        shoulder: list[float] = ranged([0.25, 0.4], above=0, below=1)
        voxel: float = ranged(0.002, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r, h, rn, sh = (
            d("radius", c.radius),
            d("height", c.height),
            d("neck_radius", c.neck_radius),
            d("shoulder", c.shoulder),
        )
        return _make("bottle", _bottle_sdf(r, h, rn, sh), np.array([r, r, h / 2]) + 0.003, c.voxel, d.params)


def _bottle_sdf(r: float, h: float, rn: float, shoulder: float) -> SDF:
    z0, z1 = -h / 2, h / 2
    body_top = z1 - shoulder * h
    neck_base = z1 - 0.12 * h
    profile = [
        (0.0, z0),
        (r * 0.95, z0),
        (r, z0 + 0.01),
        (r, body_top),
        (r * 0.75, body_top + 0.35 * (neck_base - body_top)),
        (rn, neck_base),
        (rn, z1 - 0.03),
        (rn * 1.15, z1 - 0.03),  # cap
        (rn * 1.15, z1),
        (0.0, z1),
    ]
    return lambda p: S.revolve_z(p, profile) - 0.001


@register("object_generator", "spraybottle")
class SprayBottle:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.03, 0.04], above=0)
        height: list[float] = ranged([0.17, 0.21], above=0)
        head: list[float] = ranged([0.05, 0.065], above=0)
        voxel: float = ranged(0.002, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r, h, head = d("radius", c.radius), d("height", c.height), d("head", c.head)
        bottle = _bottle_sdf(r, h, 0.014, 0.2)
        top = h / 2

        def sdf(p: torch.Tensor) -> torch.Tensor:
            body = bottle(p)
            cap = S.rounded_box(
                p - torch.tensor([0.01, 0.0, top + 0.022], dtype=p.dtype), (head / 2, 0.016, 0.022), 0.006
            )
            trigger = S.rounded_box(
                p - torch.tensor([0.035, 0.0, top - 0.005], dtype=p.dtype), (0.006, 0.008, 0.02), 0.003
            )
            return S.union(S.smooth_union(body, cap, 0.004), trigger)

        half = np.array([max(r, 0.01 + head / 2, 0.045), r, h / 2 + 0.05]) + 0.003
        return _make("spraybottle", sdf, half, c.voxel, d.params)


@register("object_generator", "kettle")
class Kettle:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.07, 0.09], above=0)
        height: list[float] = ranged([0.12, 0.17], above=0)
        voxel: float = ranged(0.0025, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r, h = d("radius", c.radius), d("height", c.height)
        z0, z1 = -h / 2, h / 2
        profile = [
            (0.0, z0),
            (r * 0.9, z0),
            (r, z0 + 0.2 * h),
            (r * 0.95, z0 + 0.65 * h),
            (r * 0.55, z1 - 0.01),
            (0.0, z1 - 0.01),
        ]
        spout_a, spout_b = (r * 0.8, 0.0, z0 + 0.3 * h), (r + 0.05, 0.0, z0 + 0.85 * h)
        handle_r = 0.55 * h / 2

        def sdf(p: torch.Tensor) -> torch.Tensor:
            body = S.revolve_z(p, profile) - 0.002
            spout = S.capsule(p, spout_a, spout_b, 0.011)
            knob = S.sphere(p - torch.tensor([0.0, 0.0, z1 - 0.005], dtype=p.dtype), 0.012)
            ring = S.torus_xz(p - torch.tensor([-r * 0.85, 0.0, 0.05 * h], dtype=p.dtype), handle_r, 0.008)
            ring = S.intersect(ring, -r * 0.85 - p[..., 0])  # the outer half of the ring only
            return S.union(
                S.smooth_union(S.smooth_union(body, spout, 0.008), knob, 0.004), S.smooth_union(body, ring, 0.006)
            )

        half = np.array([max(r + 0.065, r * 0.85 + handle_r + 0.01), r, h / 2 + 0.01]) + 0.003
        return _make("kettle", sdf, half, c.voxel, d.params)


@register("object_generator", "knife")
class Knife:
    @dataclass
    class Config:
        blade_length: list[float] = ranged([0.11, 0.17], above=0)
        blade_width: list[float] = ranged([0.018, 0.03], above=0)
        handle_length: list[float] = ranged([0.09, 0.12], above=0)
        voxel: float = ranged(0.0012, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        bl, bw, hl = (
            d("blade_length", c.blade_length),
            d("blade_width", c.blade_width),
            d("handle_length", c.handle_length),
        )
        total = bl + hl
        x0 = -total / 2
        blade = [(x0 + hl, -bw / 2), (x0 + total - 0.01, -bw / 2), (x0 + total, bw * 0.2), (x0 + hl, bw / 2)]
        thickness = 0.0025

        def sdf(p: torch.Tensor) -> torch.Tensor:
            flat = S.polygon_2d(p[..., [0, 2]], blade)  # blade outline in x-z, thin along y
            blade_sdf = torch.maximum(flat, p[..., 1].abs() - thickness / 2) - 0.0004
            handle = S.rounded_box(
                p - torch.tensor([x0 + hl / 2, 0.0, 0.0], dtype=p.dtype), (hl / 2, 0.009, 0.012), 0.006
            )
            return S.smooth_union(blade_sdf, handle, 0.003)

        half = np.array([total / 2, 0.01, max(bw / 2, 0.012)]) + 0.003
        return _make("knife", sdf, half, c.voxel, d.params)


@register("object_generator", "toycar")
class ToyCar:
    @dataclass
    class Config:
        length: list[float] = ranged([0.09, 0.14], above=0)
        width_ratio: list[float] = ranged([0.45, 0.55], above=0)
        voxel: float = ranged(0.0018, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        length = d("length", c.length)
        width = length * d("width_ratio", c.width_ratio)
        wheel_r = 0.16 * length
        body_h, cabin_h = 0.22 * length, 0.18 * length

        def sdf(p: torch.Tensor) -> torch.Tensor:
            body = S.rounded_box(
                p - torch.tensor([0.0, 0.0, 0.0], dtype=p.dtype), (length / 2, width / 2, body_h / 2), 0.008
            )
            cabin_at = torch.tensor([-0.05 * length, 0.0, body_h / 2 + cabin_h / 2 - 0.004], dtype=p.dtype)
            cabin = S.rounded_box(p - cabin_at, (0.28 * length, width / 2 - 0.005, cabin_h / 2), 0.01)
            shape = S.smooth_union(body, cabin, 0.006)
            for sx in (-0.32, 0.32):
                for sy in (-1, 1):
                    at = (sx * length, sy * (width / 2 - 0.004), -body_h / 2)
                    wheel = S.rotate_into(p, _rot_x(math.pi / 2), at)
                    q = torch.stack(
                        [torch.hypot(wheel[..., 0], wheel[..., 1]) - wheel_r, wheel[..., 2].abs() - 0.008], -1
                    )
                    cyl = q.max(-1).values.clamp(max=0) + q.clamp(min=0).norm(dim=-1)
                    shape = S.union(shape, cyl - 0.001)
            return shape

        half = np.array([length / 2, width / 2 + 0.006, body_h / 2 + cabin_h + wheel_r]) + 0.003
        return _make("toycar", sdf, half, c.voxel, d.params)


@register("object_generator", "can")
class Can:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.03, 0.034], above=0)
        height: list[float] = ranged([0.1, 0.125], above=0)
        voxel: float = ranged(0.0018, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r, h = d("radius", c.radius), d("height", c.height)
        profile = [
            (0.0, -h / 2),
            (r * 0.85, -h / 2),
            (r, -h / 2 + 0.008),
            (r, h / 2 - 0.008),
            (r * 0.85, h / 2),
            (0.0, h / 2),
        ]
        return _make(
            "can", lambda p: S.revolve_z(p, profile) - 0.0008, np.array([r, r, h / 2]) + 0.003, c.voxel, d.params
        )


@register("object_generator", "box")
class Box:
    @dataclass
    class Config:
        size_x: list[float] = ranged([0.05, 0.12], above=0)
        size_y: list[float] = ranged([0.04, 0.08], above=0)
        size_z: list[float] = ranged([0.03, 0.15], above=0)
        voxel: float = ranged(0.002, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        half = (d("size_x", c.size_x) / 2, d("size_y", c.size_y) / 2, d("size_z", c.size_z) / 2)
        return _make("box", lambda p: S.rounded_box(p, half, 0.003), np.array(half) + 0.003, c.voxel, d.params)


@register("object_generator", "ball")
class Ball:
    @dataclass
    class Config:
        radius: list[float] = ranged([0.03, 0.05], above=0)
        voxel: float = ranged(0.0018, above=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        c, d = self.cfg, _Draw(seed)
        r = d("radius", c.radius)
        return _make("ball", lambda p: S.sphere(p, r), np.array([r, r, r]) + 0.003, c.voxel, d.params)
