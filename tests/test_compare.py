"""hoirecon compare end to end on 2 tiny variants x 2 tiny clips, resuming a half-finished comparison."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from hoirecon.cli import main
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.errors import HoireconError
from hoirecon.eval.compare import markdown_table, parse_shard, variant_grid

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "trainer.max_steps=2", "rays.n_rays=64", "rays.contour_points=16", "rays.eikonal_points=16",
    "object.export_resolution=16", "output.preview_size=32", "output.preview_frames=1",
    "object.estimator.resolution=32",  # the occupancy grid's 64^3 hash-grid evaluations were half a fit
]  # fmt: skip


def test_variant_grid_and_shards():
    grid = variant_grid({"object.sdf.type": ["mlp", "hashgrid"], "prior.type": ["none"]})
    assert [name for name, _ in grid] == ["sdf.type=mlp,prior.type=none", "sdf.type=hashgrid,prior.type=none"]
    assert grid[1][1] == ["object.sdf.type=hashgrid", "prior.type=none"]
    sets = {"off": ["prior.type=none"], "x0": ["prior.type=d", "prior.t_min=0.7"]}
    named = variant_grid({"trainer.seed": [0, 1]}, sets)
    names = ["off,trainer.seed=0", "off,trainer.seed=1", "x0,trainer.seed=0", "x0,trainer.seed=1"]
    assert [name for name, _ in named] == names
    assert named[3][1] == ["prior.type=d", "prior.t_min=0.7", "trainer.seed=1"]
    assert variant_grid({}, {"a": ["x=1"]}) == [("a", ["x=1"])] and variant_grid({}) == [("base", [])]
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    with pytest.raises(HoireconError, match="i/n"):
        parse_shard("x")
    with pytest.raises(HoireconError, match="0 <= i < n"):
        parse_shard("3/3")


def test_markdown_table_means_per_variant_and_category():
    rows = [
        {"variant": "a", "clip": "m1", "category": "mug", "minutes": 1.0, "f": 0.5},
        {"variant": "a", "clip": "b1", "category": "bottle", "minutes": 3.0, "f": float("nan")},
        {"variant": "b", "clip": "m1", "category": "mug", "minutes": 2.0, "f": 0.9},
    ]
    table = markdown_table(rows, ["f"])
    assert "| a | 2 | 2.000 | 0.500 |" in table  # NaN (no ground truth) left out of the mean
    assert "| b | mug | 1 | 0.900 |" in table


@pytest.mark.slow  # four fits, each in its own process
def test_compare_runs_the_grid_and_resumes(tmp_path, capsys):
    for category, seed in (("box", 0), ("ball", 1)):
        cfg = SynthClipConfig(category=category, seed=seed, frames=3, resolution=32, arc_degrees=60)
        write_clip(make_clip(cfg), tmp_path / "clips" / f"{category}{seed}")
    (tmp_path / "clips" / "manifest.txt").write_text("box0\nball1\n")
    config = {
        "fit_config": str(REPO / "configs/fit/demo.yaml"),
        "manifest": str(tmp_path / "clips" / "manifest.txt"),
        "variants": {"object.sdf.type": ["mlp", "hashgrid"]},
        "overrides": TINY,
        "run_dir": str(tmp_path / "cmp"),
    }
    (tmp_path / "cmp.yaml").write_text(yaml.safe_dump(config))
    # half of it (one shard of two), then the whole: the finished half is not run again
    assert main(["compare", "--config", str(tmp_path / "cmp.yaml"), "--shard", "0/2", "--jobs", "2"]) == 0
    done = sorted(p.parent for p in (tmp_path / "cmp").rglob("compare.json"))
    assert len(done) == 2
    stamps = {p: (p / "compare.json").stat().st_mtime_ns for p in done}
    capsys.readouterr()
    assert main(["compare", "--config", str(tmp_path / "cmp.yaml"), "--jobs", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 runs in this shard (2 finished already)" in out
    assert all((p / "compare.json").stat().st_mtime_ns == t for p, t in stamps.items())
    second = [p.parent for p in (tmp_path / "cmp").rglob("compare.json") if p.parent not in stamps]
    assert len(second) == 2
    assert all(yaml.safe_load((p / "config.yaml").read_text())["trainer"]["threads"] == 1 for p in second)
    with open(tmp_path / "cmp" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["variant"] for r in rows} == {"sdf.type=mlp", "sdf.type=hashgrid"}
    assert {r["category"] for r in rows} == {"box", "ball"}
    assert all(0 <= float(r["object/f@10mm[rigid]"]) <= 1 for r in rows)
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "| sdf.type=mlp | 2 |" in table and "| sdf.type=hashgrid | ball | 1 |" in table
    assert (tmp_path / "cmp" / "plot_quality_time.png").is_file() and (tmp_path / "cmp" / "report.html").is_file()
    assert len(list((tmp_path / "cmp").glob("plot_object*.png"))) == 4


def test_compare_needs_the_hoi4d_root(tmp_path, capsys):
    code = main(["compare", "--config", str(REPO / "configs/compare/hoi4d.yaml"), f"run_dir={tmp_path}"])
    assert code == 1 and "hoi4d.root is required" in capsys.readouterr().err


def test_the_prior_ablation_runs_score_distillation_in_every_prior_variant():
    """The bug behind the first ablation: a beta gate kept SDS off for a whole 800-step mug fit, so the
    prior variants equalled the no-prior fit. With beta stuck at its start (1 cm), every variant with
    a prior still distils on at least 40% of its guidance steps, at the ablation's own budget."""
    from hoirecon.config import compose, validate
    from hoirecon.fit.objective import sharp_enough
    from hoirecon.schema import CompareConfig, FitConfig

    ablation = validate(compose(REPO / "configs/compare/prior-ablation.yaml", []), CompareConfig)
    for name, overrides in ablation.named_variants.items():
        fit = validate(compose(REPO / ablation.fit_config, [*ablation.overrides, *overrides]), FitConfig)
        g, steps = fit.guidance, fit.trainer.max_steps
        assert steps == 800
        due = [s for s in range(g.warmup_steps, steps) if s % g.every_n_steps == 0]
        guided = [s for s in due if sharp_enough(g, s, steps, beta=0.01)]
        if fit.prior["type"] == "none":
            continue
        # every prior variant spells out what the defaults may move, so that it stays what it says
        spelled = {o.split("=")[0] for o in overrides}
        assert {"prior.weight", "prior.weighting", "guidance.unseen_angle_deg", "prior.checkpoint"} <= spelled, name
        assert fit.loss.sds != 0, name
        assert len(guided) >= 0.4 * len(due), name
        assert not sharp_enough(g, g.warmup_steps, steps, beta=0.01)  # ... and not before beta or start_by
        assert sharp_enough(g, g.warmup_steps, steps, beta=g.max_beta)


def test_the_ray_backend_without_ray_is_one_line(monkeypatch):
    import sys

    from hoirecon.eval.compare_ray import run_all_ray
    from hoirecon.schema import CompareConfig

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(HoireconError, match="--backend ray needs Ray") as info:
        run_all_ray([], CompareConfig())
    assert "[ray]" in info.value.hint
