"""``mlp``: positional encoding + softplus MLP, starting as the SDF of a sphere.

sdf(x) = |x - c| - r + MLP(encode(x)) / units_per_metre, with the MLP's sdf output initialised to
zero: exactly the sphere at step 0, eikonal-consistent, and free to become any shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hoirecon.dataclass_config import ranged
from hoirecon.errors import ConfigError
from hoirecon.registry import register
from hoirecon.sdf.mlp_kernel import Layer, SDFWithGradient, mlp_forward, positional_encoding


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
        hidden: int = ranged(64, at_least=1)
        #: Hidden layers; 0 is refused by ``__init__`` (with sdf.hidden, in one message).
        layers: int = ranged(4, at_least=1)
        #: Positional-encoding frequencies (2^0 .. 2^(n-1)); 0 = raw coordinates only.
        n_freqs: int = ranged(6, at_least=0)
        feature_dim: int = ranged(16, at_least=0)
        softplus_beta: float = ranged(100.0, above=0)
        weight_norm: bool = True
        #: Feed the input encoding again into this hidden layer (-1 = no skip; at most ``layers``).
        skip_layer: int = ranged(-1, at_least=-1)
        #: Initial sphere, metres (DiffHOI: 10 cm at the hand origin).
        init_radius: float = ranged(0.1, above=0)
        init_centre: list[float] = ranged([0.0, 0.0, 0.0])
        units_per_metre: float = ranged(10.0, above=0)
        bound: float = ranged(0.2, above=0)

    def __init__(self, cfg: Config):
        super().__init__()
        if not -1 <= cfg.skip_layer <= cfg.layers:
            raise ConfigError(f"sdf.skip_layer must be -1 (none) or a layer 0..{cfg.layers}, got {cfg.skip_layer}")
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
        return positional_encoding((x - self.centre) * self.cfg.units_per_metre, self.freqs)

    def effective_layers(self) -> list[Layer]:
        """(weight, enc_weight, bias) per layer (see ``mlp_kernel``) with the softplus sharpness and the
        skip layer's 1/sqrt(2) folded in.

        softplus(z, beta) = softplus(beta z) / beta. Hidden layers here output u = beta z (so the
        activation is a plain softplus(u) and its slope a plain sigmoid(u)), and each layer's columns
        fed by activations are divided by beta: the same function with two fewer elementwise passes
        over every hidden activation (the beta * z products and their gradients) per layer. The skip
        layer reads cat([h, enc]) / sqrt(2): its weight is split into the two column blocks instead.
        """
        beta, last, skip = self.cfg.softplus_beta, len(self.linears) - 1, self.cfg.skip_layer
        n_enc = 3 + 6 * self.cfg.n_freqs
        layers: list[Layer] = []
        for i, layer in enumerate(self.linears):
            weight = layer.weight() if isinstance(layer, WeightNormLinear) else layer.weight
            row = beta if i < last else 1.0  # this layer outputs beta z
            col = 1.0 if i == 0 else 1.0 / beta  # its input (after layer 0) is beta softplus(z, beta)
            if i == skip:
                hidden_part, enc_part = weight[:, :-n_enc], weight[:, -n_enc:]
                r2 = math.sqrt(2)
                layers.append((hidden_part * (row * col / r2), enc_part * (row / r2), layer.bias * row))
            else:
                layers.append((weight * (row * col), None, layer.bias * row))
        return layers

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = mlp_forward(self.encode(x), self.effective_layers())
        sphere = ((x - self.centre).pow(2).sum(-1) + 1e-12).sqrt() - self.cfg.init_radius
        return sphere + out[:, 0] / self.cfg.units_per_metre, out[:, 1:]

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """sdf (N,) and its gradient (N, 3), the gradient by an explicit pass through the layers.

        Written out rather than asked of autograd (``torch.autograd.grad(..., create_graph=True)``):
        the eikonal loss then needs a single backward instead of a double one, and that backward is
        written out too (``mlp_kernel.SDFWithGradient``). ``hoirecon.sdf.common.sdf_and_gradient``
        gives the same numbers and parameter gradients (tested).
        """
        if not create_graph:
            with torch.no_grad():
                return self.sdf_and_gradient(x)
        d = x - self.centre
        layers = self.effective_layers()
        weight, enc_weight, bias = layers[-1]  # the sdf row only: features need no gradient
        layers[-1] = (weight[:1], None if enc_weight is None else enc_weight[:1], bias[:1])
        out, grad_u = SDFWithGradient.apply(d * self.cfg.units_per_metre, self.freqs, *[t for la in layers for t in la])
        r = (d.pow(2).sum(-1) + 1e-12).sqrt()
        # d/dx of (network / units) = d/du of network
        return r - self.cfg.init_radius + out / self.cfg.units_per_metre, d / r[:, None] + grad_u
