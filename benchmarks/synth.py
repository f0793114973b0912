"""Synthetic data throughput: clips per minute and prior-training samples per second.

Clips: `hoirecon synth clip` at its defaults (24 frames, 128 px, full arc) for six categories, written
to a temporary folder (object generation, grasp, rendering and PNG writing all counted), one process.
Prior samples: `hoirecon synth prior-data` (both resolutions, 32 and 64, per sample) with 1 and 2
worker processes, 400 samples each, process start-up included.
Usage: benchmarks/synth.py. Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.data.synth.prior_data import PriorDataConfig, generate
from hoirecon.registry import build
from hoirecon.runtime import configure_cpu

CATEGORIES = ("mug", "bottle", "kettle", "bowl", "knife", "toycar")


def main() -> None:
    configure_cpu(2)
    hand = build("hand_model", "mano")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip_seconds = []
        for category in CATEGORIES:
            start = time.perf_counter()
            write_clip(make_clip(SynthClipConfig(category=category), hand), Path(tmp) / category)
            clip_seconds.append(time.perf_counter() - start)
            rows.append((f"clip {category}", clip_seconds[-1]))
        prior = {}
        for workers in (1, 2):
            cfg = PriorDataConfig(n=400, shard_size=100, workers=workers, seed=workers)
            start = time.perf_counter()
            generate(cfg, Path(tmp) / f"prior{workers}")
            prior[workers] = cfg.n / (time.perf_counter() - start)
    clips_per_minute = 60 * len(clip_seconds) / sum(clip_seconds)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"synthetic data throughput, {torch.get_num_threads()} threads, load {load}")
    print(f"{'what':<22}{'seconds':>9}")
    for name, sec in rows:
        print(f"{name:<22}{sec:9.2f}")
    print(f"\nclips per minute (24 frames, 128 px): {clips_per_minute:.1f}")
    for workers, rate in prior.items():
        print(f"prior samples per second (32 + 64 px), {workers} worker(s): {rate:.1f}")
    print(json.dumps({"clips_per_minute": round(clips_per_minute, 1), "prior_samples_per_second": round(prior[2], 1)}))


if __name__ == "__main__":
    main()
