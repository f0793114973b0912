"""Object rendering speed and sample efficiency (2 threads).

1. Forward + backward (eikonal included) for 1024 rays through a fitted mug, per backbone and
   estimator: time, network evaluations per ray, points per second.
2. The MLP's achieved FLOP/s against a plain fp32 matmul measured in the same run, for
   ``sdf_and_gradient`` + eikonal loss + backward over 65536 points that need a gradient (as in the
   fit, where the object pose is learnt). FLOPs are the MLP's matmuls only (elementwise work
   ignored): the forward pass (hidden layers and the sdf row; the features are not computed), the
   explicit gradient pass, and the backward of both (2 matmuls each) = 3 x (forward + gradient pass)
   per point. The reference matmul is (65536 x 64) @ (64 x 64), the shape of the hidden layers.
3. occgrid_samples_ratio: on the fitted mug (VolSDF, beta 3 mm), the uniform estimator needs this many
   times more network evaluations per ray to reach the occupancy grid's image error (mean |opacity -
   reference| plus mean |distance - reference| in cm on the object; reference: uniform with 512
   samples). The occupancy grid's count includes its gradient-free probes; the uniform count that
   matches is interpolated log-log between the measured counts. Betas 1 mm and 1 cm are shown too.
Usage: benchmarks/render.py [--threads N] (default 2). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EYES, fit_sdf_to_shape, time_ms, view_rays  # noqa: E402

from hoirecon.registry import build  # noqa: E402
from hoirecon.runtime import configure_cpu  # noqa: E402

ESTIMATORS = {
    "uniform": {"type": "uniform", "n_samples": 64},
    "importance": {"type": "importance", "n_coarse": 32, "n_fine": 32},
    "occgrid": {"type": "occgrid"},
}


def mlp_matmul_flops(net) -> int:
    """Matmul FLOPs per point of sdf_and_gradient and its backward (the sdf row of the last layer only)."""
    dims = [(layer.v.shape[1], layer.v.shape[0]) for layer in net.linears]
    hidden = sum(2 * i * o for i, o in dims[:-1])
    forward = hidden + 2 * dims[-1][0]
    gradient_pass = hidden
    return 3 * (forward + gradient_pass)


def uniform_match(curve: list[tuple[int, float]], err: float) -> float:
    """Uniform samples per ray reaching ``err``, interpolated log-log on the (n, error) curve."""
    for (n0, e0), (n1, e1) in zip(curve, curve[1:]):
        if e1 <= err <= e0:
            f = (math.log(e0) - math.log(err)) / max(math.log(e0) - math.log(e1), 1e-12)
            return math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0)))
    return float(curve[0][0]) if err > curve[0][1] else float("nan")


def steady_grid(estimator, net, renderer, *rays: torch.Tensor) -> None:
    """The grid as training keeps it: rebuilt (every few steps) for the renderer's current beta."""
    with torch.no_grad():
        renderer(net, estimator, *rays, False)  # tells the estimator the renderer's density width
    estimator.update(net, 0, force=True)


