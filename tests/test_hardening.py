"""Bad runs refused before anything is written, and resumes that say what they do (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hoirecon.api import run_config
from hoirecon.cli import main
from hoirecon.errors import ConfigError, DataError, HoireconWarning
from hoirecon.schema import FitConfig, PriorTrainConfig
from hoirecon.systems.common import last_checkpoint, resume_message

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "fit" / "demo.yaml"


def test_a_run_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "run"
    target.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"run_dir .*run: is a file"):
        run_config(FitConfig, DEMO, run_dir=str(target))


def test_a_folder_with_a_started_run_is_refused_for_a_new_run(tmp_path):
    """A run killed before its first checkpoint leaves config.yaml: a new run there would mix two."""
    (tmp_path / "config.yaml").write_text("run_dir: x\n")
    with pytest.raises(DataError, match="already holds a run") as info:
        run_config(FitConfig, DEMO, run_dir=str(tmp_path))
    assert "--resume" in info.value.hint
    message = resume_message(tmp_path, last_checkpoint(tmp_path))
    assert "no checkpoint yet" in message and "step 0" in message


def test_resume_says_the_step_it_continues_from(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 37, "state_dict": {}}, tmp_path / "checkpoints" / "last.ckpt")
    assert resume_message(tmp_path, last_checkpoint(tmp_path)).startswith(f"resuming {tmp_path} from step 37")


def test_a_run_killed_before_its_first_last_checkpoint_resumes_from_its_step_checkpoint(tmp_path):
    """A step checkpoint is written just before last.ckpt: killed between the two, the run has only
    the step checkpoint (and a temporary), and resumes from it rather than from step 0."""
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 20, "state_dict": {}}, tmp_path / "checkpoints" / "step000020.ckpt")
    (tmp_path / "checkpoints" / ".last.x.tmp.ckpt").write_bytes(b"half")
    with pytest.warns(HoireconWarning, match="last.ckpt is missing; using step000020.ckpt"):
        checkpoint = last_checkpoint(tmp_path)
    assert checkpoint.name == "step000020.ckpt" and "from step 20" in resume_message(tmp_path, checkpoint)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_accelerator_without_cuda_is_one_line_before_any_file(tmp_path, capsys, accelerator):
    run_dir = tmp_path / "run"
    rc = main(["fit", "--config", str(DEMO), f"trainer.accelerator={accelerator}", f"run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert rc != 0 and "trainer.accelerator" in err and "no CUDA device" in err and "Traceback" not in err
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.max_steps=-1", "trainer.max_steps"),
        ("trainer.max_steps=0", "trainer.max_steps"),
        ("optim.sdf.lr=-0.001", "optim.sdf.lr"),
        ("optim.cameras.lr=.nan", "optim.cameras.lr"),
        ("optim.final_lr_ratio=0", "optim.final_lr_ratio"),
        ("rays.n_rays=0", "rays.n_rays"),
        ("trainer.checkpoint_every_n_steps=-5", "trainer.checkpoint_every_n_steps"),
        ("trainer.threads=-1", "trainer.threads"),
        ("object.export_resolution=4", "object.export_resolution"),
        ("trainer.devices=0", "trainer.devices"),
    ],
)
def test_config_values_outside_their_range_are_one_line_before_any_file(tmp_path, capsys, override, key):
    run_dir = tmp_path / "run"
    rc = main(["fit", "--config", str(DEMO), override, f"run_dir={run_dir}"])
    err = capsys.readouterr().err
    assert rc != 0 and f"'{key}'" in err and "allowed" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # the error and at most a hint
    assert not run_dir.exists()


def test_every_bad_value_is_named_at_once_across_sections(capsys):
    rc = main(["fit", "--config", str(DEMO), "trainer.max_steps=-1", "optim.sdf.lr=-1", "object.sdf.hidden=0",
               "object.renderer.beta_init=-1"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1
    for key in ("trainer.max_steps", "optim.sdf.lr", "object.sdf.hidden", "object.renderer.beta_init"):
        assert f"'{key}'" in err


def test_prior_training_ranges_too(tmp_path):
    with pytest.raises(ConfigError, match=r"'train\.p_uncond'.*<= 1"):
        run_config(PriorTrainConfig, REPO / "configs/prior/default.yaml", overrides=["train.p_uncond=1.5"])


TINY = [
    "trainer.threads=1", "trainer.progress_bar=false", "rays.n_rays=64", "rays.contour_points=16",
    "rays.eikonal_points=16", "object.export_resolution=16", "output.preview_size=24", "output.preview_frames=1",
    "object.estimator.resolution=32",
]  # fmt: skip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from hoirecon.data.formats.hoirecon import write_clip
    from hoirecon.data.synth.clip import SynthClipConfig, make_clip

    path = tmp_path_factory.mktemp("faults") / "mug"
    write_clip(make_clip(SynthClipConfig(category="mug", frames=3, resolution=32, arc_degrees=60)), path)
    return path


def _fit_args(clip_dir: Path, run_dir: Path, steps: int) -> list[str]:
    return [f"clip={clip_dir}", f"run_dir={run_dir}", f"trainer.max_steps={steps}", *TINY]


@pytest.mark.slow  # three tiny fits
def test_a_corrupt_last_checkpoint_falls_back_to_the_newest_readable_one(clip_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--config", str(DEMO), *_fit_args(clip_dir, run, 4), "trainer.checkpoint_every_n_steps=2"]) == 0
    checkpoints = run / "checkpoints"
    assert {p.name for p in checkpoints.iterdir()} == {"last.ckpt", "step000002.ckpt", "step000004.ckpt"}
    data = (checkpoints / "last.ckpt").read_bytes()
    (checkpoints / "last.ckpt").write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    (run / ".poses.abc123.tmp.npz").write_bytes(b"half")  # what a killed atomic write leaves
    (checkpoints / ".step000006.x.tmp.ckpt").write_bytes(b"half")
    capsys.readouterr()
    # export reads the fallback (and says so) ...
    assert main(["export", str(run), "--resolution", "16"]) == 0
    assert "last.ckpt is unreadable" in capsys.readouterr().err
    # ... and a resume continues from step 4, cleaning up the temporaries
    assert main(["fit", "--resume", str(run), "trainer.max_steps=6"]) == 0
    out = capsys.readouterr()
    assert "using step000004.ckpt" in out.err and "removed 2 temporary files" in out.err
    assert "from step 4" in out.out
    assert not list(run.rglob(".*.tmp*"))
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"] == 6
    # nothing readable at all: one line, not a zip traceback
    for p in checkpoints.glob("*.ckpt"):
        p.write_bytes(b"PK\x03\x04 not a checkpoint")
    assert main(["export", str(run)]) != 0
    err = capsys.readouterr().err
    assert "unreadable" in err and "Traceback" not in err


_LIMITED_FIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (__LIMIT__, __LIMIT__))
from hoirecon.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # two tiny fits in subprocesses
def test_running_out_of_space_while_checkpointing_is_one_line_and_leaves_nothing_corrupt(clip_dir, tmp_path):
    """A per-file size limit (ulimit -f) makes the kernel refuse the checkpoint's write part-way, as a
    full disk does; the run stops with one line, leaves no partial file and resumes afterwards."""
    import subprocess
    import sys

    run = tmp_path / "run"
    args = ["fit", "--config", str(DEMO), *_fit_args(clip_dir, run, 4), "trainer.checkpoint_every_n_steps=2"]
    script = _LIMITED_FIT.replace("__LIMIT__", str(256 << 10))  # 256 kB: the logs fit, a checkpoint does not
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "no space left" in done.stderr and "step000002.ckpt" in done.stderr and "Traceback" not in done.stderr
    assert not list((run / "checkpoints").glob("*")) and not list(run.rglob(".*.tmp*"))
    assert main(["fit", "--resume", str(run)]) == 0  # restarts cleanly once there is room
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4


@pytest.mark.parametrize("group", ["sdf", "renderer", "cameras"])
def test_a_learning_rate_that_blows_up_stops_with_the_step_and_group(clip_dir, tmp_path, capsys, group):
    run = tmp_path / "run"
    rc = main(["fit", "--config", str(DEMO), *_fit_args(clip_dir, run, 6), f"optim.{group}.lr=1e30"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err and "Error" not in err.split(":")[0]
    assert (
        ("non-finite before step" in err and f"'{group}'" in err)
        or "loss became" in err
        or (group == "cameras" and "step " in err and "rays became non-finite" in err)
    ), err


_INTERRUPTIBLE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job starts with SIGINT ignored
os.execv(sys.executable, [sys.executable, "-m", "hoirecon", *sys.argv[1:]])
"""


