"""Where along each ray the object SDF is evaluated (role ``estimator``).

Every estimator returns fixed-size (R, S) sample intervals, so nerfacc's batched (pure PyTorch)
rendering functions apply on a CPU, plus a mask of the rays worth rendering at all:

- ``uniform``: stratified samples between near and far.
- ``importance``: NeuS-style hierarchical sampling: a coarse uniform pass without gradients, then
  samples drawn where a proxy VolSDF density (beta: the larger of a floor and the renderer's) puts the weight.
- ``occgrid``: an occupancy grid over the object's cube, refreshed from the SDF every few steps: cells
  inside or near the surface (a few cells plus the rendered density's tail) are occupied. Each ray is
  clipped to the cube, marched coarsely through the grid (no network), and its samples are spent only
  on the span of occupied cells it meets: gradient-free probes over the span weigh it with a proxy
  density (never sharper than the renderer's), and the samples with gradients are drawn where that
  weight is, the span's ends kept as edges. Rays that meet no occupied cell are skipped. Built on
  nerfacc's pure-torch helpers (``nerfacc.grid._ray_aabb_intersect``, ``nerfacc.grid._query``).
  nerfacc's ``OccGridEstimator`` needs its CUDA extension for sampling; this path runs on any device,
  and on a CPU nothing here may trigger nerfacc's CUDA build.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfacc import render_weight_from_density
from nerfacc.grid import _query, _ray_aabb_intersect
from torch import nn

from hoirecon.dataclass_config import ranged
from hoirecon.registry import register
from hoirecon.sdf.common import laplace_density


@dataclass
class RaySamples:
    """t_starts, t_ends (R, S) distances along unit directions; hit (R,) rays with samples that matter."""

    t_starts: torch.Tensor
    t_ends: torch.Tensor
    hit: torch.Tensor


def stratified(near: torch.Tensor, far: torch.Tensor, n: int, randomize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """n intervals per ray tiling [near, far] (R,): (R, n) starts and ends, jittered when ``randomize``."""
    u = torch.linspace(0, 1, n + 1, device=near.device, dtype=near.dtype)
    edges = near[:, None] + (far - near)[:, None] * u
    if randomize and n > 1:
        # move each inner edge by up to half a bin: the order is kept, every stretch gets sampled
        width = ((far - near) / n)[:, None]
        edges[:, 1:-1] += (torch.rand_like(edges[:, 1:-1]) - 0.5) * width
    return edges[:, :-1], edges[:, 1:]


@register("estimator", "uniform")
class UniformSampler(nn.Module):
    @dataclass
    class Config:
        n_samples: int = ranged(64, at_least=1)
        randomize: bool = True

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg

    def sample(
        self, sdf_net, origins, directions, near, far, training: bool = True, density_scale: float = 0.0
    ) -> RaySamples:
        starts, ends = stratified(near, far, self.cfg.n_samples, self.cfg.randomize and training)
        return RaySamples(starts, ends, torch.ones(len(origins), dtype=torch.bool, device=origins.device))


def sample_pdf(edges: torch.Tensor, weights: torch.Tensor, n: int, randomize: bool) -> torch.Tensor:
    """Inverse-CDF samples (R, n) from piecewise-constant weights (R, S) over intervals ``edges`` (R, S+1)."""
    pdf = (weights + 1e-5) / (weights + 1e-5).sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), pdf.cumsum(-1)], -1).clamp(max=1.0)
    if randomize:
        u = (
            torch.arange(n, device=edges.device, dtype=edges.dtype)
            + torch.rand(len(edges), n, device=edges.device, dtype=edges.dtype)
        ) / n
    else:
        u = ((torch.arange(n, device=edges.device, dtype=edges.dtype) + 0.5) / n).expand(len(edges), n)
    idx = torch.searchsorted(cdf, u.contiguous(), right=True).clamp(1, cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    e0, e1 = edges.gather(1, idx - 1), edges.gather(1, idx)
    t = (u - c0) / (c1 - c0).clamp(min=1e-8)
    return e0 + t * (e1 - e0)


@register("estimator", "importance")
class ImportanceSampler(nn.Module):
    @dataclass
    class Config:
        n_coarse: int = ranged(32, at_least=1)
        n_fine: int = ranged(32, at_least=1)
        #: Beta (metres) of the proxy density that places the fine samples.
        proposal_beta: float = ranged(0.005, above=0)
        randomize: bool = True

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg

    def sample(
        self, sdf_net, origins, directions, near, far, training: bool = True, density_scale: float = 0.0
    ) -> RaySamples:
        """``density_scale``: the renderer's current width of the surface (metres, e.g. VolSDF's beta);
        the proxy density is never sharper than it, or the fine samples would miss part of the weight."""
        cfg = self.cfg
        randomize = cfg.randomize and training
        beta = max(cfg.proposal_beta, density_scale)
        starts, ends = stratified(near, far, cfg.n_coarse, randomize)
        with torch.no_grad():
            mids = (starts + ends) / 2
            points = origins[:, None] + directions[:, None] * mids[..., None]
            sigma = laplace_density(sdf_net.sdf(points.reshape(-1, 3)), beta).reshape(mids.shape)
            weights, _, _ = render_weight_from_density(starts, ends, sigma)
            edges = torch.cat([starts, ends[:, -1:]], dim=-1)
            fine = sample_pdf(edges, weights, cfg.n_fine, randomize)
            merged, _ = torch.sort(torch.cat([edges, fine], dim=-1), dim=-1)
        return RaySamples(
            merged[:, :-1], merged[:, 1:], torch.ones(len(origins), dtype=torch.bool, device=origins.device)
        )


@register("estimator", "occgrid")
class OccupancyGridSampler(nn.Module):
    @dataclass
    class Config:
        #: Cells per side of the grid over the SDF's cube [-bound, bound]^3.
        resolution: int = ranged(64, at_least=1)
        #: Samples per ray, with gradients, drawn where the probes put the weight.
        n_samples: int = ranged(16, at_least=1)
        #: Gradient-free network evaluations spread over each ray's occupied span.
        n_probe: int = ranged(12, at_least=1)
        #: Beta (metres) of the proxy density the probes are weighted with: at least this, and at least
        #: ``proposal_widen`` x the renderer's density width, so the samples also cover the weight's tails
        #: (measured on a sphere and a mug: 3 has the lowest opacity + distance error for beta 1-10 mm).
        proposal_beta: float = ranged(0.004, above=0)
        proposal_widen: float = ranged(3.0, at_least=0)
        #: Share of the samples placed by the probes' opacities alone (the rest by their weights).
        alpha_mix: float = ranged(0.3, at_least=0, at_most=1)
        #: Steps of the network-free march that finds that run.
        march_steps: int = ranged(192, at_least=1)
        #: A cell is occupied when its centre's sdf is below this many cell diagonals (inside counts) ...
        margin_cells: float = ranged(1.0, at_least=0)
        #: ... plus this many widths of the rendered density (VolSDF's beta), whose tail reaches that far.
        tail_widths: float = ranged(6.0, at_least=0)
        #: Refresh the grid from the SDF every this many steps (training).
        update_every: int = ranged(16, at_least=1)
        randomize: bool = True

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        # the grid's state lives in buffers (as in nerfacc's OccGridEstimator): checkpoints, resume and
        # .to(device) need nothing special; float64 scalars hold the density widths exactly
        res = cfg.resolution
        self.register_buffer("occupancy", torch.zeros(1, res, res, res))  # nerfacc's grid layout
        self.register_buffer("aabb", torch.zeros(6))
        self.register_buffer("last_update", torch.tensor(-1))  # step of the last refresh; -1: never built
        self.register_buffer("step", torch.tensor(0))  # the fit's current step (on_step)
        self.register_buffer("scale", torch.tensor(0.0, dtype=torch.float64))  # renderer's width seen last
        self.register_buffer("grid_scale", torch.tensor(0.0, dtype=torch.float64))  # the one the grid is for
        self.probes_per_ray = 0.0  # gradient-free evaluations per ray in the last call (a statistic)

    @property
    def built(self) -> bool:
        return int(self.last_update) >= 0

    def on_step(self, step: int, max_steps: int) -> None:
        """Follow the fit: the grid is refreshed at the first sampling of every ``update_every``-th step."""
        self.step.fill_(step)

    def update(self, sdf_net, step: int, force: bool = False) -> None:
        """Recompute occupancy from the SDF at cell centres (every ``update_every`` steps, or when forced)."""
        if not force and self.built and step - int(self.last_update) < self.cfg.update_every:
            return
        res, bound = self.cfg.resolution, float(sdf_net.bound)
        device, dtype = self.occupancy.device, self.occupancy.dtype
        cell = 2 * bound / res
        centres = (torch.arange(res, device=device, dtype=dtype) + 0.5) * cell - bound
        grid = torch.stack(torch.meshgrid(centres, centres, centres, indexing="ij"), dim=-1).reshape(-1, 3)
        with torch.no_grad():
            sdf = torch.cat([sdf_net.sdf(grid[i : i + 65536]) for i in range(0, len(grid), 65536)])
        # a cell matters wherever the rendered density is not negligible: near the surface and inside
        # (the renderer's width once seen; before that the proxy's)
        scale = float(self.scale) if float(self.scale) > 0 else self.cfg.proposal_beta
        threshold = self.cfg.margin_cells * cell * 3**0.5 + self.cfg.tail_widths * scale
        self.occupancy.copy_((sdf < threshold).reshape(1, res, res, res))
        self.grid_scale.fill_(scale)
        self.aabb.copy_(torch.tensor([-bound] * 3 + [bound] * 3, dtype=dtype, device=device))
        self.last_update.fill_(step)

    def occupied_fraction(self) -> float:
        return float(self.occupancy.mean()) if self.built else 1.0

    def sample(
        self, sdf_net, origins, directions, near, far, training: bool = True, density_scale: float = 0.0
    ) -> RaySamples:
        """(R, n_samples) intervals tiling each hit ray's occupied span; ``density_scale`` as for
        ``importance`` (the proxy density is never sharper than the renderer's)."""
        cfg = self.cfg
        self.update(sdf_net, int(self.step))  # a no-op unless a refresh is due
        self.scale.fill_(density_scale)
        if density_scale > 0 and not 1 / 1.5 < density_scale / float(self.grid_scale) < 1.5:
            # the density's width moved away from the grid's: rebuild now (wider: rays through the
            # tail would be skipped; narrower: samples would be spread over empty space)
            self.update(sdf_net, int(self.last_update), force=True)
        r = len(origins)
        t_min, t_max, hits = _ray_aabb_intersect(origins, directions, self.aabb[None])
        hit = hits[:, 0]
        t_min = torch.where(hit, torch.maximum(t_min[:, 0], near), near)
        t_max = torch.where(hit, torch.minimum(t_max[:, 0], far), near)
        hit = hit & (t_max > t_min)
        # network-free march through the grid: where does each ray first meet occupied cells?
        k = cfg.march_steps
        span = (t_max - t_min).clamp(min=0)
        step = span / k
        t_march = t_min[:, None] + (torch.arange(k, device=origins.device, dtype=step.dtype) + 0.5) * step[:, None]
        points = origins[:, None] + directions[:, None] * t_march[..., None]
        points = torch.maximum(torch.minimum(points, self.aabb[3:]), self.aabb[:3])  # missed rays: stay indexable
        occ = _query(points.reshape(-1, 3), self.occupancy, self.aabb)[0].reshape(r, k) > 0.5
        occ &= hit[:, None]
        any_occ = occ.any(dim=1)
        hit = hit & any_occ
        # the occupied span of each ray: from its first to its last occupied march step
        index = torch.arange(k, device=origins.device)[None]
        first = torch.where(occ, index, k).amin(dim=1)
        last = torch.where(occ, index, -1).amax(dim=1)
        lo = t_min + (first.clamp(max=k - 1).to(step.dtype) - 0.5) * step
        hi = t_min + (last.clamp(min=0).to(step.dtype) + 1.5) * step
        starts, ends = stratified(lo, torch.maximum(hi, lo + 1e-6), cfg.n_samples, cfg.randomize and training)
        rows = torch.nonzero(hit).squeeze(1)
        if len(rows) and cfg.n_samples > 1:
            # gradient-free probes over the span, then samples where a proxy density puts the weight
            p_starts, p_ends = stratified(lo[rows], hi[rows], cfg.n_probe, False)
            mids = (p_starts + p_ends) / 2
            beta = max(cfg.proposal_beta, cfg.proposal_widen * density_scale)
            with torch.no_grad():
                pts = origins[rows, None] + directions[rows, None] * mids[..., None]
                sigma = laplace_density(sdf_net.sdf(pts.reshape(-1, 3)), beta).reshape(mids.shape)
                weights, _, alphas = render_weight_from_density(p_starts, p_ends, sigma)
                # part of the samples follow each probe's own opacity, not attenuated by what lies in front:
                # surfaces behind a semi-transparent crossing (a grazed rim, a thin wall) still get some
                mix = cfg.alpha_mix
                weights = (1 - mix) * weights + mix * alphas / alphas.sum(-1, keepdim=True).clamp(min=1e-6)
                edges = torch.cat([p_starts, p_ends[:, -1:]], dim=-1)
                inner = sample_pdf(edges, weights, cfg.n_samples - 1, cfg.randomize and training)
                # the span's ends stay edges: the intervals tile the whole span, so the weight beyond the
                # densest samples (a wider true density, a far wall) is still counted, coarsely
                fine, _ = torch.sort(torch.cat([edges[:, :1], inner, edges[:, -1:]], dim=-1), dim=-1)
            starts = starts.index_put((rows,), fine[:, :-1])
            ends = ends.index_put((rows,), fine[:, 1:])
        self.probes_per_ray = cfg.n_probe * float(hit.float().mean())
        return RaySamples(starts, ends, hit)
