"""Evidence for the diffusion prior: held-out denoising loss, a contact sheet, and the narrow-arc ablation.

(a) Held-out loss: epsilon MSE on the held-out prior-data shards (``--val-shards`` of them, the last
    or, with ``--heldout first``, the first; never trained on), per category, with the category and
    with the null class, at timesteps and noise fixed per batch (``Denoiser.heldout_losses``).
(b) Contact sheet ``docs/prior_samples.png``: for held-out hand renders of each category, the hand
    condition, the object sampled with the category (DDIM, CFG 2), sampled without it, and the truth.
(c) Ablation: the ``narrow12`` synthetic split (40-degree camera arcs; every HOI4D category twice)
    fitted with ``configs/compare/prior-ablation.yaml`` (no prior and the diffusion prior, 2 seeds
    each) at one fixed step budget, through ``hoirecon compare``: means, per category, per clip, the
    unseen side (ground truth no input frame sees), clips made worse and collapsed (F@10 -0.2), and
    the cost of a step with score distillation against one without (``sds_step_seconds``).

Usage: benchmarks/prior.py [--checkpoint FILE] [--data data/prior/r32] [--out runs/bench-prior]
[--jobs 2] [--steps 800] [--seeds 0,1] [--variants none,x0u60w2] [--prior-variant x0u60w2] [--skip-ablation]
[--skip-heldout] [--timing RUN_DIR]
(``--skip-heldout --skip-ablation --timing RUN_DIR``: only the step timing, on any finished fit).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from hoirecon.data.prior_shards import ShardStream, read_index, split_heldout
from hoirecon.priors.diffusion import DEFAULT_CHECKPOINT, load_checkpoint
from hoirecon.utils.stats import mean_finite as mean

REPO = Path(__file__).resolve().parents[1]
HOIRECON = str(Path(sys.executable).parent / "hoirecon")
SHEET_CATEGORIES = ["mug", "bottle", "kettle", "bowl", "knife", "toycar"]


def heldout_shards(data: Path, val_shards: int, which: str = "last") -> list[Path]:
    """The held-out shards as training held them out (``data.heldout``: the first or the last)."""
    return split_heldout([data / name for name in sorted(read_index(data)["shards"])], val_shards, which)[1]


def heldout_losses(model, shards: list[Path], batch_size: int = 64) -> dict[str, tuple[float, float, int]]:
    """Per category: (mean loss with category, without, number of samples)."""
    sums: dict[str, list[float]] = {}
    batch: list = []

    def flush(batch_index: int) -> None:
        target, condition = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
        cats = [b[2] for b in batch]
        cond, uncond = model.heldout_losses(target, condition, model.class_ids(cats, warn=False), seed=batch_index)
        for c, lc, lu in zip(cats, cond.tolist(), uncond.tolist()):
            s = sums.setdefault(c, [0.0, 0.0, 0])
            s[0], s[1], s[2] = s[0] + lc, s[1] + lu, s[2] + 1

    n_batches = 0
    for sample in ShardStream(shards, shuffle=False):
        batch.append(sample)
        if len(batch) == batch_size:
            flush(n_batches)
            batch, n_batches = [], n_batches + 1
    if batch:
        flush(n_batches)
    return {c: (s[0] / s[2], s[1] / s[2], s[2]) for c, s in sorted(sums.items())}


def _tile(x: torch.Tensor, scale: int) -> np.ndarray:
    """A (C, R, R) channel image in [-1, 1] (mask first, then a normal) -> (R*scale, 2*R*scale, 3) uint8."""
    mask = x[:1].expand(3, -1, -1)
    img = torch.cat([mask, x[1:4]], dim=2).clamp(-1, 1).add(1).mul(127.5).byte().permute(1, 2, 0).numpy()
    return np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8))


def contact_sheet(model, shards: list[Path], out: Path, per_category: int = 2, scale: int = 3) -> Path:
    """Rows: held-out samples; columns: hand (mask, normal) | sampled with category | without | truth."""
    picked: dict[str, list] = {c: [] for c in SHEET_CATEGORIES}
    for target, condition, cat in ShardStream(shards, shuffle=False):
        if cat in picked and len(picked[cat]) < per_category:
            picked[cat].append((target, condition, cat))
        if all(len(v) == per_category for v in picked.values()):
            break
    rows = [s for c in SHEET_CATEGORIES for s in picked[c]]
    target = torch.stack([r[0] for r in rows])
    condition = torch.stack([r[1] for r in rows])
    ids = model.class_ids([r[2] for r in rows])
    gen = torch.Generator().manual_seed(0)
    with_cat = model.sample(condition, ids, steps=50, guidance_scale=2.0, generator=gen)
    gen = torch.Generator().manual_seed(0)
    null = torch.full_like(ids, model.null_class)
    without = model.sample(condition, null, steps=50, guidance_scale=1.0, generator=gen)
    gap = np.full((target.shape[-1] * scale, 6, 3), 255, dtype=np.uint8)
    lines = []
    for i in range(len(rows)):
        tiles = [_tile(x[i], scale) for x in (condition, with_cat, without, target)]
        lines.append(np.concatenate([t for pair in zip(tiles, [gap] * 4) for t in pair][:-1], axis=1))
    sheet = np.concatenate([np.pad(line, ((0, 4), (0, 0), (0, 0)), constant_values=255) for line in lines], axis=0)
    # labels: a header over the four column pairs, the category left of each row
    side, head, tile_w = 70, 18, 2 * target.shape[-1] * scale + 6
    image = Image.new("RGB", (sheet.shape[1] + side, sheet.shape[0] + head), "white")
    image.paste(Image.fromarray(sheet), (side, head))
    draw = ImageDraw.Draw(image)
    for j, name in enumerate(["hand (mask, normal)", "sampled, category", "sampled, no category", "truth"]):
        draw.text((side + j * tile_w + 4, 3), name, fill="black")
    tile_h = target.shape[-1] * scale
    for i, row in enumerate(rows):
        draw.text((4, head + i * (tile_h + 4) + tile_h // 2 - 6), row[2], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out


def ablation(
    out: Path,
    jobs: int,
    steps: int,
    checkpoint: str,
    seeds: list[int],
    preset: str = "narrow12",
    variants: list[str] | None = None,
    threads: int = 0,
) -> list[dict]:
    """Runs (resumably) ``configs/compare/prior-ablation.yaml`` through `hoirecon compare`, with the
    prior checkpoint ``checkpoint`` in every named variant (or in those of ``variants``, "none" always
    among them) and the given seeds, ``threads`` torch threads per fit (0: the cores split between
    the jobs); returns results.csv's rows."""
    split = out / preset
    subprocess.run(
        [HOIRECON, "synth", "split", "--preset", preset, "--frames", "16", "--resolution", "96", "--out", str(split)],
        check=True,
    )
    config = OmegaConf.load(REPO / "configs/compare/prior-ablation.yaml")
    if variants:
        unknown = sorted(set(variants) - set(config.named_variants))
        if unknown:
            raise SystemExit(f"error: --variants: unknown {unknown} (the ablation has {list(config.named_variants)})")
        keep = ["none", *[v for v in variants if v != "none"]]
        config.named_variants = {k: config.named_variants[k] for k in keep}
    for name, overrides in config.named_variants.items():
        config.named_variants[name] = [
            f"prior.checkpoint={checkpoint}" if o.startswith("prior.checkpoint=") else o for o in overrides
        ]
    config.variants = {"trainer.seed": seeds}
    config.manifest, config.run_dir = str(split / "manifest.txt"), str(out / "compare")
    config.overrides = [f"trainer.max_steps={steps}"]
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, out / "prior-ablation.yaml")
    cmd = [
        HOIRECON,
        "compare",
        "--config",
        str(out / "prior-ablation.yaml"),
        "--jobs",
        str(jobs),
        "--threads",
        str(threads),
    ]
    subprocess.run(cmd, check=True, cwd=REPO)
    with open(out / "compare" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    text = ("variant", "clip", "category", "error")
    return [{k: (v if k in text else float(v)) for k, v in r.items()} for r in rows if not r.get("error")]


def sds_step_seconds(clip: Path, checkpoint: str, fitted: Path | None = None, repeats: int = 20) -> tuple[float, float]:
    """Median seconds of a fit step (losses, backward) without and with score distillation, same
    clip; at the state of the finished run ``fitted`` if given (where guidance really runs: a shaped
    object and a small beta), else at the start."""
    import time

    from hoirecon.api import run_config
    from hoirecon.schema import FitConfig
    from hoirecon.systems.fit import build_fit

    keys = {"clip": str(clip), "run_dir": str(clip.parent / "sds-timing"), "prior.checkpoint": checkpoint}
    overrides = ["prior.type=diffusion", "guidance.warmup_steps=0", "guidance.every_n_steps=1", "guidance.max_beta=0"]
    _, config = run_config(FitConfig, REPO / "configs/fit/demo.yaml", None, overrides, **keys)
    parts = build_fit(config)
    objective, scene = parts.system.objective, parts.scene
    objective.prior.model.TRACE_AFTER = 0  # a long fit's steady state: its UNet runs traced
    first = 0
    if fitted is not None:
        checkpoint_file = fitted / "checkpoints" / "last.ckpt"
        state = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
        parts.system.load_state_dict(state["state_dict"], strict=False)
        first = int(state["global_step"])

    def step_seconds(active: bool, step: int) -> float:
        objective.prior.active = active
        start = time.perf_counter()
        parts.system.follow_step(first + step)
        scene.zero_grad()
        objective(scene, torch.Generator().manual_seed(step))["loss"].backward()
        return time.perf_counter() - start

    seconds = {False: [], True: []}
    for step in range(repeats + 1):  # the arms alternate, so that a change in load hits both alike
        for active in (False, True):
            seconds[active].append(step_seconds(active, step))
    return float(np.median(seconds[False][1:])), float(np.median(seconds[True][1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--data", default=str(REPO / "data/prior/r32"))
    parser.add_argument("--val-shards", type=int, default=2, help="held-out shards (as in training)")
    parser.add_argument("--heldout", default="last", choices=["first", "last"], help="which (data.heldout)")
    parser.add_argument("--out", default=str(REPO / "runs/bench-prior"))
    parser.add_argument("--sheet", default=str(REPO / "docs/prior_samples.png"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per fit (0: the cores split between jobs)"
    )
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--skip-heldout", action="store_true", help="no held-out loss and contact sheet (no --data)")
    parser.add_argument("--seeds", default="0,1", help="fit seeds, e.g. 0 for a first pass (runs resume)")
    parser.add_argument("--variants", default="", help="named variants to run, e.g. none,x0h1 (default: all)")
    parser.add_argument("--prior-variant", default="x0u60w2", help="the variant the JSON's *_prior keys report")
    parser.add_argument("--preset", default="narrow12", help="the narrow-arc split (narrow12: 12 clips)")
    parser.add_argument(
        "--timing", metavar="RUN_DIR", help="time the SDS step at the end of this finished fit (default: kettle1's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    summary = {}
    if not args.skip_heldout:
        model, info = load_checkpoint(args.checkpoint)
        shards = heldout_shards(Path(args.data), args.val_shards, args.heldout)
        losses = heldout_losses(model, shards)
        print(f"prior {args.checkpoint} ({info.get('steps', '?')} steps); held-out epsilon MSE, {len(shards)} shards")
        print(f"{'category':<14}{'n':>6}{'with cat':>10}{'null':>10}{'gain %':>8}")
        for c, (lc, lu, n) in losses.items():
            print(f"{c:<14}{n:>6}{lc:>10.4f}{lu:>10.4f}{100 * (lu - lc) / lu:>8.1f}")
        total = sum(n for _, _, n in losses.values())
        cond = sum(lc * n for lc, _, n in losses.values()) / total
        uncond = sum(lu * n for _, lu, n in losses.values()) / total
        print(f"{'all':<14}{total:>6}{cond:>10.4f}{uncond:>10.4f}{100 * (uncond - cond) / uncond:>8.1f}")
        print(f"contact sheet: {contact_sheet(model, shards, Path(args.sheet))}")
        summary = {"heldout_loss_cond": round(cond, 5), "heldout_loss_uncond": round(uncond, 5)}

    if not args.skip_ablation:
        seeds = [int(x) for x in args.seeds.split(",")]
        variants = [v for v in args.variants.split(",") if v]
        rows = ablation(
            Path(args.out), args.jobs, args.steps, args.checkpoint, seeds, args.preset, variants, args.threads
        )
        f5, f10, u5 = "object/f@5mm[rigid]", "object/f@10mm[rigid]", "object/unseen_f@5mm[rigid]"
        cd, mpjpe = "object/chamfer_cm2[rigid]", "hand/mpjpe_mm[root]"
        names = list(dict.fromkeys(r["variant"].split(",")[0] for r in rows))
        by = {k: [r for r in rows if r["variant"].split(",")[0] == k] for k in names}
        print(f"\nnarrow-arc ablation ({args.preset}: 40 degrees, 16 frames, 96 px, {args.steps} steps, seeds {seeds})")
        print(
            f"{'variant':<10}{'runs':>5}{'min':>7}{'F@5':>7}{'F@10':>7}{'CD cm2':>8}{'F@5 unseen':>12}{'MPJPE':>7}"
            f"{'SDS steps':>10}"
        )
        for k, mine in by.items():
            print(
                f"{k:<10}{len(mine):>5}{mean([r['minutes'] for r in mine]):>7.2f}{mean([r[f5] for r in mine]):>7.3f}"
                f"{mean([r[f10] for r in mine]):>7.3f}{mean([r[cd] for r in mine]):>8.3f}"
                f"{mean([r[u5] for r in mine]):>12.3f}{mean([r[mpjpe] for r in mine]):>7.2f}"
                f"{mean([r.get('fit/sds_steps', float('nan')) for r in mine]):>10.0f}"
            )
        others = [k for k in names if k != "none"]
        if not others:  # the no-prior runs alone (a first pass)
            print(json.dumps(summary))
            return
        categories = sorted({r["category"] for r in rows})
        print(f"\n{'category':<12}{'F@5 none':>9}" + "".join(f"{k:>9}{'change':>8}" for k in others))
        for c in categories:
            base = mean([r[f5] for r in by["none"] if r["category"] == c])
            cells = [mean([r[f5] for r in by[k] if r["category"] == c]) for k in others]
            print(f"{c:<12}{base:>9.3f}" + "".join(f"{v:>9.3f}{v - base:>+8.3f}" for v in cells))

        def run_key(r: dict) -> tuple[str, str]:
            return r["clip"], r["variant"].split(",", 1)[-1]  # the clip and the seed

        def paired(k: str) -> list[tuple[dict, dict]]:
            """(no prior, variant k) runs of the same clip and seed."""
            mine = {run_key(r): r for r in by[k]}
            return [(r, mine[run_key(r)]) for r in by["none"] if run_key(r) in mine]

        print(f"\n{'clip, seed':<22}{'none F@5/F@10':>15}" + "".join(f"{k + ' F@5/F@10':>16}" for k in others))
        pairs = {k: paired(k) for k in others}
        for r in by["none"]:
            line = f"{r['clip'] + ', ' + r['variant'].split('seed=')[-1]:<22}{r[f5]:>8.3f}/{r[f10]:.3f}"
            for k in others:
                other = next((p for n, p in pairs[k] if n is r), None)
                line += f"{other[f5]:>9.3f}/{other[f10]:.3f}" if other else f"{'-':>16}"
            print(line)

        def figures(k: str) -> dict:
            p = pairs[k]
            return {
                "f5": round(mean([q[f5] for _, q in p]), 3),
                "f10": round(mean([q[f10] for _, q in p]), 3),
                "f5_unseen": round(mean([q[u5] for _, q in p]), 3),
                "n_worse": sum(q[f5] < n[f5] for n, q in p),
                "n_collapsed": sum(n[f10] - q[f10] > 0.2 for n, q in p),
                "worst_category_change": round(
                    min(mean([q[f5] - n[f5] for n, q in p if n["category"] == c]) for c in categories), 3
                ),
            }

        per_variant = {k: figures(k) for k in others}
        for k, fig in per_variant.items():
            print(f"{k}: " + ", ".join(f"{a} {b}" for a, b in fig.items()))
        chosen = args.prior_variant if args.prior_variant in per_variant else others[0]
        chosen_pairs = pairs[chosen]
        summary.update(
            {
                "prior_variant": chosen,
                "f10_noprior": round(mean([n[f10] for n, _ in chosen_pairs]), 3),
                "f10_prior": per_variant[chosen]["f10"],
                "f5_noprior": round(mean([n[f5] for n, _ in chosen_pairs]), 3),
                "f5_prior": per_variant[chosen]["f5"],
                "n_clips": len(chosen_pairs),
                "f5_unseen_noprior": round(mean([n[u5] for n, _ in chosen_pairs]), 3),
                "f5_unseen_prior": per_variant[chosen]["f5_unseen"],
                "n_worse": per_variant[chosen]["n_worse"],
                "n_collapsed": per_variant[chosen]["n_collapsed"],
                **{f"f5_{k}": fig["f5"] for k, fig in per_variant.items()},
            }
        )
    fitted = Path(args.timing) if args.timing else None
    if fitted is None and not args.skip_ablation:
        # at the end of the kettle's no-prior fit: where guidance runs, on the largest object
        fitted = next(Path(args.out, "compare").glob("none*/kettle1/checkpoints/last.ckpt")).parents[1]
    if fitted is not None:
        clip = Path(OmegaConf.load(fitted / "config.yaml").clip)
        without, with_sds = sds_step_seconds(clip, args.checkpoint, fitted)
        print(f"\nstep at the end of {fitted}: {without * 1e3:.0f} ms without SDS, {with_sds * 1e3:.0f} ms with")
        summary.update(
            {
                "mask_step_ms": round(without * 1e3, 1),
                "sds_step_ms": round(with_sds * 1e3, 1),
                "sds_step_ratio": round(with_sds / without, 3),
            }
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
