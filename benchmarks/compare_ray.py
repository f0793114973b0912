"""What a Ray-backed comparison's driver costs per run, without the fits: memory and time per task.

The driver of ``hoirecon compare --backend ray`` holds one ``Job`` and one task reference per run of the
grid and records each outcome as it arrives (``compare_ray.run_all_ray``). Here the same driver runs
``--runs`` stand-in tasks (each returns at once what a fit's task returns) on a local Ray instance, and
the driver's peak resident memory is read before and after (``ru_maxrss``). The per-run files are
measured on finished runs if ``--runs-dir`` is given (a comparison's ``run_dir``).

Usage: benchmarks/compare_ray.py [--runs 1000] [--runs-dir runs/bench-prior/compare].
Last line: one JSON object (``driver_mb_per_1000``, ``seconds_per_1000``, ``run_folder_mb``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import ray

from hoirecon.eval import compare_ray
from hoirecon.eval.compare import Job
from hoirecon.schema import CompareConfig


def _stand_in(job: Job, cfg: CompareConfig, threads: int) -> tuple[str, float]:
    return "", 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--runs-dir", help="a comparison's run_dir, for the size of a finished run's folder")
    parser.add_argument("--work", default="/tmp/bench-compare-ray")
    args = parser.parse_args()
    work = Path(args.work)
    cfg = CompareConfig(run_dir=str(work))
    jobs = [Job(f"v{i % 4}", [], work / "clips" / f"c{i}", work / f"v{i % 4}" / f"c{i}") for i in range(args.runs)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    compare_ray._fit_task = _stand_in  # the driver as it is; the fits replaced
    try:
        compare_ray.run_all_ray(jobs[:10], cfg)  # warm-up: workers started, modules loaded
        before, start = peak_mb(), time.perf_counter()
        failures = compare_ray.run_all_ray(jobs[10:], cfg)
        seconds, after = time.perf_counter() - start, peak_mb()
    finally:
        ray.shutdown()
    n = len(jobs) - 10
    assert not failures and all(j.done for j in jobs)
    per_1000 = (after - before) * 1000 / n
    print(f"{'runs':>6}{'driver peak MB before':>24}{'after':>8}{'MB per 1000 runs':>18}{'s per 1000 runs':>17}")
    print(f"{n:>6}{before:>24.0f}{after:>8.0f}{per_1000:>18.1f}{seconds * 1000 / n:>17.1f}")
    summary = {"driver_mb_per_1000": round(per_1000, 1), "seconds_per_1000": round(seconds * 1000 / n, 1)}
    if args.runs_dir:
        folders = [p.parent for p in Path(args.runs_dir).rglob("compare.json")]
        sizes = sorted(folder_mb(f) for f in folders)
        records = sorted(sum((f / n).stat().st_size for n in ("compare.json", "metrics.json")) for f in folders)
        print(f"{len(folders)} finished runs: folder median {sizes[len(sizes) // 2]:.1f} MB, max {sizes[-1]:.1f} MB;")
        print(f"compare.json + metrics.json median {records[len(records) // 2] / 1024:.1f} KB")
        summary["run_folder_mb"] = round(sizes[len(sizes) // 2], 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
