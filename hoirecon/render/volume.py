"""Volume rendering of an object SDF along rays (role ``renderer``): VolSDF and NeuS, through nerfacc.

Per ray: opacity (the object's soft mask), distance (weight-normalised Euclidean distance along the
unit ray, not camera z: ``camera_depth`` converts it), normal (weighted sum of unit SDF gradients, in
the SDF's frame; the caller rotates it into the camera) and the gradients of every sample for the
eikonal loss. Rays and results are in the object frame, in metres. Rays the estimator marks as
missing the object are not evaluated and come back with zero opacity, distance and normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from nerfacc import accumulate_along_rays, render_weight_from_alpha, render_weight_from_density
from torch import nn

from hoirecon.config import Schedule
from hoirecon.dataclass_config import ranged
from hoirecon.errors import ConfigError
from hoirecon.registry import register
from hoirecon.render.sampling import RaySamples
from hoirecon.sdf.common import laplace_density


@dataclass
class VolumeOutput:
    """opacity (R,), distance (R,), normal (R, 3); weights and t_mid (H, S) for the H hit rays;
    gradients (H*S, 3) for the eikonal loss; samples_per_ray: network evaluations per ray (mean over R)."""

    opacity: torch.Tensor
    distance: torch.Tensor
    normal: torch.Tensor
    weights: torch.Tensor
    t_mid: torch.Tensor
    gradients: torch.Tensor
    samples_per_ray: float


class _Renderer(nn.Module):
    """Shared flow: sample, evaluate the SDF with gradients, turn it into weights, accumulate."""

    def weights(
        self, sdf: torch.Tensor, grad: torch.Tensor, directions: torch.Tensor, samples: RaySamples
    ) -> torch.Tensor:
        """(H, S) weights from sdf (H, S), grad (H, S, 3), unit directions (H, 3)."""
        raise NotImplementedError

    def density_scale(self) -> float:
        """Current width of the rendered surface (metres), for the estimators' proxy densities."""
        raise NotImplementedError

    def forward(
        self,
        sdf_net,
        estimator,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor,
        far: torch.Tensor,
        training: bool = True,
    ) -> VolumeOutput:
        r = len(origins)
        samples = estimator.sample(sdf_net, origins, directions, near, far, training, self.density_scale())
        hit = torch.nonzero(samples.hit).squeeze(1)
        starts, ends = samples.t_starts[hit], samples.t_ends[hit]
        o, d = origins[hit], directions[hit]
        t_mid = (starts + ends) / 2
        s = t_mid.shape[1]
        points = (o[:, None] + d[:, None] * t_mid[..., None]).reshape(-1, 3)
        sdf, grad = sdf_net.sdf_and_gradient(points, create_graph=training)
        sub = RaySamples(starts, ends, samples.hit[hit])
        weights = self.weights(sdf.reshape(-1, s), grad.reshape(-1, s, 3), d, sub)
        opacity_h = weights.sum(-1)
        distance_h = accumulate_along_rays(weights, t_mid[..., None])[:, 0] / opacity_h.clamp(min=1e-6)
        normal_h = accumulate_along_rays(weights, F.normalize(grad, dim=-1).reshape(-1, s, 3))
        opacity = torch.zeros(r, dtype=origins.dtype, device=origins.device).index_put((hit,), opacity_h)
        distance = torch.zeros(r, dtype=origins.dtype, device=origins.device).index_put((hit,), distance_h)
        normal = torch.zeros(r, 3, dtype=origins.dtype, device=origins.device).index_put((hit,), normal_h)
        return VolumeOutput(opacity, distance, normal, weights, t_mid, grad, len(hit) * s / max(r, 1))


def camera_depth(distance: torch.Tensor, directions: torch.Tensor, T_cam_from_obj: torch.Tensor) -> torch.Tensor:
    """Camera z-depth (R,) of rendered ``distance`` (R,) along unit object-frame ``directions`` (R, 3).

    ``distance`` is measured along the ray from the camera centre, so z = distance * (d_cam . z);
    ``T_cam_from_obj`` is (4, 4) or (R, 4, 4). Rays with zero opacity keep depth 0.
    """
    return distance * (directions * T_cam_from_obj[..., 2, :3]).sum(-1)


@register("renderer", "volsdf")
class VolSDFRenderer(_Renderer):
    """Density alpha * Psi_beta(-sdf) with a learnable beta (metres; DiffHOI: 0.1 units = 1 cm).

    beta = exp(log_beta) + beta_min: the learned part on top of a floor, which may follow a schedule
    (e.g. [0, 0.005, 0.0001, 1000]: surfaces stay soft early, so the masks shape the object coarsely first).
    """

    @dataclass
    class Config:
        beta_init: float = ranged(0.01, above=0)
        #: Floor of beta (metres): a number or a [start_step, v0, v1, end_step] schedule.
        beta_min: Any = 1e-4
        learn_beta: bool = True

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.beta_min_schedule = Schedule.parse(cfg.beta_min, "object.renderer.beta_min")
        floor = self.beta_min_schedule(0)
        if not 0 <= floor < cfg.beta_init:
            raise ConfigError(f"object.renderer.beta_min must be in [0, beta_init) at step 0, got {floor}")
        self.log_beta = nn.Parameter(torch.tensor(math.log(cfg.beta_init - floor)), requires_grad=cfg.learn_beta)
        self.register_buffer("beta_min", torch.tensor(floor), persistent=False)

    def on_step(self, step: int, max_steps: int) -> None:
        self.beta_min.fill_(self.beta_min_schedule(step))

    @property
    def beta(self) -> torch.Tensor:
        return self.log_beta.exp() + self.beta_min

    def density_scale(self) -> float:
        return float(self.beta.detach())

    def weights(self, sdf, grad, directions, samples) -> torch.Tensor:
        sigma = laplace_density(sdf, self.beta)
        weights, _, _ = render_weight_from_density(samples.t_starts, samples.t_ends, sigma)
        return weights


@register("renderer", "neus")
class NeuSRenderer(_Renderer):
    """NeuS's unbiased opacity from a logistic CDF of the SDF with a learnable sharpness s (1/metres).

    Each interval's alpha is (Phi(sdf_prev) - Phi(sdf_next)) / Phi(sdf_prev) with the SDF carried to
    the interval ends along the ray by its directional derivative (NeuS's section estimate), cos
    clamped to negative so the opacity never decreases into the object.
    """

    @dataclass
    class Config:
        inv_s_init: float = ranged(200.0, above=0)
        learn_inv_s: bool = True

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.log_inv_s = nn.Parameter(torch.tensor(math.log(cfg.inv_s_init)), requires_grad=cfg.learn_inv_s)

    def density_scale(self) -> float:
        # the logistic density's scale 1/s spreads the weight about as much as a Laplace beta of 1/s
        return float(1.0 / self.log_inv_s.detach().exp())

    def weights(self, sdf, grad, directions, samples) -> torch.Tensor:
        inv_s = self.log_inv_s.exp()
        cos = -F.relu(-(grad * directions[:, None]).sum(-1))
        half = (samples.t_ends - samples.t_starts) / 2
        prev = torch.sigmoid((sdf - cos * half) * inv_s)
        nxt = torch.sigmoid((sdf + cos * half) * inv_s)
        alpha = ((prev - nxt + 1e-5) / (prev + 1e-5)).clamp(0, 1)
        weights, _ = render_weight_from_alpha(alpha)
        return weights