def samples_at_equal_error(net, beta: float) -> dict:
    """Image error and network evaluations per ray of occgrid, and the uniform curve, at one beta."""
    renderer = build("renderer", {"type": "volsdf", "beta_init": beta, "learn_beta": False})
    full = view_rays(48, EYES[3])
    args = (full["o"], full["d"], full["near"], full["far"])
    with torch.no_grad():
        ref = renderer(net, build("estimator", {"type": "uniform", "n_samples": 512, "randomize": False}), *args, False)
        on = ref.opacity > 0.5

        def error(out) -> float:
            return float(
                (out.opacity - ref.opacity).abs().mean() + (out.distance - ref.distance)[on].abs().mean() * 100
            )

        occ = build("estimator", {"type": "occgrid", "randomize": False})
        steady_grid(occ, net, renderer, *args)
        occ_out = renderer(net, occ, *args, False)
        # every network evaluation counts: gradient-free probes too
        occ_err, occ_spr = error(occ_out), occ_out.samples_per_ray + occ.probes_per_ray
        curve = []
        for n in (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 192, 256):
            est = build("estimator", {"type": "uniform", "n_samples": n, "randomize": False})
            curve.append((n, error(renderer(net, est, *args, False))))
    matching = uniform_match(curve, occ_err)
    return {"beta": beta, "occ_err": occ_err, "occ_spr": occ_spr, "curve": curve, "match": matching}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    configure_cpu(parser.parse_args().threads)  # as every run: subnormals flushed, freed memory kept
    mug = build("object_generator", "mug").generate(seed=0)
    nets = {name: fit_sdf_to_shape(name, mug.sdf, steps=300) for name in ("mlp", "hashgrid")}
    renderer = build("renderer", {"type": "volsdf", "beta_init": 0.003, "learn_beta": False})
    view = view_rays(32, EYES[3])
    idx = torch.randperm(len(view["o"]), generator=torch.Generator().manual_seed(0))[:1024]
    o, d, near, far = (view[k][idx] for k in ("o", "d", "near", "far"))

    rows, ms = [], {}
    for name, net in nets.items():
        for est_name, spec in ESTIMATORS.items():
            estimator = build("estimator", spec)
            steady_grid(estimator, net, renderer, o, d, near, far)
            stats = {}

            def step(net=net, estimator=estimator, stats=stats) -> None:
                out = renderer(net, estimator, o, d, near, far)
                loss = out.opacity.sum() + out.distance.sum() + (out.gradients.norm(dim=-1) - 1).pow(2).mean()
                loss.backward()
                stats["spr"] = out.samples_per_ray

            t = time_ms(step, repeats=5)
            rows.append((name, est_name, t, stats["spr"], stats["spr"] * 1024 / (t / 1000)))
            ms[(name, est_name)] = t

    # MLP FLOP/s against a matmul of the same shape
    net = nets["mlp"]
    x = ((torch.rand(65536, 3) - 0.5) * 0.3).requires_grad_(True)

    def mlp_step() -> None:
        s, g = net.sdf_and_gradient(x)
        (s.sum() + (g.norm(dim=-1) - 1).pow(2).mean()).backward()

    # best of 5 interleaved rounds for both: this machine's speed drifts by 10-20% over seconds
    a, b = torch.randn(65536, 64), torch.randn(64, 64)
    rounds = [(time_ms(mlp_step, repeats=3), time_ms(lambda: a @ b, repeats=30, warmup=3)) for _ in range(5)]
    mlp_ms, mm_ms = min(r[0] for r in rounds), min(r[1] for r in rounds)
    mlp_flops = mlp_matmul_flops(net) * len(x) / (mlp_ms / 1000)
    mm_flops = 2 * 65536 * 64 * 64 / (mm_ms / 1000)

    # samples per ray at equal image error, on the fitted MLP mug
    equal = {beta: samples_at_equal_error(net, beta) for beta in (0.001, 0.003, 0.01)}
    ratio = equal[0.003]["match"] / equal[0.003]["occ_spr"]

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"fitted mug, 1024 rays, forward + backward with eikonal, {torch.get_num_threads()} threads, load {load}")
    print(f"{'backbone':<10}{'estimator':<12}{'ms':>9}{'samples/ray':>13}{'points/s':>12}")
    for name, est, t, spr, pps in rows:
        print(f"{name:<10}{est:<12}{t:9.1f}{spr:13.1f}{pps:12.0f}")
    print(
        f"\nMLP, 65536 points: {mlp_ms:.1f} ms, {mlp_flops / 1e9:.1f} GFLOP/s (matmul FLOPs); "
        f"plain (65536x64)@(64x64) matmul: {mm_flops / 1e9:.1f} GFLOP/s; ratio {mlp_flops / mm_flops:.2f}"
    )
    print("\nimage error (opacity + distance in cm), 48x48 view of the fitted mug, reference uniform/512:")
    print(f"{'beta mm':>8}{'occgrid err':>13}{'occ evals/ray':>15}{'uniform match':>15}{'ratio':>7}   uniform n:err")
    for beta, e in equal.items():
        curve = " ".join(f"{n}:{err:.4f}" for n, err in e["curve"][:9])
        print(
            f"{beta * 1000:8.0f}{e['occ_err']:13.4f}{e['occ_spr']:15.1f}{e['match']:15.1f}"
            f"{e['match'] / e['occ_spr']:7.1f}   {curve}"
        )
    print("(occgrid evaluations include its gradient-free probes; the JSON ratio is at beta 3 mm)")
    result = {
        "mlp_ms": round(ms[("mlp", "occgrid")], 1),
        "hashgrid_ms": round(ms[("hashgrid", "occgrid")], 1),
        "mlp_flops_over_matmul": round(mlp_flops / mm_flops, 3),
        "occgrid_samples_ratio": round(ratio, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
