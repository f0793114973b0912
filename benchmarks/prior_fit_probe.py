"""Does the prior pull a fit towards the truth? Its x0 pull on real fit renders, no new fit needed.

The held-out probes (``prior_heldout.py``, ``prior_probe.py``) score a checkpoint on training-like
renders; a fit shows the prior something else: soft, half-formed objects from views no input camera
saw. This probe scores it there. For finished runs of synthetic clips with ground truth (the no-prior
arm of ``benchmarks/prior.py``, say), per run ``--views`` novel views drawn as the fit draws them (at
least ``--unseen-angle`` degrees from every input camera), the fit's object channels x (as the
distillation sees them: soft edges, unit normals) and the true object's x_gt at the same camera (the
clip's ``gt/object.obj`` placed in the fit's hand frame by the true hand-from-object pose, rendered
as the prior's training data is), and per checkpoint and hand guidance the expected x0 pull
p = E[x0_hat(x_t) - x] over ``--draws`` draws of t in [t_min, t_max) and noise (what the x0
distillation adds to a fit's gradient, up to its weight):

- ``cos``: the cosine between p and x_gt - x, all channels (1: the pull points at the truth);
- ``cos_mask``, ``cos_normal``, ``cos_depth``: the same per channel group;
- ``grow``: the pull's change of the mask area, pixels (positive: it grows the object), beside
  ``need``: x_gt's area minus x's.

``--pulls`` asks where the pull's sense comes from: the same expectation with the hand and/or the
category taken away from the prior's inputs (``no-hand``, ``no-category``, ``unconditional``), or
only what the hand or the category adds to it (``hand-term``, ``category-term``: the guidance terms
alone, x0_hat with minus x0_hat without, on the same x_t).

``--picture FILE`` saves, for the first checkpoint, one row per view (up to ``--picture-rows``): hand
mask | fit mask | true mask | fit + pull mask | fit normal | true normal | fit + pull normal (x
component).

Usage: benchmarks/prior_fit_probe.py RUN_DIR [RUN_DIR ...] [--checkpoint A B ...] [--hand-scales 1 2]
[--pulls full unconditional ...] [--views 8] [--draws 8] [--t-range 0.75 0.98] [--target-steps 1]
[--picture FILE]. Last line: one JSON object keyed "<checkpoint>/h<hand scale>" (the full pull) or
"<checkpoint>/h<hand scale>/<pull>".
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from hoirecon.data.synth.prior_data import render_views
from hoirecon.geometry.transforms import transform_points
from hoirecon.priors.channels import no_hand
from hoirecon.priors.diffusion import DEFAULT_CHECKPOINT, HIGH_T, load_checkpoint
from hoirecon.systems.fit import load_run

GROUPS = {"mask": [0], "normal": [1, 2, 3], "depth": [4]}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@torch.no_grad()
def views(run_dir: Path, n: int, resolution: int, unseen_angle: float, seed: int):
    """(x, x_gt, condition, category) per novel view of a finished run: (1, 5, R, R) fit and truth,
    (1, 7, R, R) hand condition."""
    parts = load_run(run_dir)
    scene, gt = parts.scene, parts.clip.gt
    if gt.object_vertices is None or gt.T_hand_from_obj is None:
        raise SystemExit(f"{run_dir}: the clip has no ground-truth object or hand-from-object poses")
    scene = scene.float()
    faces = torch.as_tensor(np.asarray(gt.object_faces), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        frame = k * scene.n_frames // n
        view = scene.novel_view(frame, resolution, generator, unseen_angle)
        hand = scene.hands(scene.frame_index(frame))
        T_hand_from_obj = torch.as_tensor(np.asarray(gt.T_hand_from_obj[frame]), dtype=torch.float32)
        obj = transform_points(T_hand_from_obj, torch.as_tensor(np.asarray(gt.object_vertices), dtype=torch.float32))
        _, x_gt = render_views(
            hand.vertices[0],
            hand.faces,
            scene.hand_model.vertex_code.float(),
            obj,
            faces,
            view.T_cam_from_hand,
            view.K[:, 0, 0] / resolution,
            resolution,
        )
        out.append((view.target.detach(), x_gt, view.condition, parts.category))
    return out


@torch.no_grad()
def denoised(model, x_t, t: int, condition, ids, hand_scale: float, steps: int) -> torch.Tensor:
    """x0 from x_t at timestep t by ``steps`` deterministic DDIM steps (1: the one-step x0_hat)."""
    times = torch.linspace(t, 0, steps + 1).round().long()
    x = x_t
    for now, then in zip(times[:-1], times[1:]):
        eps = model.guided_noise(x, condition, now.view(1), ids, 1.0, hand_scale)
        abar = model.abar(now.view(1))
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        if then > 0:
            abar_then = model.abar(then.view(1))
            x = abar_then.sqrt() * x0 + (1 - abar_then).sqrt() * eps
    return x0


#: What the pull is (``--pulls``): (what the target's x0_hat is given, what is subtracted from it:
#: "x", the fit's render itself, or x0_hat given less). "full" is the distillation's pull; the others
#: take the hand and/or the category away, or keep only what one of them adds (a guidance term
#: without the base pull, as guidance-only distillation would use it).
PULLS = {
    "full": ("hand+category", "x"),
    "no-hand": ("category", "x"),
    "no-category": ("hand", "x"),
    "unconditional": ("nothing", "x"),
    "hand-term": ("hand+category", "category"),
    "category-term": ("hand+category", "hand"),
}


@torch.no_grad()
def expected_pull(
    model,
    x,
    condition,
    category: str,
    hand_scale: float,
    t_range,
    draws: int,
    seed: int,
    target_steps: int = 1,
    pull: str = "full",
):
    """E[target(x_t) - reference] (1, 5, R, R) over draws of t in t_range (fractions) and noise,
    target and reference as ``PULLS[pull]`` says (the same x_t for both)."""
    gen = torch.Generator().manual_seed(seed)
    steps = model.cfg.num_train_timesteps
    ids = model.class_ids([category], warn=False)
    null = torch.full_like(ids, model.null_class)
    inputs = {  # the prior's (condition, class) given ...
        "hand+category": (condition, ids),
        "category": (no_hand(condition), ids),
        "hand": (condition, null),
        "nothing": (no_hand(condition), null),
    }
    target, reference = PULLS[pull]
    total = torch.zeros_like(x)
    for _ in range(draws):
        t = torch.randint(int(t_range[0] * steps), int(t_range[1] * steps), (1,), generator=gen)
        noise = torch.randn(x.shape, generator=gen)
        x_t = model.add_noise(x, noise, t)
        total += denoised(model, x_t, int(t), *inputs[target], hand_scale, target_steps)
        total -= x if reference == "x" else denoised(model, x_t, int(t), *inputs[reference], hand_scale, target_steps)
    return total / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished fit run folders of clips with ground truth")
    parser.add_argument("--checkpoint", nargs="+", default=[str(DEFAULT_CHECKPOINT)])
    parser.add_argument("--hand-scales", nargs="+", type=float, default=[1.0])
    parser.add_argument(
        "--pulls", nargs="+", default=["full"], choices=list(PULLS), help="which pull (PULLS; full: the fit's)"
    )
    parser.add_argument("--views", type=int, default=8, help="novel views per run")
    parser.add_argument("--draws", type=int, default=8, help="(t, noise) draws per expectation")
    parser.add_argument(
        "--t-range", nargs=2, type=float, default=[HIGH_T, 0.98], help="t fractions, as prior.t_min/t_max"
    )
    parser.add_argument("--unseen-angle", type=float, default=60.0, help="as guidance.unseen_angle_deg")
    parser.add_argument("--target-steps", type=int, default=1, help="DDIM steps from x_t to the target (1: x0_hat)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--picture", type=Path, help="PNG of views, truth and pull (first checkpoint)")
    parser.add_argument("--picture-rows", type=int, default=6)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    models = {Path(c).stem: load_checkpoint(c)[0] for c in args.checkpoint}
    resolution = next(iter(models.values())).cfg.resolution
    samples = []  # (run, category, x, x_gt, condition)
    for run in args.runs:
        for x, x_gt, condition, category in views(run, args.views, resolution, args.unseen_angle, args.seed):
            samples.append((run.name, category, x, x_gt, condition))
    print(f"{len(samples)} views of {len(args.runs)} runs, {args.draws} draws of t in {args.t_range}")
    rows: dict[str, dict[str, list[float]]] = {}
    pictured: list[torch.Tensor] = []  # (1, 7, R, R) tiles per view
    for name, model in models.items():
        for hand_scale, pull_name in itertools.product(args.hand_scales, args.pulls):
            key = f"{name}/h{hand_scale:g}" + ("" if pull_name == "full" else f"/{pull_name}")
            scores = defaultdict(list)
            picture_this = args.picture is not None and not rows  # the first checkpoint and hand scale
            for i, (_, category, x, x_gt, condition) in enumerate(samples):
                pull = expected_pull(
                    model,
                    x,
                    condition,
                    category,
                    hand_scale,
                    args.t_range,
                    args.draws,
                    args.seed + i,
                    args.target_steps,
                    pull_name,
                )
                truth = x_gt - x
                scores["cos"].append(cosine(pull, truth))
                for group, channels in GROUPS.items():
                    scores[f"cos_{group}"].append(cosine(pull[:, channels], truth[:, channels]))
                scores["grow"].append(float(pull[:, 0].sum()) / 2)  # mask in [-1, 1]: 2 per pixel
                scores["need"].append(float(truth[:, 0].sum()) / 2)
                scores[f"cos[{category}]"].append(scores["cos"][-1])
                if picture_this and i < args.picture_rows:
                    pictured.append(
                        torch.cat(
                            [
                                condition[:, :1],
                                x[:, :1],
                                x_gt[:, :1],
                                x[:, :1] + pull[:, :1],
                                x[:, 1:2],
                                x_gt[:, 1:2],
                                x[:, 1:2] + pull[:, 1:2],
                            ],
                            dim=1,
                        )
                    )
            rows[key] = scores
    columns = ["cos", "cos_mask", "cos_normal", "cos_depth", "grow", "need"]
    categories = sorted({c for _, c, *_ in samples})
    print(f"{'checkpoint/hand scale':<40}" + "".join(f"{c:>11}" for c in columns + categories))
    summary = {}
    for key, scores in rows.items():
        means = {c: float(np.mean(scores[c])) for c in columns}
        means.update({c: float(np.mean(scores[f"cos[{c}]"])) for c in categories})
        print(f"{key:<40}" + "".join(f"{means[c]:>11.3f}" for c in columns + categories))
        summary[key] = {k: round(v, 4) for k, v in means.items()}
    if pictured:
        save_picture(pictured, args.picture)
        print(f"picture: {args.picture}")
    print(json.dumps(summary))


def save_picture(rows: list[torch.Tensor], path: Path, scale: int = 4) -> None:
    """Rows of (1, C, R, R) tiles in [-1, 1], one-pixel white borders, scaled up, written atomically."""
    from PIL import Image

    from hoirecon.utils.io import atomic_path

    tiles = [torch.nn.functional.pad(row[0].clamp(-1, 1), (1, 1, 1, 1), value=1) for row in rows]
    grid = torch.cat([torch.cat(list(tile), dim=1) for tile in tiles], dim=0)
    image = ((grid.numpy() + 1) * 127.5).round().astype(np.uint8)
    image = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


if __name__ == "__main__":
    main()
