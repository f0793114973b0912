"""``mlp``: positional encoding + softplus MLP, starting as the SDF of a sphere.

sdf(x) = |x - c| - r + MLP(encode(x)) / units_per_metre, with the MLP's sdf output initialised to
zero: exactly the sphere at step 0, eikonal-consistent, and free to become any shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hoirecon.registry import register
from hoirecon.sdf.common import laplace_density


class WeightNormLinear(nn.Module):
    """Linear layer with W = g * V / |V| (per output row), computed in one cheap step per call."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.v = nn.Parameter(torch.empty(out_features, in_features))
        self.g = nn.Parameter(torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def init_from(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        with torch.no_grad():
            self.v.copy_(weight)
            self.g.copy_(weight.norm(dim=1).clamp(min=1e-12))
            self.bias.copy_(bias)

    def weight(self) -> torch.Tensor:
        return self.v * (self.g / self.v.norm(dim=1).clamp(min=1e-12))[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight().t())


class PlainLinear(nn.Linear):
    def init_from(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias)


@register("sdf", "mlp")
class MLPSDF(nn.Module):
    """sdf(x) and a feature vector from an MLP over a positional encoding of x (metres in, metres out)."""

    @dataclass
    class Config:
        hidden: int = 64
        layers: int = 4
        #: Positional-encoding frequencies (2^0 .. 2^(n-1)); 0 = raw coordinates only.
        n_freqs: int = 6
        feature_dim: int = 16
        softplus_beta: float = 100.0
        weight_norm: bool = True
        #: Feed the input encoding again into this hidden layer (-1 = no skip).
        skip_layer: int = -1
        #: Initial sphere, metres (DiffHOI: 10 cm at the hand origin).
        init_radius: float = 0.1
        init_centre: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
        units_per_metre: float = 10.0
        bound: float = 0.2

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.bound = cfg.bound
        self.feature_dim = cfg.feature_dim
        self.register_buffer("centre", torch.tensor(cfg.init_centre, dtype=torch.float32), persistent=False)
        self.register_buffer("freqs", 2.0 ** torch.arange(cfg.n_freqs, dtype=torch.float32), persistent=False)
        enc_dim = 3 + 6 * cfg.n_freqs
        dims = [enc_dim] + [cfg.hidden] * cfg.layers + [1 + cfg.feature_dim]
        linear = WeightNormLinear if cfg.weight_norm else PlainLinear
        self.linears = nn.ModuleList()
        for i in range(len(dims) - 1):
            in_dim = dims[i] + (enc_dim if i == cfg.skip_layer else 0)
            self.linears.append(linear(in_dim, dims[i + 1]))
        self._geometric_init(dims, enc_dim)

    def _geometric_init(self, dims: list[int], enc_dim: int) -> None:
        """He-initialised hidden layers; the output's sdf row starts at zero, so with the sphere term
        of ``forward`` the network is exactly the sphere's SDF at step 0 (the usual geometric init of
        IGR / SAL only approximates it, poorly for a network as narrow as ours)."""
        for i, layer in enumerate(self.linears):
            in_dim = layer.v.shape[1] if isinstance(layer, WeightNormLinear) else layer.in_features
            out_dim = dims[i + 1]
            w = torch.randn(out_dim, in_dim) * math.sqrt(2) / math.sqrt(out_dim)
            b = torch.zeros(out_dim)
            if i == len(self.linears) - 1:
                w = torch.randn(out_dim, in_dim) * 1e-3
                w[0] = 0.0
            elif i == 0 and self.cfg.n_freqs > 0:
                w[:, 3:] *= 0.1  # high frequencies start quiet
            layer.init_from(w, b)
            if isinstance(layer, WeightNormLinear) and i == len(self.linears) - 1:
                with torch.no_grad():
                    layer.v[0] = torch.randn(in_dim) * 1e-3  # a direction for the zero row to grow along
                    layer.g[0] = 0.0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - self.centre) * self.cfg.units_per_metre
        if self.cfg.n_freqs == 0:
            return u
        scaled = (u[:, None, :] * self.freqs[:, None]).reshape(len(u), 3 * self.cfg.n_freqs)
        return torch.cat([u, torch.sin(scaled), torch.cos(scaled)], dim=-1)

    def effective_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) per layer with the softplus sharpness folded in.

        softplus(z, beta) = softplus(beta z) / beta. Hidden layers here output u = beta z (so the
        activation is a plain softplus(u) and its slope a plain sigmoid(u)), and each layer's columns
        fed by activations are divided by beta: the same function with two fewer elementwise passes
        over every hidden activation (the beta * z products and their gradients) per layer.
        """
        beta, last, skip = self.cfg.softplus_beta, len(self.linears) - 1, self.cfg.skip_layer
        layers = []
        for i, layer in enumerate(self.linears):
            weight = layer.weight() if isinstance(layer, WeightNormLinear) else layer.weight
            row = beta if i < last else 1.0
            fed_by_hidden = 1.0 if i == 0 else 1.0 / beta
            if i == skip:
                n_enc = 3 + 6 * self.cfg.n_freqs
                col = torch.cat([torch.full((weight.shape[1] - n_enc,), fed_by_hidden), torch.ones(n_enc)])
                weight = weight * (row * col.to(weight))[None]
            else:
                weight = weight * (row * fed_by_hidden)
            layers.append((weight, layer.bias * row))
        return layers

    def _hidden(self, enc: torch.Tensor, layers: list) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The network's last pre-activation (N, 1 + F) and every hidden pre-activation u."""
        h, pre = enc, []
        last = len(layers) - 1
        for i, (weight, bias) in enumerate(layers):
            if i == self.cfg.skip_layer:
                h = torch.cat([h, enc], dim=-1) / math.sqrt(2)
            z = torch.addmm(bias, h, weight.t())
            if i < last:
                pre.append(z)
                h = F.softplus(z)
        return z, pre

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self._hidden(self.encode(x), self.effective_layers())
        sphere = ((x - self.centre).pow(2).sum(-1) + 1e-12).sqrt() - self.cfg.init_radius
        return sphere + out[:, 0] / self.cfg.units_per_metre, out[:, 1:]

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """sdf (N,) and its gradient (N, 3), the gradient by an explicit backward pass through the layers.

        Written out rather than asked of autograd (``torch.autograd.grad(..., create_graph=True)``):
        the eikonal loss then needs a single backward instead of a double one, about twice as fast on
        a CPU. ``hoirecon.sdf.common.sdf_and_gradient`` gives the same numbers (tested).
        """
        cfg = self.cfg
        d = x - self.centre
        u = d * cfg.units_per_metre
        enc = self.encode(x)
        layers = self.effective_layers()
        out, pre = self._hidden(enc, layers)
        last = len(layers) - 1
        r = (d.pow(2).sum(-1) + 1e-12).sqrt()
        sdf = r - cfg.init_radius + out[:, 0] / cfg.units_per_metre
        # backward pass for d(network sdf, in units)/d(enc): g has shape (N, width of layer input)
        g = layers[last][0][0].expand(len(x), -1)
        g_skip = None
        if last == cfg.skip_layer:
            g, g_skip = g[:, : -enc.shape[1]] / math.sqrt(2), g[:, -enc.shape[1] :] / math.sqrt(2)
        for i in range(last - 1, -1, -1):
            g = (g * torch.sigmoid(pre[i])) @ layers[i][0]
            if i == cfg.skip_layer:  # this layer's input was cat([h, enc]) / sqrt(2)
                g, g_skip = g[:, : -enc.shape[1]] / math.sqrt(2), g[:, -enc.shape[1] :] / math.sqrt(2)
        if g_skip is not None:
            g = g + g_skip
        g_u = g[:, :3]
        if cfg.n_freqs > 0:
            scaled = u[:, None, :] * self.freqs[:, None]  # (N, F, 3)
            k = cfg.n_freqs * 3
            g_sin = g[:, 3 : 3 + k].reshape(-1, cfg.n_freqs, 3)
            g_cos = g[:, 3 + k :].reshape(-1, cfg.n_freqs, 3)
            g_u = g_u + (self.freqs[:, None] * (g_sin * torch.cos(scaled) - g_cos * torch.sin(scaled))).sum(1)
        grad = d / r[:, None] + g_u  # d/dx of (network / units) = d/du of network
        if not create_graph:
            sdf, grad = sdf.detach(), grad.detach()
        return sdf, grad

    def query_density(self, x: torch.Tensor, beta: float = 0.01) -> torch.Tensor:
        return laplace_density(self.sdf(x), beta)

    def set_step(self, step: int) -> None:
        pass
