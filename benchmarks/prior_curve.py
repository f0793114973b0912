"""The prior's training curve from its TensorBoard logs: docs/prior_training.png.

Training loss (the v-prediction MSE, a moving average over 10 logged points) and the held-out
epsilon MSE with and without the category. Usage: benchmarks/prior_curve.py [--run runs/prior]
[--out docs/prior_training.png]. Last line: one JSON object (the last values).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hoirecon.eval.plots import line_chart

REPO = Path(__file__).resolve().parents[1]


def scalars(run: Path) -> dict[str, list[tuple[float, float]]]:
    """Every scalar tag over all event files of a run (a resumed run writes several), by step."""
    out: dict[str, dict[int, float]] = {}
    for events in sorted((run / "tb").glob("events.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    return {tag: sorted(values.items()) for tag, values in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(REPO / "runs/prior"))
    parser.add_argument("--out", default=str(REPO / "docs/prior_training.png"))
    args = parser.parse_args()
    s = scalars(Path(args.run))
    train = s["train/loss"]
    smooth = [
        (x, sum(v for _, v in train[max(0, i - 9) : i + 1]) / len(train[max(0, i - 9) : i + 1]))
        for i, (x, _) in enumerate(train)
    ]
    series = {
        "train loss (v, moving avg)": smooth,
        "held-out eps MSE, category": s["val/loss_cond"],
        "held-out eps MSE, no category": s["val/loss_uncond"],
    }
    line_chart(series, "prior training (batch 16, 32 px, 1 thread)", "step", Path(args.out))
    print(f"{'step':>6}{'val cond':>10}{'val uncond':>12}")
    for (step, c), (_, u) in zip(s["val/loss_cond"], s["val/loss_uncond"]):
        print(f"{step:>6}{c:>10.4f}{u:>12.4f}")
    print(f"curve: {args.out}")
    last = {"steps": int(train[-1][0]) + 1, "val_loss_cond": round(s["val/loss_cond"][-1][1], 5)}
    last["val_loss_uncond"] = round(s["val/loss_uncond"][-1][1], 5)
    print(json.dumps(last))


if __name__ == "__main__":
    main()
