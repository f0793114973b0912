"""The demo fit, with the MLP and the hash-grid backbones: time and quality against ground truth.

Makes the demo clip (`hoirecon synth clip --category mug`: seed 0, 24 frames, 128 px, full arc) if
needed, then runs `hoirecon fit --config configs/fit/demo.yaml` per variant (2 threads) and reads
each run's metrics.json. Time per step is the whole command's wall time over its steps (set-up and
output writing included, so an upper bound). Object scores are in the DiffHOI convention (10k
points, rigid alignment from 10 starts); MPJPE is root-relative at the index MCP, camera frame.
Also the grasp: penetration of the fitted hands into the fitted object (mean over frames of the
deepest vertex, and the deepest) and the contact ratio. Usage: benchmarks/fit.py [--out runs/bench-fit].
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOIRECON = str(Path(sys.executable).parent / "hoirecon")
# penetration (mean over frames of the deepest hand vertex inside the object, and the deepest), and
# the share of frames whose hand is within 5 mm of the object (docs/compare.md)
CONTACT_KEYS = ["contact/penetration_mm", "contact/penetration_max_mm", "contact/contact_ratio@5mm"]
VARIANTS = {
    "mlp": [],
    "hashgrid": ["object.sdf.type=hashgrid", "optim.sdf.lr=5e-3"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "bench-fit"))
    out = Path(parser.parse_args().out)
    clip = out / "demo-mug"
    if not clip.exists():
        subprocess.run([HOIRECON, "synth", "clip", "--category", "mug", "--out", str(clip)], check=True)
    steps = 1500
    results = {}
    for name, overrides in VARIANTS.items():
        run = out / name
        shutil.rmtree(run, ignore_errors=True)
        cmd = [HOIRECON, "fit", "--config", str(REPO / "configs/fit/demo.yaml"), f"clip={clip}", f"run_dir={run}"]
        cmd += ["trainer.threads=2", "trainer.progress_bar=false", f"trainer.max_steps={steps}", *overrides]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        results[name] = {"seconds": seconds, **json.loads((run / "metrics.json").read_text())}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"demo fit (mug, 24 frames, 128 px, {steps} steps), 2 threads, load {load}")
    keys = ["object/f@5mm[rigid]", "object/f@10mm[rigid]", "object/chamfer_cm2[rigid]", "object/f@10mm[hand_relative]"]
    header = ("variant", "min", "ms/step", "F@5", "F@10", "CD cm2", "F@10 hr", "MPJPE init", "fit", "pen mm", "max")
    header += ("contact",)
    widths = (10, 6, 9, 7, 7, 8, 9, 12, 6, 8, 6, 9)
    print("".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, widths))))
    for name, r in results.items():
        f5, f10, cd, hr = (r[k] for k in keys)
        mp0, mp1 = r["hand_init/mpjpe_mm[root]"], r["hand/mpjpe_mm[root]"]
        pen, deepest, contact = (r[k] for k in CONTACT_KEYS)
        print(
            f"{name:<10}{r['seconds'] / 60:6.2f}{r['seconds'] / steps * 1000:9.0f}{f5:7.3f}{f10:7.3f}{cd:8.3f}"
            f"{hr:9.3f}{mp0:12.2f}{mp1:6.2f}{pen:8.2f}{deepest:6.1f}{contact:9.2f}"
        )
    mlp, hashgrid = results["mlp"], results["hashgrid"]
    summary = {
        "demo_minutes": round(mlp["seconds"] / 60, 2),
        "demo_f10": round(mlp["object/f@10mm[rigid]"], 3),
        "demo_f5": round(mlp["object/f@5mm[rigid]"], 3),
        "mpjpe_init_mm": round(mlp["hand_init/mpjpe_mm[root]"], 2),
        "mpjpe_fit_mm": round(mlp["hand/mpjpe_mm[root]"], 2),
        "demo_penetration_mm": round(mlp[CONTACT_KEYS[0]], 2),
        "demo_contact_ratio": round(mlp[CONTACT_KEYS[2]], 3),
        "hashgrid_minutes": round(hashgrid["seconds"] / 60, 2),
        "hashgrid_f10": round(hashgrid["object/f@10mm[rigid]"], 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
