"""A fit beside other work: its speed alone and beside a competing 2-thread fit, per setting.

Users run fits beside a browser, an IDE or a second fit. On a 2-core machine a fit using every core
(``trainer.threads=0``) beside one other 2-thread fit once ran 14x slower than alone, for 2x the
work. Each variant here is an environment and overrides of the measured fit; the competitor is a
plain ``hoirecon fit`` of the same clip with 2 threads, started first and killed after. Speed is
the training steps per second between the first and the last logged step (TensorBoard's wall times:
set-up and output writing excluded). ``slowdown`` = alone / beside; a fair share of 2 cores between
two 2-thread fits is 2x.

Usage: benchmarks/load.py [--out runs/bench-load] [--steps 120] [--variants default,passive,...].
Run it on an otherwise idle machine. Last line: one JSON object (``slowdown_<variant>``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
HOIRECON = str(Path(sys.executable).parent / "hoirecon")
#: name -> (environment of the measured fit, its overrides)
VARIANTS = {
    # what a user gets: hoirecon's own defaults (threads 0 = every core; the CLI asks OpenMP for the
    # PASSIVE policy unless OMP_WAIT_POLICY is set)
    "default": ({}, []),
    # OpenMP threads that spin while they wait for work (libgomp's ACTIVE policy)
    "active": ({"OMP_WAIT_POLICY": "ACTIVE"}, []),
    # OpenMP threads that sleep while they wait
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    # libgomp's default policy with a short spin before sleeping (the default spins 300000 times)
    "spin10k": ({"GOMP_SPINCOUNT": "10000"}, []),
    # one intra-op thread: nothing to wait for
    "threads1": ({}, ["trainer.threads=1"]),
}
COMMON = ["trainer.progress_bar=false", "trainer.log_every_n_steps=10", "trainer.checkpoint_every_n_steps=0"]
COMMON += ["trainer.checkpoint_every_minutes=0", "object.export_resolution=16", "output.preview_frames=1"]


def steps_per_second(run: Path) -> float:
    """Training speed from the run's TensorBoard events: logged steps over their wall time."""
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    loss = events.Scalars("loss")
    first, last = loss[1], loss[-1]  # from the second log: the first step carries set-up
    return (last.step - first.step) / max(last.wall_time - first.wall_time, 1e-9)


def fit(clip: Path, run: Path, steps: int, env: dict, overrides: list[str], wait: bool = True):
    shutil.rmtree(run, ignore_errors=True)
    cmd = [HOIRECON, "fit", "--config", str(REPO / "configs/fit/demo.yaml"), f"clip={clip}", f"run_dir={run}"]
    cmd += [f"trainer.max_steps={steps}", *COMMON, *overrides]
    full_env = {**os.environ, **env}
    if not wait:
        return subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(cmd, env=full_env, check=True, stdout=subprocess.DEVNULL)
    return steps_per_second(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "bench-load"))
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    out = Path(args.out)
    clip = out / "demo-mug"
    if not clip.exists():
        subprocess.run([HOIRECON, "synth", "clip", "--category", "mug", "--out", str(clip)], check=True)
    names = [v for v in args.variants.split(",") if v]
    rows = {}
    for name in names:
        env, overrides = VARIANTS[name]
        alone = fit(clip, out / f"{name}-alone", args.steps, env, overrides)
        competitor = fit(clip, out / "competitor", 100000, {}, ["trainer.threads=2"], wait=False)
        time.sleep(15)  # past its set-up
        try:
            beside = fit(clip, out / f"{name}-beside", args.steps, env, overrides)
        finally:
            competitor.send_signal(signal.SIGKILL)
            competitor.wait()
        rows[name] = (alone, beside)
    print(f"fit speed, steps/s ({args.steps} steps; the competitor: a 2-thread fit of the same clip)")
    print(f"{'variant':<10}{'alone':>8}{'beside':>8}{'slowdown':>10}")
    for name, (alone, beside) in rows.items():
        print(f"{name:<10}{alone:>8.2f}{beside:>8.2f}{alone / beside:>9.1f}x")
    summary = {f"slowdown_{k}": round(a / b, 2) for k, (a, b) in rows.items()}
    summary.update({f"alone_{k}": round(a, 2) for k, (a, _) in rows.items()})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
