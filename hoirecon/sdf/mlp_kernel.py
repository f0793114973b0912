"""The softplus MLP's forward pass, and its sdf + input gradient with a hand-written backward.

A layer is ``(weight, enc_weight, bias)``: pre-activation ``u = h @ weight.T + bias`` plus
``enc @ enc_weight.T`` when the layer also reads the input encoding (a skip layer; else
``enc_weight`` is None). Hidden activations are ``softplus(u)`` (the sharpness is folded into the
weights by the caller), so their slopes are ``sigmoid(u)``.

Why a hand-written backward: the eikonal loss needs d sdf / d x *and* its derivative with respect to
every weight. Autograd over an explicit gradient pass gets there, but on a CPU the step is bound by
full passes over the (N, width) activations, and autograd adds its own (softplus_backward recomputing
the exponential, the product's two backward products, gradient accumulation, slicing the encoding's
gradient). ``SDFWithGradient`` keeps the matmuls and few, cheap elementwise passes (per hidden layer:
clamp, sigmoid, log, subtract and a product forward; two products, sigmoid_backward and an addcmul
backward, reusing buffers in place), computes the encoding and its Jacobian itself, and spreads the
weight gradients' long reductions over all threads (``transposed_matmul``). Measured on the project's
2-core machine, 65536 points: 170-180 ms -> about 150 ms per forward + backward (docs/benchmarks.md).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

Layer = tuple[torch.Tensor, "torch.Tensor | None", torch.Tensor]


def pre_activation(h: torch.Tensor, enc: torch.Tensor, layer: Layer) -> torch.Tensor:
    """u (N, out) of one layer given its input h (N, in) and the input encoding enc (N, E)."""
    weight, enc_weight, bias = layer
    u = torch.addmm(bias, h, weight.t())
    if enc_weight is not None:
        u = torch.addmm(u, enc, enc_weight.t())
    return u


def mlp_forward(enc: torch.Tensor, layers: list[Layer]) -> torch.Tensor:
    """The network's output (N, out of the last layer): softplus between layers, linear at the end."""
    h = enc
    for layer in layers[:-1]:
        h = softplus_and_slope(pre_activation(h, enc, layer))[0]
    return pre_activation(h, enc, layers[-1])


