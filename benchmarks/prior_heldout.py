"""Held-out loss of prior checkpoints on the same samples, and how much each one uses the hand.

For the held-out shards of ``--data`` (the first or last ``--val-shards``), with the timesteps and
noise fixed per batch (``Denoiser.heldout_losses``, as in training's validation), per checkpoint:

- ``cond`` / ``uncond``: epsilon MSE with the category and with the null class;
- ``wrong_hand``: with the category, but each sample's hand condition taken from another sample
  (the diagnosis's test: a prior that ignores the hand scores the same as ``cond``);
- ``hand_gain``: wrong_hand / cond (1 = the hand is ignored; higher = the hand matters);
- ``x0_high_t``: the one-step denoised x0's MSE at t >= 0.75 with the category, the error of what the
  x0 distillation pulls the fit towards (``prior.weighting`` x0). Like the all-t loss it ranks v3 above
  v2, whose fits were no worse: neither predicts fits at small differences; the probe on fit renders
  (``prior_fit_probe.py``) is closer (docs/benchmarks.md, "The distillation's own measure").

Usage: benchmarks/prior_heldout.py --data DIR [--checkpoint A.safetensors B.safetensors ...]
[--heldout first|last] [--batches 16]. Last line: one JSON object keyed by checkpoint file name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hoirecon.data.prior_shards import ShardStream, read_index, split_heldout
from hoirecon.priors.diffusion import DEFAULT_CHECKPOINT, HIGH_T, load_checkpoint


def batches(data: Path, which: str, val_shards: int, n: int, size: int = 32):
    shards = split_heldout([data / s for s in sorted(read_index(data)["shards"])], val_shards, which)[1]
    batch = []
    for sample in ShardStream(shards, shuffle=False):
        batch.append(sample)
        if len(batch) == size:
            target, condition, category = zip(*batch)
            yield torch.stack(target), torch.stack(condition), list(category)
            batch, n = [], n - 1
            if n == 0:
                return


@torch.no_grad()
def scores(checkpoint: Path, data: Path, which: str, val_shards: int, n: int) -> dict[str, float]:
    model, _ = load_checkpoint(checkpoint)
    totals = {"cond": 0.0, "uncond": 0.0, "wrong_hand": 0.0, "x0_high_t": 0.0}
    count = 0
    for k, (target, condition, categories) in enumerate(batches(data, which, val_shards, n)):
        ids = model.class_ids(categories, warn=False)
        cond, uncond = model.heldout_losses(target, condition, ids, seed=k)
        wrong, _ = model.heldout_losses(target, condition.roll(1, dims=0), ids, seed=k)
        totals["cond"] += float(cond.sum())
        totals["uncond"] += float(uncond.sum())
        totals["wrong_hand"] += float(wrong.sum())
        x0_high, _ = model.heldout_losses(target, condition, ids, seed=k, t_min=HIGH_T, x0=True)
        totals["x0_high_t"] += float(x0_high.sum())
        count += len(target)
    out = {key: value / count for key, value in totals.items()}
    out["hand_gain"] = out["wrong_hand"] / out["cond"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prior-data resolution folder (with index.json)")
    parser.add_argument("--checkpoint", nargs="+", default=[str(DEFAULT_CHECKPOINT)])
    parser.add_argument("--heldout", default="first", choices=["first", "last"])
    parser.add_argument("--val-shards", type=int, default=2)
    parser.add_argument("--batches", type=int, default=16, help="batches of 32 held-out samples")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = {
        Path(c).name: scores(Path(c), Path(args.data), args.heldout, args.val_shards, args.batches)
        for c in args.checkpoint
    }
    print(f"held-out ({args.heldout} {args.val_shards} shards of {args.data}), {args.batches} x 32 samples")
    print(f"{'checkpoint':<40}{'cond':>10}{'uncond':>10}{'wrong hand':>12}{'hand gain':>11}{'x0 high t':>11}")
    for name, r in rows.items():
        print(
            f"{name:<40}{r['cond']:>10.4f}{r['uncond']:>10.4f}{r['wrong_hand']:>12.4f}{r['hand_gain']:>11.3f}"
            f"{r['x0_high_t']:>11.4f}"
        )
    print(json.dumps({name: {k: round(v, 5) for k, v in r.items()} for name, r in rows.items()}))


if __name__ == "__main__":
    main()
