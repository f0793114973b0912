"""``hashgrid``: a multi-resolution hash encoding (Instant-NGP) in PyTorch with a small MLP head.

sdf(x) = |x - c| - r + head(encoding(x)) / units_per_metre, with the head's sdf output starting at
zero: exactly the initial sphere at step 0. Levels whose grid fits the table are indexed densely,
finer ones through the spatial hash of Instant-NGP; all levels and corners are gathered at once.
tinycudann's fused encoding is used instead when installed, on CUDA (``implementation: auto``); on a
CPU tinycudann is never imported.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hoirecon.dataclass_config import ranged
from hoirecon.errors import ConfigError
from hoirecon.registry import register
from hoirecon.sdf.common import sdf_and_gradient

PRIMES = (1, 2654435761, 805459861)
CORNERS = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])  # (8, 3) as z, y, x bits


class HashEncoding(nn.Module):
    """x in [0, 1]^3 (N, 3) -> features (N, n_levels * features_per_level), trilinear per level."""

    def __init__(self, n_levels: int, features: int, log2_size: int, base: int, finest: int):
        super().__init__()
        self.n_levels, self.features, self.size = n_levels, features, 2**log2_size
        scale = math.exp((math.log(finest) - math.log(base)) / max(n_levels - 1, 1))
        res = [int(math.floor(base * scale**level)) for level in range(n_levels)]
        self.register_buffer("resolution", torch.tensor(res, dtype=torch.long), persistent=False)
        self.register_buffer("dense", torch.tensor([(r + 1) ** 3 <= self.size for r in res]), persistent=False)
        self.table = nn.Parameter(torch.empty(n_levels * self.size, features).uniform_(-1e-4, 1e-4))
        self.register_buffer("level_mask", torch.ones(n_levels), persistent=False)

    def lookup(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows (N, L, 8) of the 8 corners around x at every level, and trilinear weights (N, L, 8)."""
        res = self.resolution.to(x.dtype)
        pos = x[:, None, :] * res[None, :, None]  # (N, L, 3)
        cell = pos.floor()
        frac = pos - cell
        corner = cell.long()[:, :, None, :] + CORNERS.to(x.device)  # (N, L, 8, 3)
        stride = self.resolution + 1
        dense_index = corner[..., 0] + corner[..., 1] * stride[:, None] + corner[..., 2] * (stride**2)[:, None]
        hashed = (corner[..., 0] * PRIMES[0]) ^ (corner[..., 1] * PRIMES[1]) ^ (corner[..., 2] * PRIMES[2])
        index = torch.where(self.dense[:, None], dense_index, hashed) % self.size
        index = index + (torch.arange(self.n_levels, device=x.device) * self.size)[:, None]
        # trilinear weights as an outer product over the axes (corner i has x, y, z bits i>>2, i>>1, i)
        wx, wy, wz = (torch.stack([1 - frac[..., k], frac[..., k]], dim=-1) for k in range(3))
        w = (wx[..., :, None, None] * wy[..., None, :, None] * wz[..., None, None, :]).reshape(*frac.shape[:2], 8)
        return index, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index, w = self.lookup(x)
        # index_select, not table[index]: the latter's backward accumulates with parallel atomic adds
        # on a CPU (a different sum order, so different bits, each run) and was 2.6x slower here
        values = self.table.index_select(0, index.reshape(-1)).reshape(*index.shape, self.features)  # (N, L, 8, F)
        out = (values * w[..., None]).sum(2) * self.level_mask[:, None]  # (N, L, F)
        return out.reshape(len(x), out.shape[1] * out.shape[2])