def softplus_and_slope(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softplus(u) and its slope sigmoid(u), (N, W) each, from one sigmoid: softplus(u) = u - log(sigmoid(u)).

    ``u`` is overwritten (clamped at -80, where softplus is 2e-35). Measured against float64 the
    error is at most 6e-7 absolute over [-120, 120], as torch's own softplus (5e-7), and the pair
    costs three cheap passes instead of softplus's exp + log1p pass (3-5 ms for (65536, 64) here)
    plus the sigmoid: 6% off the MLP's forward + backward (benchmarks/render.py).
    """
    u = u.clamp_(min=-80.0)
    slope = torch.sigmoid(u)
    h = torch.log(slope)
    if torch.is_grad_enabled() and u.requires_grad:
        return u - h, slope
    return torch.sub(u, h, out=h), slope  # in place, where no graph is recorded (out= has no gradient)


def transposed_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a.T @ b (A, B) for a (N, A), b (N, B): a weight gradient, a long reduction over N.

    MKL runs this shape on one thread (measured: 3.2 ms for N = 65536, B = 39, with 1 or 2 threads);
    as a batch of one slice of rows per thread it uses them all (1.6 ms on 2).
    """
    parts = torch.get_num_threads()
    n = len(a) // parts * parts
    if parts == 1 or n < 1024 * parts:
        return a.t() @ b
    out = torch.bmm(a[:n].reshape(parts, n // parts, -1).transpose(1, 2), b[:n].reshape(parts, n // parts, -1)).sum(0)
    return out if n == len(a) else out.addmm_(a[n:].t(), b[n:])


def positional_encoding(u: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """[u, sin(f u), cos(f u)] (N, 3 + 6 F) of u (N, 3), frequency-major within each block."""
    if len(freqs) == 0:
        return u
    scaled = (u[:, None, :] * freqs[:, None]).reshape(len(u), 3 * len(freqs))
    return torch.cat([u, torch.sin(scaled), torch.cos(scaled)], dim=-1)


def encoding_vjp(enc: torch.Tensor, freqs: torch.Tensor, d_enc: torch.Tensor) -> torch.Tensor:
    """d_enc (N, E) pulled back through the encoding to u: (N, 3). d sin(f u) = f cos(f u) du, etc."""
    k = 3 * len(freqs)
    if k == 0:
        return d_enc
    sin, cos = enc[:, 3 : 3 + k], enc[:, 3 + k :]
    per_freq = (d_enc[:, 3 : 3 + k] * cos - d_enc[:, 3 + k :] * sin).view(-1, len(freqs), 3)
    return d_enc[:, :3] + (per_freq * freqs[:, None]).sum(1)


def encoding_jvp(enc: torch.Tensor, freqs: torch.Tensor, d_u: torch.Tensor) -> torch.Tensor:
    """A change d_u (N, 3) of u carried to the encoding: (N, E); the transpose of ``encoding_vjp``."""
    if len(freqs) == 0:
        return d_u
    k = 3 * len(freqs)
    f_d_u = (d_u[:, None, :] * freqs[:, None]).reshape(len(d_u), k)
    return torch.cat([d_u, f_d_u * enc[:, 3 + k :], -f_d_u * enc[:, 3 : 3 + k]], dim=-1)


class SDFWithGradient(torch.autograd.Function):
    """(out (N,), d out / d u (N, 3)) of a one-output network over ``positional_encoding(u, freqs)``,
    differentiable once (not in ``freqs``).

    ``apply(u, freqs, *params)`` with params ``(weight, enc_weight, bias)`` per layer, flattened; the last
    layer has one output row (the sdf). The gradient pass runs top-down: g_k = d out / d h_k,
    a_k = g_k * s_k (s_k = sigmoid(u_k)), g_(k-1) = a_k @ W_k. The backward first reverses the
    gradient pass bottom-up (collecting each layer's d loss / d u through s_k), then the forward pass
    top-down, adding the d loss / d u that reaches u_k through h_k.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, freqs: torch.Tensor, *params: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        enc = positional_encoding(u, freqs)
        weights, enc_weights, biases = params[0::3], params[1::3], params[2::3]
        n_hidden = len(weights) - 1
        hs, slopes = [enc], []
        for k in range(n_hidden):
            u = pre_activation(hs[-1], enc, (weights[k], enc_weights[k], biases[k]))
            h, slope = softplus_and_slope(u)
            slopes.append(slope)
            hs.append(h)
        out = pre_activation(hs[-1], enc, (weights[-1], enc_weights[-1], biases[-1]))[:, 0]

        g = weights[-1][0]  # d out / d h of the last hidden layer, the same for every point
        skip_terms = [] if enc_weights[-1] is None else [enc_weights[-1][0]]
        gs, acts = [], []
        for k in range(n_hidden - 1, -1, -1):
            a = slopes[k] * g
            gs.append(g)
            acts.append(a)
            g = a @ weights[k]
            if enc_weights[k] is not None:
                skip_terms.append(a @ enc_weights[k])
        grad_enc = g + sum(skip_terms) if skip_terms else g
        gs.reverse()
        acts.reverse()
        ctx.n_hidden = n_hidden
        ctx.save_for_backward(freqs, grad_enc, enc, *params, *hs[1:], *slopes, *gs[:-1], *acts)
        return out, encoding_vjp(enc, freqs, grad_enc)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: torch.Tensor, d_grad_u: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n = ctx.n_hidden
        freqs, grad_enc, enc, *saved = ctx.saved_tensors
        d_grad_enc = encoding_jvp(enc, freqs, d_grad_u)
        params, saved = saved[: 3 * (n + 1)], saved[3 * (n + 1) :]
        weights, enc_weights = params[0::3], params[1::3]
        hs, slopes, gs, acts = (
            [enc, *saved[:n]],
            saved[n : 2 * n],
            [*saved[2 * n : 3 * n - 1], weights[-1][0]],
            saved[3 * n - 1 :],
        )
        need_enc = ctx.needs_input_grad[0]
        d_weights: list = [None] * (n + 1)
        d_enc_weights: list = [None] * (n + 1)
        d_biases: list = [None] * (n + 1)

        # 1. Reverse of the gradient pass, bottom-up: d loss / d g_(k-1) -> d loss / d a_k -> (g_k, s_k)
        d_u_via_slope = []
        d_g = d_grad_enc
        for k in range(n):
            d_a = d_g @ weights[k].t()
            d_weights[k] = transposed_matmul(acts[k], d_g)
            if enc_weights[k] is not None:
                d_a.addmm_(d_grad_enc, enc_weights[k].t())
                d_enc_weights[k] = transposed_matmul(acts[k], d_grad_enc)
            d_s = d_a * gs[k]
            d_u_via_slope.append(torch.ops.aten.sigmoid_backward.grad_input(d_s, slopes[k], grad_input=d_s))
            d_g = d_a.mul_(slopes[k])  # after the top layer: d loss / d (the broadcast top row), per point
        d_weights[n] = (d_g.sum(0) + d_out @ hs[-1])[None]
        d_biases[n] = d_out.sum()[None]
        if enc_weights[n] is not None:
            d_enc_weights[n] = (d_grad_enc.sum(0) + d_out @ enc)[None]

        # 2. Reverse of the forward pass, top-down, with d_h = d loss / d h_k from the layer above
        d_enc = d_out[:, None] * enc_weights[n][0] if need_enc and enc_weights[n] is not None else None
        d_h = None
        for k in range(n - 1, -1, -1):
            d_u = d_u_via_slope[k]
            if d_h is None:  # the top: d_h = d_out (x) w, and (d_out (x) w) * s = d_out * a (saved)
                d_u.addcmul_(acts[k], d_out[:, None])
            else:
                d_u.addcmul_(d_h, slopes[k])
            d_weights[k] += transposed_matmul(d_u, hs[k])
            d_biases[k] = d_u.sum(0)
            if enc_weights[k] is not None:
                d_enc_weights[k] += transposed_matmul(d_u, enc)
                if need_enc:
                    d_enc = d_u @ enc_weights[k] if d_enc is None else d_enc.addmm_(d_u, enc_weights[k])
            if k > 0 or need_enc:
                d_h = d_u @ weights[k]
        d_u = None
        if need_enc:
            d_enc = d_h if d_enc is None else d_enc + d_h
            d_u = encoding_vjp(enc, freqs, d_enc)
            if len(freqs):  # grad_u depends on u through sin and cos too: d (f cos(f u)) = -f^2 sin(f u) du
                k = 3 * len(freqs)
                curvature = grad_enc[:, 3 : 3 + k] * enc[:, 3 : 3 + k] + grad_enc[:, 3 + k :] * enc[:, 3 + k :]
                f2_d = (d_grad_u[:, None, :] * freqs[:, None].square()).reshape(len(d_u), k)
                d_u = d_u - (f2_d * curvature).view(-1, len(freqs), 3).sum(1)
        grads = [d_u, None]
        for k in range(n + 1):
            grads += [d_weights[k], d_enc_weights[k], d_biases[k]]
        return tuple(grads)