@pytest.mark.slow  # a fit interrupted, then resumed
def test_ctrl_c_saves_a_checkpoint_says_how_to_resume_and_the_resume_continues(clip_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = ["fit", "--config", str(DEMO), *_fit_args(clip_dir, run, 100000), "trainer.checkpoint_every_n_steps=0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTIBLE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not list(run.glob("tb/events*")) and time.monotonic() < deadline:  # the fit has started
        time.sleep(0.5)
    time.sleep(8)  # some steps
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    err = err.decode()
    assert proc.returncode == 130, err
    assert "interrupted; saved step" in err and f"hoirecon fit --resume {run}" in err and "Traceback" not in err
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert step > 0
    done = subprocess.run(
        [sys.executable, "-m", "hoirecon", "fit", "--resume", str(run), f"trainer.max_steps={step + 3}",
         "trainer.progress_bar=true", "trainer.log_every_n_steps=1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and f"from step {step}" in done.stdout
    # the bar counts the run's steps from where it resumed, not "Epoch 1: 3/?"
    bar = done.stdout.split("steps:", 1)[-1]
    assert "steps: 100%" in done.stdout and f"{step + 3}/{step + 3}" in bar and "/?" not in bar, done.stdout[:1500]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == step + 3


def test_last_checkpoint_also_by_time(clip_dir, tmp_path):
    """checkpoint_every_minutes: with step checkpoints off, a kill -9 still finds a recent last.ckpt."""
    from hoirecon.systems.common import LastCheckpoint

    saved = []

    class Trainer:
        global_step = 7

        def save_checkpoint(self, path, weights_only=None):
            saved.append((path, self.global_step))

    timed = LastCheckpoint(tmp_path / "last.ckpt", every_minutes=0.0005)  # 30 ms
    timed.on_train_batch_end(Trainer())
    assert saved == []
    import time

    time.sleep(0.05)
    timed.on_train_batch_end(Trainer())
    assert saved == [(tmp_path / "last.ckpt", 7)]
    LastCheckpoint(tmp_path / "x.ckpt", every_minutes=0).on_train_batch_end(Trainer())  # 0: never by time
    assert len(saved) == 1
    timed.on_exception(Trainer(), None, KeyboardInterrupt())
    assert saved[-1] == (tmp_path / "last.ckpt", 7) and timed.interrupted_at == 7
    timed.on_exception(Trainer(), None, ValueError())  # other failures are not checkpointed
    assert len(saved) == 2


def test_a_folder_as_the_mano_file_says_so(tmp_path):
    from hoirecon.registry import build

    with pytest.raises(DataError, match="a folder; hand.model_path names the MANO file itself"):
        build("hand_model", {"type": "mano", "model_path": str(tmp_path)})


def test_the_no_hands_hint_follows_the_layout():
    from hoirecon.registry import build
    from tests.test_init import ToyHand, clip_with

    provided = build("initializer", "provided")
    with pytest.raises(DataError, match="a video or image folder holds none") as folder:
        provided.initialize(clip_with(source="folder (video.mp4)"), ToyHand())
    assert "initializer.type=mediapipe" in folder.value.hint and "add hands.npz" not in folder.value.hint
    with pytest.raises(DataError, match=r"no initial hands \(hands.npz\)") as layout:
        provided.initialize(clip_with(), ToyHand())
    assert "add hands.npz" in layout.value.hint


def test_a_mesh_named_after_no_category_is_warned_about(tmp_path, capsys):
    import trimesh

    trimesh.creation.box((0.06, 0.04, 0.1)).export(tmp_path / "scan.obj")
    args = ["synth", "clip", "--object-mesh", str(tmp_path / "scan.obj"), "--frames", "2", "--resolution", "32"]
    assert main([*args, "--out", str(tmp_path / "clip")]) == 0
    out = capsys.readouterr()
    assert "category 'scan' (the mesh's file name) is not one the prior knows" in out.err and "--category" in out.err
    assert "of the scan category" in out.out and " a scan" not in out.out
