"""CLI: help everywhere, list, doctor, one-line errors with the right exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hoirecon.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "fit" / "demo.yaml")
SUBCOMMANDS = ["fit", "train-prior", "synth", "data", "eval", "compare", "export", "list", "doctor"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's --help / usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_every_subcommand_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == SUBCOMMANDS


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: hoirecon {command}")


KINDS = {"synth": ["clip", "split", "prior-data"], "data": ["check", "video", "masks", "hoi4d"]}


@pytest.mark.parametrize("command,kind", [(c, k) for c, kinds in KINDS.items() for k in kinds])
def test_each_kind_of_synth_and_data_has_its_own_help(capsys, command, kind):
    code, out, _ = run(capsys, command, kind, "--help")
    assert code == 0 and out.startswith(f"usage: hoirecon {command} {kind}")
    present = {
        "clip": ["--category", "--overwrite", "--arc"],
        "split": ["--preset", "--arc"],
        "prior-data": ["--n N", "--workers", "--resolutions"],
        "check": ["--format"],
        "video": ["--object-box", "--fov", "--mirror", "--stride"],
        "masks": ["--object-box", "--fov", "--overwrite"],
        "hoi4d": ["--root", "--seq", "--frames"],
    }
    for flag in present[kind]:
        assert flag in out, flag
    absent = {  # options of other kinds of work
        "clip": ["--preset", "--workers", "--object-box", "--root"],
        "split": ["--overwrite", "--workers", "--mirror"],
        "prior-data": ["--frames", "--arc", "--preset", "--overwrite"],
        "check": ["--object-box", "--mirror", "--root", "--out"],
        "video": ["--root", "--seq", "--format", "--overwrite"],
        "masks": ["--mirror", "--stride", "--out", "--root"],
        "hoi4d": ["--object-box", "--mirror", "--format", "--fov"],
    }
    for flag in absent[kind]:
        assert flag not in out, flag


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "check", "clip", "--mirror"],  # a video option on check
        ["data", "video", "my.mp4", "--out", "x", "--category", "mug"],  # no --object-box
        ["synth", "prior-data", "--out", "x", "--arc", "40"],  # prior-data has no camera arc
        ["synth", "clip", "--out", "x", "--preset", "narrow12"],  # a split option on clip
        ["data", "hoi4d", "--root", "r", "--seq", "s", "--out", "o", "--object-box", "1,2,3,4"],
    ],
)
def test_an_option_of_another_kind_of_work_is_a_usage_error(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(f"error: hoirecon {argv[0]} {argv[1]}: ") and "hint: " in err


def test_list_shows_every_role_with_sources(capsys):
    from hoirecon.registry import ROLES

    code, out, _ = run(capsys, "list")
    assert code == 0
    for role in ROLES:
        assert f"\n{role}\n" in f"\n{out}"
    assert "none" in out and "built-in" in out
    assert re.search(r"\n  mask-area +plugin hoirecon-example \(example = hoirecon_example\)\n", out)
    assert re.search(r"\n  smooth-surface +plugin hoirecon-smooth \(smooth = hoirecon_smooth\)\n", out)
    code, out, _ = run(capsys, "list", "--role", "prior")
    assert out.splitlines()[0] == "prior"
    code, _, err = run(capsys, "list", "--role", "shapes")
    assert code == 1 and err.startswith("error: unknown role 'shapes'")


def test_doctor_reports_versions_and_backends(capsys):
    import torch

    code, out, _ = run(capsys, "doctor")
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith(("cpu", "torch threads")))
    assert lines["torch"].strip() == torch.__version__
    assert "nerfacc cuda" in out and "tinycudann" in out and "built-in hand" in out
    assert lines["mediapipe"].startswith("0.10.21 (data video")  # the video extra is installed for the tests
    from hoirecon.priors.diffusion import DEFAULT_CHECKPOINT

    assert lines["default"].split()[1] == str(DEFAULT_CHECKPOINT)  # the prior a fit loads, not the first file
    gpu = f"cuda:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "the cpu too (no CUDA)"
    assert lines["accelerator"].startswith("cpu (the default)") and gpu in lines["accelerator"]
    assert not any(Path.home().glob(".cache/torch_extensions/*/nerfacc_cuda")), "doctor must not build nerfacc"


def test_unknown_subcommand_is_one_line_and_exit_2(capsys):
    code, out, err = run(capsys, "fitt")
    assert code == 2 and out == ""
    assert err.splitlines()[0].startswith("error: hoirecon: argument COMMAND: invalid choice: 'fitt'")
    assert err.splitlines()[1] == "hint: hoirecon --help"


def test_unknown_override_key_names_it(capsys):
    code, out, err = run(capsys, "fit", "--config", DEMO, "foo.bar=1")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "error: unknown key 'foo' for the fit config. Known keys: plugins, clip, clip_format, run_dir, category, "
        "hand, initializer, object, prior, optim, loss, rays, guidance, output, trainer"
    ]
    # a near miss gets a suggestion, in component sections too
    code, _, err = run(capsys, "fit", "--config", DEMO, "prior.type=diffusion", "prior.weigth=1")
    assert code == 1 and "unknown key 'prior.weigth'" in err and "Did you mean: 'weight'?" in err


def test_bad_override_value_and_component(capsys):
    code, _, err = run(capsys, "fit", "--config", DEMO, "trainer.max_steps=lots")
    assert code == 1 and "'trainer.max_steps'" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, "fit", "--config", DEMO, "prior.type=nope")
    assert code == 1 and err.startswith("error: prior: unknown prior 'nope'; known prior names:")
    code, _, err = run(capsys, "fit", "--config", DEMO, "prior.target_fraction=2")  # the diffusion prior's keys
    assert code == 1 and "unknown key 'prior.target_fraction' for prior 'diffusion'" in err
    code, _, err = run(capsys, "fit", "--config", DEMO, "prior.type=none", "prior.weight=2")  # 'none' has no weight
    assert code == 1 and "unknown key 'prior.weight' for prior 'none'" in err


def test_fit_without_config_and_missing_files(capsys, tmp_path):
    code, _, err = run(capsys, "fit")
    assert code == 1 and err.splitlines()[0] == "error: fit needs --config FILE or --resume RUN_DIR"
    code, _, err = run(capsys, "fit", "--config", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml: config file not found" in err
    code, _, err = run(capsys, "fit", "--resume", str(tmp_path))
    assert code == 1 and "not a run folder (no config.yaml)" in err


def test_debug_shows_the_traceback(capsys):
    from hoirecon.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["fit", "--config", DEMO, "foo=1", "--debug"])


@pytest.mark.slow  # a fresh process
def test_console_script_runs():
    exe = Path(sys.executable).with_name("hoirecon")  # installed beside the interpreter by `pip install -e .`
    assert exe.is_file()
    result = subprocess.run([exe, "fit", "--config", DEMO, "foo.bar=1"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "'foo'" in result.stderr


def test_list_and_doctor_report_a_broken_plugin(capsys, monkeypatch):
    import hoirecon.registry as registry_module
    from hoirecon.registry import BUILTIN_MODULES, Registry

    class BrokenEntryPoint:
        name, value = "broken", "broken_plugin_pkg"
        dist = type("Dist", (), {"name": "hoirecon-broken"})()

        def load(self):
            raise ImportError("No module named 'torch_scatter'")

    fresh = Registry(BUILTIN_MODULES, find_entry_points=lambda group: [BrokenEntryPoint()])
    monkeypatch.setattr(registry_module, "REGISTRY", fresh)
    code, out, err = run(capsys, "list")
    assert code == 0
    assert "warning: hoirecon plugin hoirecon-broken (broken = broken_plugin_pkg) failed to load" in err
    assert out.splitlines()[-2:] == [
        "plugins that failed to load",
        "  hoirecon-broken (broken = broken_plugin_pkg): ImportError: No module named 'torch_scatter'",
    ]
    code, out, _ = run(capsys, "doctor")
    assert "plugins failed  hoirecon-broken (broken = broken_plugin_pkg): ImportError" in out


def test_quiet_output_reaches_spawned_workers(monkeypatch):
    """Workers spawned by prior-data and compare import numpy and torch before any code of ours runs:
    the warning filter goes to them through the environment, unless --debug."""
    import warnings

    from hoirecon.utils.quiet import quiet_output

    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    with warnings.catch_warnings():
        quiet_output(debug=True)
        assert "PYTHONWARNINGS" not in os.environ
        quiet_output(debug=False)
    assert os.environ["PYTHONWARNINGS"] == "ignore"
    child = subprocess.run(
        [sys.executable, "-c", "import warnings; warnings.warn('numpy says so', UserWarning)"],
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0 and "numpy says so" not in child.stderr


def test_synth_split_category_without_a_mesh_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "synth", "split", "--category", "mug", "--frames", "2", "--out", str(tmp_path / "s"))
    assert code == 1
    assert err.splitlines()[0] == (
        "error: synth split: --category names the --object-mesh's category; a split's clips have their own"
    )
    assert not (tmp_path / "s").exists()  # nothing written
