"""Where does score distillation push? The prior's expected SDS direction per timestep, no fit needed.

For held-out prior-data samples (object channels x_gt, hand h, category c), per timestep t and
guidance setting, with the SDS gradient g(x) = w(t) (eps_guided(x_t) - eps) averaged over
``--draws`` noise draws (the expectation a fit's many steps see):

- ``cos``: at x = another sample's object next to this hand (a wrong object), the cosine between
  the descent direction -E[g(x)] and x_gt - x: does the push point at the truth? (1 is ideal.)
- ``cos_hand``: the same with the hand part only, E[g(x) | h] - E[g(x) | no hand] (needs a prior
  trained with hand dropout; with none it says how much the hand changes the push at all).
- ``grow``: at x = x_gt, the expected push on the mask channel summed over pixels, in pixels
  (positive = the correct object is inflated).
- ``rest``: |E[g(x_gt)]| / |E[g(x_wrong)]|: how much a correct render is still pushed (0 is ideal).

This is the diagnosis's probe (docs/prior.md, "What was wrong"): cheap enough to pick a prior and
guidance settings before any fit. Usage: benchmarks/prior_probe.py --data data/prior-v2/r32
[--checkpoint FILE] [--n 16] [--draws 4] [--heldout first|last] [--timesteps 500 800 ...]. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hoirecon.data.prior_shards import ShardStream, read_index, split_heldout
from hoirecon.priors.channels import no_hand
from hoirecon.priors.diffusion import DEFAULT_CHECKPOINT, load_checkpoint

TIMESTEPS = (50, 200, 350, 500, 650, 800, 900)
SETTINGS = {"cfg1": (1.0, 1.0), "cfg4": (4.0, 1.0), "hand2": (1.0, 2.0)}


def heldout(data: Path, n: int, which: str, val_shards: int = 2) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    shards = split_heldout([data / s for s in sorted(read_index(data)["shards"])], val_shards, which)[1]
    picked = []
    for sample in ShardStream(shards, shuffle=False):
        picked.append(sample)
        if len(picked) == n:
            break
    return torch.stack([p[0] for p in picked]), torch.stack([p[1] for p in picked]), [p[2] for p in picked]


@torch.no_grad()
def expected_gradient(model, x, condition, ids, t: int, scale: float, hand_scale: float, draws: int, seed: int):
    """E over noise of w(t) (eps_guided - eps) at x (B, 5, R, R), timestep t; (B, 5, R, R)."""
    gen = torch.Generator().manual_seed(seed)
    tt = torch.full((len(x),), t, dtype=torch.long)
    abar = model.abar(tt)
    total = torch.zeros_like(x)
    for _ in range(draws):
        noise = torch.randn(x.shape, generator=gen)
        eps = model.guided_noise(model.add_noise(x, noise, tt), condition, tt, ids, scale, hand_scale)
        total += (1 - abar).sqrt() * abar.sqrt() * (eps - noise)
    return total / draws


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the batch of the cosine between flattened (B, ...) tensors."""
    return float(torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prior-data resolution folder, e.g. data/prior-v2/r32")
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--n", type=int, default=16, help="held-out samples")
    parser.add_argument("--draws", type=int, default=4, help="noise draws per expectation")
    parser.add_argument("--heldout", default="first", choices=["first", "last"])
    parser.add_argument("--timesteps", type=int, nargs="+", default=list(TIMESTEPS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, info = load_checkpoint(args.checkpoint)
    x_gt, condition, categories = heldout(Path(args.data), args.n, args.heldout)
    ids = model.class_ids(categories, warn=False)
    x_wrong = x_gt.roll(1, dims=0)  # another sample's object next to this hand
    empty = no_hand(condition)
    print(f"prior {args.checkpoint} ({info.get('steps', '?')} steps), {len(x_gt)} held-out samples, {args.draws} draws")
    print(
        f"{'t':>5}"
        + "".join(f"{name + ' ' + k:>13}" for name in SETTINGS for k in ("cos", "grow", "rest"))
        + f"{'cos_hand':>10}"
    )
    summary = {}
    for t in args.timesteps:
        cells = []
        for name, (scale, hand_scale) in SETTINGS.items():
            g_wrong = expected_gradient(model, x_wrong, condition, ids, t, scale, hand_scale, args.draws, t)
            g_true = expected_gradient(model, x_gt, condition, ids, t, scale, hand_scale, args.draws, t + 1)
            cos = cosine(-g_wrong, x_gt - x_wrong)
            grow = float((-g_true[:, 0]).sum(dim=(1, 2)).mean() / 2)  # mask in [-1, 1]: 2 per pixel
            rest = float(g_true.flatten(1).norm(dim=1).mean() / g_wrong.flatten(1).norm(dim=1).mean())
            cells += [cos, grow, rest]
            summary[f"{name}_cos_t{t}"], summary[f"{name}_grow_t{t}"] = round(cos, 3), round(grow, 2)
        g_hand = expected_gradient(model, x_wrong, condition, ids, t, 1.0, 1.0, args.draws, t)
        g_nohand = expected_gradient(model, x_wrong, empty, ids, t, 1.0, 1.0, args.draws, t)
        cos_hand = cosine(-(g_hand - g_nohand), x_gt - x_wrong)
        summary[f"cos_hand_t{t}"] = round(cos_hand, 3)
        print(f"{t:>5}" + "".join(f"{c:>13.3f}" for c in cells) + f"{cos_hand:>10.3f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