@register("sdf", "hashgrid")
class HashGridSDF(nn.Module):
    @dataclass
    class Config:
        # CPU-sized defaults (Instant-NGP uses 16 levels, 2^19 entries, up to 2048)
        n_levels: int = ranged(8, at_least=1)
        features_per_level: int = ranged(2, at_least=1)
        #: Table entries per level, log2 (Instant-NGP: 14 to 24).
        log2_hashmap_size: int = ranged(15, at_least=1, at_most=24)
        base_resolution: int = ranged(8, at_least=1)
        #: Finest grid over the shape's cube (0.4 m by default): 128 is about 3 mm cells.
        finest_resolution: int = ranged(128, at_least=1)
        hidden: int = ranged(64, at_least=1)
        #: Hidden layers of the head; 0 = a linear head.
        hidden_layers: int = ranged(1, at_least=0)
        feature_dim: int = ranged(16, at_least=0)
        softplus_beta: float = ranged(100.0, above=0)
        #: Grow the active levels from `anneal_start_levels` to all over this many steps (0 = off).
        anneal_steps: int = ranged(0, at_least=0)
        anneal_start_levels: int = ranged(4, at_least=0)
        #: "auto": tinycudann on CUDA when installed, else torch; "torch" or "tcnn" to force.
        implementation: str = ranged("auto", choices=("auto", "torch", "tcnn"))
        init_radius: float = ranged(0.1, above=0)
        init_centre: list[float] = ranged([0.0, 0.0, 0.0])
        units_per_metre: float = ranged(10.0, above=0)
        bound: float = ranged(0.2, above=0)

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.implementation not in ("auto", "torch", "tcnn"):
            raise ConfigError(f"sdf.implementation must be auto, torch or tcnn, got '{cfg.implementation}'")
        self.cfg = cfg
        self.bound = cfg.bound
        self.feature_dim = cfg.feature_dim
        self.register_buffer("centre", torch.tensor(cfg.init_centre, dtype=torch.float32), persistent=False)
        self.encoding = HashEncoding(
            cfg.n_levels, cfg.features_per_level, cfg.log2_hashmap_size, cfg.base_resolution, cfg.finest_resolution
        )
        self._tcnn = None
        dims = [cfg.n_levels * cfg.features_per_level + 3] + [cfg.hidden] * cfg.hidden_layers + [1 + cfg.feature_dim]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():
            self.head[-1].weight.mul_(1e-3)
            self.head[-1].weight[0] = 0.0
            self.head[-1].bias.zero_()
        self.on_step(0, 1)

    def _use_tcnn(self, x: torch.Tensor) -> bool:
        want = self.cfg.implementation
        if want == "torch" or not x.is_cuda:
            if want == "tcnn" and not x.is_cuda:
                raise ConfigError("sdf.implementation=tcnn needs CUDA tensors; use auto or torch on a CPU")
            return False
        if importlib.util.find_spec("tinycudann") is None:
            if want == "tcnn":
                raise ConfigError("sdf.implementation=tcnn but tinycudann is not installed")
            return False
        return True

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        unit = ((x - self.centre) / (2 * self.bound) + 0.5).clamp(0, 1)  # the shape's cube -> [0, 1]^3
        if self._use_tcnn(x):
            if self._tcnn is None:
                import tinycudann as tcnn  # only on CUDA

                cfg = self.cfg
                scale = math.exp((math.log(cfg.finest_resolution) - math.log(cfg.base_resolution)) / (cfg.n_levels - 1))
                self._tcnn = tcnn.Encoding(3, {
                    "otype": "HashGrid", "n_levels": cfg.n_levels, "n_features_per_level": cfg.features_per_level,
                    "log2_hashmap_size": cfg.log2_hashmap_size, "base_resolution": cfg.base_resolution,
                    "per_level_scale": scale,
                }).to(x.device)  # fmt: skip
            features = self._tcnn(unit).float()
            return features * self.encoding.level_mask.repeat_interleave(self.cfg.features_per_level)
        return self.encoding(unit)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self._encode(x), (x - self.centre) * self.cfg.units_per_metre], dim=-1)
        for i, layer in enumerate(self.head):
            h = layer(h)
            if i < len(self.head) - 1:
                h = F.softplus(h, beta=self.cfg.softplus_beta)
        sphere = ((x - self.centre).pow(2).sum(-1) + 1e-12).sqrt() - self.cfg.init_radius
        return sphere + h[:, 0] / self.cfg.units_per_metre, h[:, 1:]

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        return sdf_and_gradient(self.sdf, x, create_graph)

    def on_step(self, step: int, max_steps: int) -> None:
        """Coarse-to-fine: the number of active levels grows linearly over ``anneal_steps``."""
        cfg = self.cfg
        if cfg.anneal_steps <= 0:
            active = cfg.n_levels
        else:
            frac = min(step / cfg.anneal_steps, 1.0)
            active = cfg.anneal_start_levels + int(frac * (cfg.n_levels - cfg.anneal_start_levels))
        mask = (torch.arange(cfg.n_levels) < active).float()
        self.encoding.level_mask.copy_(mask)
