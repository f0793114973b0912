"""`hoirecon compare --backend ray` on a real local Ray instance: the local backend's numbers, resumes,
and a worker killed mid-fit (retried from its checkpoint, or reported as failed)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml

from hoirecon.cli import main
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip

from .test_compare import TINY

REPO = Path(__file__).resolve().parents[1]
METRICS = ["object/f@10mm[rigid]", "object/chamfer_cm2[rigid]", "hand/mpjpe_mm[root]"]

pytestmark = pytest.mark.slow  # fits in Ray worker processes


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance in this test process (2 CPUs), which the backend finds and leaves running; its
    workers at the tests' own priority (Ray lowers theirs to nice 15 by default, and a busy machine
    then starves them)."""
    niceness = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if niceness is None:
        os.environ.pop("RAY_worker_niceness")
    else:
        os.environ["RAY_worker_niceness"] = niceness


def _grid(tmp_path: Path, name: str, overrides: list[str], seeds=(0, 1), clips=("box0", "ball1"), **ray_cfg) -> Path:
    for clip in clips:
        folder = tmp_path / "clips" / clip
        if not folder.is_dir():
            cfg = SynthClipConfig(category=clip[:-1], seed=int(clip[-1]), frames=3, resolution=32, arc_degrees=60)
            write_clip(make_clip(cfg), folder)
    config = {
        "fit_config": str(REPO / "configs/fit/demo.yaml"),
        "clips": [str(tmp_path / "clips" / c) for c in clips],
        "variants": {"trainer.seed": list(seeds)},
        "overrides": [*TINY, "prior.type=none", *overrides],
        "run_dir": str(tmp_path / name),
        "metrics": METRICS,
        "ray": {"num_cpus": 1, **ray_cfg},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(run_dir: Path) -> dict[tuple[str, str], dict]:
    with open(run_dir / "results.csv") as f:
        return {(r["variant"], r["clip"]): r for r in csv.DictReader(f)}


def test_ray_backend_gives_the_local_numbers_and_resumes(tmp_path, capsys, local_ray):
    local = _grid(tmp_path, "local", [])
    on_ray = _grid(tmp_path, "ray", [])
    assert main(["compare", "--config", str(local), "--jobs", "2", "--threads", "1"]) == 0
    assert main(["compare", "--config", str(on_ray), "--backend", "ray", "--threads", "1"]) == 0
    assert "4 runs in this shard (0 finished already), as Ray tasks" in capsys.readouterr().out
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert len(a) == 4 and a.keys() == b.keys()
    for key in a:
        assert b[key]["error"] == ""
        for metric in METRICS:
            assert float(a[key][metric]) == pytest.approx(float(b[key][metric]), rel=1e-6, abs=1e-9), (key, metric)
    # the same command again: nothing is redone
    done = sorted((tmp_path / "ray").rglob("compare.json"))
    stamps = [p.stat().st_mtime_ns for p in done]
    assert main(["compare", "--config", str(on_ray), "--backend", "ray"]) == 0
    assert "4 runs in this shard (4 finished already)" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in done] == stamps
    log = (done[0].parent / "fit.log").read_text()
    assert f"process {os.getpid()}" not in log and "fit worker: process" in log  # ran in a Ray worker


def _kill_mid_fit(run_dir: Path, after_step: int, timeout: float = 240.0) -> threading.Thread:
    """In the background: once ``run_dir`` has a checkpoint past ``after_step``, SIGKILL the worker
    process its fit.log names last (the one fitting it now)."""

    def worker_pid() -> int | None:
        log = run_dir / "fit.log"
        lines = [x for x in log.read_text().splitlines() if "fit worker: process" in x] if log.is_file() else []
        return int(lines[-1].split("process ")[1].split()[0]) if lines else None

    def kill() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            steps = [int(p.stem[4:]) for p in (run_dir / "checkpoints").glob("step*.ckpt")]
            pid = worker_pid()
            if pid and steps and max(steps) > after_step:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_killed_worker_is_retried_from_its_checkpoint_or_reported(tmp_path, capsys, local_ray):
    slow = ["trainer.max_steps=400", "trainer.checkpoint_every_n_steps=20"]
    # no retries: the killed run is tabulated as failed, with its error; the other finishes
    config = _grid(tmp_path, "grid", slow, seeds=(0,), max_retries=0)
    killed = tmp_path / "grid" / "trainer.seed=0" / "box0"
    killer = _kill_mid_fit(killed, after_step=0)
    assert main(["compare", "--config", str(config), "--backend", "ray", "--threads", "1"]) == 1
    killer.join()
    rows = _rows(tmp_path / "grid")
    assert "died" in rows[("trainer.seed=0", "box0")]["error"] and rows[("trainer.seed=0", "ball1")]["error"] == ""
    assert "Failed runs (1" in (tmp_path / "grid" / "results.md").read_text()
    assert "| trainer.seed=0 | 1 |" in (tmp_path / "grid" / "results.md").read_text()  # means over finished runs
    other = tmp_path / "grid" / "trainer.seed=0" / "ball1" / "compare.json"
    stamp = other.stat().st_mtime_ns
    # rerun with a retry: it resumes from its checkpoint, is killed again, and resumes again to the end
    config = _grid(tmp_path, "grid", slow, seeds=(0,), max_retries=1)
    reached = max(int(p.stem[4:]) for p in (killed / "checkpoints").glob("step*.ckpt"))
    killer = _kill_mid_fit(killed, after_step=reached)
    capsys.readouterr()
    assert main(["compare", "--config", str(config), "--backend", "ray", "--threads", "1"]) == 0
    killer.join()
    assert "2 runs in this shard (1 finished already)" in capsys.readouterr().out
    log = (killed / "fit.log").read_text()
    assert log.count("resuming") == 2 and log.count("fit worker: process") == 3
    assert other.stat().st_mtime_ns == stamp and not (killed / "failed.json").exists()
    rows = _rows(tmp_path / "grid")
    assert all(r["error"] == "" for r in rows.values()) and len(rows) == 2
    assert json.loads((killed / "metrics.json").read_text())["object/f@10mm[rigid]"] >= 0
