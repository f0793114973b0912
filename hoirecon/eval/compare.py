"""``hoirecon compare``: a grid of fit variants over clips, run as separate processes, then tabulated.

Each run is ``hoirecon.api.fit_clip`` in a worker process of its own (a crash or a killed worker
costs one run), in ``run_dir/<variant>/<clip>``, with its output in that folder's ``fit.log``. A
run is finished when its ``compare.json`` exists (written after the fit ends cleanly, with its wall
time); a started but unfinished run is resumed from its checkpoint.
So a comparison resumes where it stopped, and ``--shard i/n`` splits the runs over cluster jobs.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import multiprocessing
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from hoirecon.errors import DataError, HoireconError
from hoirecon.schema import CompareConfig
from hoirecon.utils.io import atomic_write_text
from hoirecon.utils.stats import mean_finite

#: A failed run's error, in its folder until the run finishes (``record_outcome``).
FAILED = "failed.json"


@dataclass
class Job:
    variant: str
    overrides: list[str]
    clip: Path
    run_dir: Path

    @property
    def done(self) -> bool:
        return (self.run_dir / "compare.json").is_file()


def variant_grid(variants: dict[str, list], named: dict[str, list[str]] | None = None) -> list[tuple[str, list[str]]]:
    """Every combination of the variant values: (name, overrides); name like ``sdf.type=mlp,prior.type=none``.

    ``named`` (``named_variants:``) is one more axis whose values are whole override sets, for settings
    that only make sense together (a prior and its weighting): its name leads, ``x0,seed=1``."""
    axes: list[list[tuple[str, list[str]]]] = []
    if named:
        axes.append([(name, list(overrides)) for name, overrides in named.items()])
    for key, values in variants.items():
        short = key.split(".", 1)[-1] if key.count(".") > 1 else key
        axes.append([(f"{short}={v}", [f"{key}={v}"]) for v in values])
    if not axes:
        return [("base", [])]
    return [
        (",".join(name for name, _ in combo), [o for _, overrides in combo for o in overrides])
        for combo in itertools.product(*axes)
    ]


def clip_folders(cfg: CompareConfig, convert: bool = True) -> list[Path]:
    """The comparison's clips: listed folders, a manifest's, and HOI4D sequences (converted once)."""
    clips = [Path(c) for c in cfg.clips]
    if cfg.manifest:
        manifest = Path(cfg.manifest)
        if not manifest.is_file():
            raise DataError(f"{manifest}: manifest not found", hint="hoirecon synth split --out ... writes one")
        names = [line.strip() for line in manifest.read_text().splitlines() if line.strip()]
        clips += [manifest.parent / name for name in names]
    if cfg.hoi4d.ids:
        if not cfg.hoi4d.root:
            raise DataError("hoi4d.root is required: the folder of the HOI4D release", hint="add hoi4d.root=/path")
        for seq in cfg.hoi4d.ids:
            out = Path(cfg.run_dir) / "clips" / seq.replace("/", "_")
            if convert and not out.exists():
                _convert_hoi4d(cfg, seq, out)
            clips.append(out)
    missing = [c for c in clips if not c.is_dir()]
    if missing:
        raise DataError(f"{missing[0]}: clip folder not found ({len(missing)} of {len(clips)} missing)")
    if not clips:
        raise DataError("the comparison names no clips (clips:, manifest: or hoi4d.ids:)")
    return clips


def _convert_hoi4d(cfg: CompareConfig, seq: str, out: Path) -> None:
    from hoirecon.data.formats.hoirecon import write_clip
    from hoirecon.registry import build

    spec = {"type": "hoi4d", "root": cfg.hoi4d.root, "frames": cfg.hoi4d.frames, "size": cfg.hoi4d.size}
    write_clip(build("clip_format", spec).load(seq), out)


def plan(cfg: CompareConfig, shard: tuple[int, int] = (0, 1)) -> list[Job]:
    """Every (variant, clip) run, in a fixed order; only shard i of n (every n-th run from the i-th)."""
    clips = clip_folders(cfg)
    names = [c.name for c in clips]
    if len(set(names)) != len(names):
        raise DataError("two clips share a folder name; runs are named after it")
    jobs = [
        Job(variant, overrides, clip, Path(cfg.run_dir) / variant / clip.name)
        for variant, overrides in variant_grid(cfg.variants, cfg.named_variants)
        for clip in clips
    ]
    i, n = shard
    return jobs[i::n]


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise HoireconError(f"--shard must look like i/n (e.g. 0/4), got '{text}'") from None
    if not 0 <= i < n:
        raise HoireconError(f"--shard {text}: need 0 <= i < n")
    return i, n


def fit_request(job: Job, cfg: CompareConfig, threads: int) -> dict:
    """What one run's fit is asked to do: resume the run when it was started before (with or without a
    checkpoint yet), else start it from the comparison's fit config. Decided where the fit runs, at the
    moment it starts, so that a retried run resumes."""
    common = {"trainer.threads": threads, "trainer.progress_bar": False}
    if (job.run_dir / "config.yaml").is_file():
        return {"resume": str(job.run_dir), "overrides": [], "keys": common}
    overrides = [f"clip={job.clip}", f"run_dir={job.run_dir}", *cfg.overrides, *job.overrides]
    return {"config": cfg.fit_config, "overrides": overrides, "keys": common}


def run_job(job: Job, cfg: CompareConfig, threads: int) -> tuple[Job, str]:
    """Run (or resume) one fit in a worker process; returns the job and '' or an error line."""
    request = fit_request(job, cfg, threads)
    job.run_dir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state shared with the driver
    receive, send = context.Pipe(duplex=False)
    start = time.perf_counter()
    worker = context.Process(target=_fit_worker, args=(request, str(job.run_dir / "fit.log"), send), daemon=True)
    worker.start()
    send.close()
    try:
        error = receive.recv()
    except EOFError:  # the worker died without a word (killed, out of memory)
        error = None
    worker.join()
    if error is None and worker.exitcode != 0:
        error = f"the fit's worker process exited with code {worker.exitcode}"
    record_outcome(job, error or "", time.perf_counter() - start)  # a resumed run counts from its resume
    return job, error or ""


def record_outcome(job: Job, error: str, seconds: float) -> None:
    """A finished run's ``compare.json`` (its wall time), or a failed run's ``failed.json`` (its error,
    tabulated until the run finishes on a later try)."""
    failed = job.run_dir / FAILED
    if error:
        atomic_write_text(failed, json.dumps({"error": error, "variant": job.variant}))
        return
    atomic_write_text(job.run_dir / "compare.json", json.dumps({"seconds": seconds, "variant": job.variant}))
    failed.unlink(missing_ok=True)


def fit_in_this_process(request: dict, log_path: str) -> str:
    """Run one fit here, everything it prints appended to ``log_path``; '' when done, else the error line.

    The process's own output goes to the log for good: call it in a process of its own (a spawned
    worker, a Ray worker used once)."""
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)  # everything the fit prints, Lightning's and torch's too, goes to the log
        os.dup2(log.fileno(), 2)
        from hoirecon.api import fit_clip
        from hoirecon.errors import HoireconError
        from hoirecon.utils.quiet import quiet_output

        quiet_output(False)
        print(f"fit worker: process {os.getpid()} on {socket.gethostname()}", flush=True)
        try:
            fit_clip(
                request.get("config"),
                resume=request.get("resume"),
                overrides=request["overrides"],
                say=lambda message: print(message, flush=True),  # where a resume continues, each output stage
                **request["keys"],
            )
            message = ""
        except HoireconError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure of one run is reported, the grid goes on
            import traceback

            traceback.print_exc()
            message = f"{type(exc).__name__}: {exc}"
        print(message or "done", flush=True)
    return message


def _fit_worker(request: dict, log_path: str, send) -> None:
    """In a spawned worker: the fit, then '' (done) or the error line down ``send``."""
    send.send(fit_in_this_process(request, log_path))


def run_all(
    jobs: list[Job],
    cfg: CompareConfig,
    parallel: int,
    advance=None,
    threads: int = 0,
) -> list[tuple[Job, str]]:
    """Run every unfinished job, ``parallel`` at a time, with ``threads`` each (0: the cores split between them)."""
    todo = [j for j in jobs if not j.done]
    threads = threads or max(1, (os.cpu_count() or 1) // max(parallel, 1))
    failures = []
    with ThreadPoolExecutor(max(parallel, 1)) as pool:
        for job, error in pool.map(lambda j: run_job(j, cfg, threads), todo):
            if error:
                failures.append((job, error))
            if advance:
                advance(1)
    return failures


# -- tables ---------------------------------------------------------------------------------------


def collect(cfg: CompareConfig) -> list[dict]:
    """One row per finished or failed run: variant, clip, category, minutes, the configured metrics and
    ``error`` ('' for a finished run; a failed one has NaN minutes and metrics)."""
    rows = []
    for job in plan(cfg):
        failed = job.run_dir / FAILED
        if not job.done and not failed.is_file():
            continue
        meta = job.clip / "meta.yaml"
        category = (yaml.safe_load(meta.read_text()) or {}).get("category", "") if meta.is_file() else ""
        row = {"variant": job.variant, "clip": job.clip.name, "category": category}
        if job.done:
            info = json.loads((job.run_dir / "compare.json").read_text())
            metrics_path = job.run_dir / "metrics.json"
            metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
            row.update({"minutes": info["seconds"] / 60, **{key: metrics.get(key, math.nan) for key in cfg.metrics}})
            row["error"] = ""
        else:
            row.update({"minutes": math.nan, **{key: math.nan for key in cfg.metrics}})
            row["error"] = json.loads(failed.read_text())["error"]
        rows.append(row)
    return rows


def finished(rows: list[dict]) -> list[dict]:
    """The rows of runs that finished (``collect``'s failed runs left out)."""
    return [r for r in rows if not r.get("error")]


def write_csv(rows: list[dict], path: Path) -> Path:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def markdown_table(rows: list[dict], metrics: list[str]) -> str:
    """Mean per variant, then mean per variant and category (finished runs); every column names its
    convention. Failed runs are listed after, with their errors."""
    failed = [r for r in rows if r.get("error")]
    rows = finished(rows)
    columns = ["minutes", *metrics]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    lines = ["| variant | runs | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        cells = [f"{mean_finite([r[c] for r in mine]):.3f}" for c in columns]
        lines.append(f"| {v} | {len(mine)} | " + " | ".join(cells) + " |")
    categories = sorted({r["category"] for r in rows})
    if len(categories) > 1:
        lines += ["", "| variant | category | runs | " + " | ".join(metrics) + " |"]
        lines.append("|---|---|---:|" + "---:|" * len(metrics))
        for v in variants:
            for c in categories:
                mine = [r for r in rows if r["variant"] == v and r["category"] == c]
                if mine:
                    cells = [f"{mean_finite([r[m] for r in mine]):.3f}" for m in metrics]
                    lines.append(f"| {v} | {c} | {len(mine)} | " + " | ".join(cells) + " |")
    if failed:
        lines += ["", f"Failed runs ({len(failed)}; rerun the comparison to retry them):", ""]
        lines += ["| variant | clip | error |", "|---|---|---|"]
        lines += [f"| {r['variant']} | {r['clip']} | {r['error'].replace('|', '/')} |" for r in failed]
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], metrics: list[str], out: Path) -> str:
    """results.csv, results.md (returned) and the plots: a bar chart per metric, quality against time."""
    from hoirecon.eval.plots import bar_chart, scatter

    write_csv(rows, out / "results.csv")
    table = markdown_table(rows, metrics)
    atomic_write_text(out / "results.md", table)
    rows = finished(rows)
    by_variant: dict[str, list[dict]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    for metric in metrics:
        slug = "".join(c if c.isalnum() else "_" for c in metric).strip("_")
        bars = {v: mean_finite([r[metric] for r in rs]) for v, rs in by_variant.items()}
        bar_chart(bars, metric, out / f"plot_{slug}.png")
    quality = metrics[1] if len(metrics) > 1 else metrics[0]
    points = {
        v: (mean_finite([r["minutes"] for r in rs]), mean_finite([r[quality] for r in rs]))
        for v, rs in by_variant.items()
    }
    scatter(points, f"{quality} against minutes per run", "minutes", quality, out / "plot_quality_time.png")
    return table
