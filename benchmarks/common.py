"""Helpers shared by the benchmark and figure scripts: timing, views, fitting an SDF to a known shape."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from hoirecon.geometry.camera import intrinsics_from_fov, look_at, pixel_grid, pixel_rays
from hoirecon.registry import build


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def view_rays(res: int, eye: list[float], fov: float = 40.0) -> dict[str, torch.Tensor]:
    """Rays of a camera at ``eye`` looking at the origin: origins, directions, near, far (0.1 m around it)."""
    K = intrinsics_from_fov(fov, res, res)[None]
    T = look_at(torch.tensor(eye, dtype=torch.float32), torch.zeros(3))[None]
    o, d = pixel_rays(K, T, pixel_grid(res, res)[None])
    dist = float(torch.tensor(eye).norm())
    n = res * res
    return {
        "o": o[0],
        "d": d[0],
        "near": torch.full((n,), dist - 0.15),
        "far": torch.full((n,), dist + 0.15),
        "K": K,
        "T": T,
    }


EYES = [[0.0, 0.0, -0.4], [0.4, 0.0, 0.0], [0.0, 0.4, 0.01], [-0.28, 0.15, 0.25], [0.2, -0.3, 0.2], [-0.3, -0.2, -0.2]]


def fit_sdf_to_shape(
    name: str, target_sdf: Callable[[torch.Tensor], torch.Tensor], steps: int, seed: int = 0, **cfg
) -> torch.nn.Module:
    """An SDF backbone regressed onto a known SDF (points near the surface and in the box)."""
    torch.manual_seed(seed)
    net = build("sdf", {"type": name, "init_radius": 0.06, **cfg})
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        x = (torch.rand(4096, 3) - 0.5) * 0.3
        with torch.no_grad():
            target = target_sdf(x.double()).float()
        loss = (net.sdf(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def fit_sdf_to_renders(
    name: str, views: list[dict], targets: list[tuple[torch.Tensor, torch.Tensor]], steps: int, rays_per_step: int = 512
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A backbone fitted to mask and distance renders of several views (VolSDF, occupancy grid)."""
    torch.manual_seed(0)
    o, d, near, far = (torch.cat([v[k] for v in views]) for k in ("o", "d", "near", "far"))
    mask, dist = (torch.cat(x) for x in zip(*targets))
    net = build("sdf", {"type": name, "init_radius": 0.06})
    renderer = build("renderer", {"type": "volsdf", "beta_init": 0.004})
    estimator = build("estimator", {"type": "occgrid", "n_samples": 24, "update_every": 10})
    opt = torch.optim.Adam(list(net.parameters()) + list(renderer.parameters()), lr=5e-3 if name == "mlp" else 1e-2)
    for step in range(steps):
        estimator.update(net, step)
        idx = torch.randint(len(o), (rays_per_step,))
        out = renderer(net, estimator, o[idx], d[idx], near[idx], far[idx])
        on = mask[idx] > 0.5
        loss = (out.opacity - mask[idx]).abs().mean() + (out.distance - dist[idx])[on].abs().mean() * 10
        loss = loss + 0.1 * (out.gradients.norm(dim=-1) - 1).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, renderer


class AnalyticSDF(torch.nn.Module):
    """A known SDF (e.g. a procedural object's) with the backbone interface, for ground-truth renders."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], bound: float = 0.2):
        super().__init__()
        self.fn, self.bound = fn, bound
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x.double()).float() + self.dummy

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        from hoirecon.sdf.common import sdf_and_gradient

        return sdf_and_gradient(self.sdf, x, create_graph)
