"""Per-clip fitting end to end: hoirecon fit at tiny sizes, gradients, resume, outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hoirecon.cli import main
from hoirecon.config import compose, validate
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.geometry.camera import rays_hit_box
from hoirecon.schema import FitConfig
from hoirecon.systems.fit import build_fit

REPO = Path(__file__).resolve().parents[1]
FIT_CONFIGS = sorted((REPO / "configs" / "fit").glob("*.yaml"))
TINY = [
    "trainer.max_steps=2",
    "trainer.progress_bar=false",
    "trainer.threads=1",
    "rays.n_rays=64",
    "rays.contour_points=32",
    "rays.eikonal_points=32",
    "object.export_resolution=24",
    "output.preview_size=32",
    "output.preview_frames=1",
]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "mug"
    write_clip(make_clip(SynthClipConfig(category="mug", frames=3, resolution=32, arc_degrees=60)), path)
    return path


@pytest.mark.slow  # a whole fit with every output, per config
@pytest.mark.parametrize("config", FIT_CONFIGS, ids=[p.stem for p in FIT_CONFIGS])
def test_every_fit_config_runs_two_steps(config, clip_dir, tmp_path, capsys):
    run = tmp_path / "run"
    # MediaPipe finds no hand in 32 px frames: video.yaml's own initialiser runs in test_video's end-to-end test
    hands = ["initializer.type=provided"] if config.stem == "video" else []
    code = main(["fit", "--config", str(config), f"clip={clip_dir}", f"run_dir={run}", *TINY, *hands])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in (
        "object.obj",
        "object.ply",
        "object_in_hand.obj",
        "poses.npz",
        "poses.json",
        "preview.png",
        "report.html",
    ):
        assert (run / name).is_file(), name
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "hands").iterdir()) == ["000000.obj", "000001.obj", "000002.obj"]
    with np.load(run / "poses.npz") as poses:
        assert poses["T_cam_from_hand"].shape == (3, 4, 4) and poses["K"].shape == (3, 3, 3)
        assert poses["hand_pose"].shape == (3, 45) and poses["betas"].shape == (10,)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["object/f@10mm[rigid]"] <= 1 and metrics["hand/mpjpe_mm[root]"] > 0
    assert "preview:" in out and "metrics" in out
    # nothing half written: no temporary files left behind
    assert not [p for p in run.rglob(".*") if p.is_file()]


def _parts(clip_dir: Path, tmp_path: Path, *overrides: str):
    cfg = compose(REPO / "configs/fit/demo.yaml", [f"clip={clip_dir}", f"run_dir={tmp_path}", *TINY, *overrides])
    return build_fit(validate(cfg, FitConfig))


def test_gradients_reach_every_enabled_group(clip_dir, tmp_path):
    parts = _parts(clip_dir, tmp_path, "loss.penetration=1.0", "loss.contact=1.0", "loss.joint_limits=1.0")
    system = parts.system
    system.configure_optimizers()
    system.follow_step(0)
    terms = system.objective(parts.scene, generator=torch.Generator().manual_seed(0))
    assert {"mask", "hand_mask", "contour", "eikonal", "temporal"} <= set(terms)
    terms["loss"].backward()
    for name, params in system.parameter_groups().items():
        grads = [p.grad for p in params if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), f"no gradient reaches {name}"


@pytest.mark.parametrize("moves", ["object", "hand"])
def test_penetration_moves_decides_what_gives_way(clip_dir, tmp_path, moves):
    from hoirecon.fit.objective import grasp_terms

    parts = _parts(clip_dir, tmp_path, "trainer.max_steps=100", f"loss.penetration_moves={moves}")
    objective, scene = parts.system.objective, parts.scene
    # the default weights: off for the first 30% of the run, then up to 1 at 60%
    for step, weight in ((0, 0.0), (30, 0.0), (45, 0.5), (60, 1.0), (99, 1.0)):
        objective.on_step(step, 100)
        assert objective.weights["penetration"] == pytest.approx(weight) == objective.weights["contact"]
    terms = grasp_terms(scene, torch.tensor([0, 1]), 1.0, 0.0, objective.penetration_moves)
    assert float(terms["penetration"]) > 0  # the starting sphere (10 cm) holds the hand
    terms["penetration"].backward()
    moved = {
        name
        for name, params in parts.system.parameter_groups().items()
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    }
    assert ("sdf" in moved) == (moves == "object") and ("hand_pose" in moved) == (moves == "hand")


def test_disabled_groups_stay_frozen(clip_dir, tmp_path):
    parts = _parts(clip_dir, tmp_path, "optim.cameras.enabled=false", "optim.betas.enabled=false")
    groups = {g["name"] for g in parts.system.configure_optimizers()["optimizer"].param_groups}
    assert "cameras" not in groups and "betas" not in groups and "sdf" in groups
    assert not parts.scene.cameras.rotvec.requires_grad


@pytest.mark.slow  # a fit, its resumption, an export and an eval
def test_resumed_run_equals_uninterrupted(clip_dir, tmp_path, capsys):
    # the fits read the clip without its gt/, so they write no scores (eval scores them below, --gt)
    no_gt = tmp_path / "no_gt"
    shutil.copytree(clip_dir, no_gt)
    shutil.rmtree(no_gt / "gt")
    full = tmp_path / "full"
    args = [f"clip={no_gt}", *TINY, "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2"]
    # the default prior distils on every step: its draws must resume too
    args += ["guidance.warmup_steps=0", "guidance.every_n_steps=1", "guidance.max_beta=0"]
    assert main(["fit", "--config", str(REPO / "configs/fit/demo.yaml"), f"run_dir={full}", *args]) == 0
    assert (full / "object.obj").is_file() and not (full / "metrics.json").exists()
    # a run killed after step 2: its last checkpoint is the periodic one
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    (killed / "checkpoints" / "last.ckpt").unlink()
    (killed / "checkpoints" / "step000004.ckpt").unlink()
    shutil.copy(killed / "checkpoints" / "step000002.ckpt", killed / "checkpoints" / "last.ckpt")
    assert torch.load(killed / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 2
    assert main(["fit", "--resume", str(killed)]) == 0
    a = torch.load(full / "checkpoints/last.ckpt", weights_only=False)
    b = torch.load(killed / "checkpoints/last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 4
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-6), key
    # export re-extracts meshes from the checkpoint, in another format and resolution, beside the
    # fit's own outputs (which stay as they were)
    capsys.readouterr()
    fitted = (full / "object.ply").read_bytes(), (full / "poses.npz").read_bytes()
    assert main(["export", str(full), "--format", "glb", "--resolution", "20"]) == 0
    assert "object:" in capsys.readouterr().out
    out = full / "export"
    assert (out / "object.glb").is_file() and (out / "object_in_hand.glb").is_file() and (out / "poses.npz").is_file()
    assert len(list((out / "hands").glob("*.glb"))) == 3
    assert ((full / "object.ply").read_bytes(), (full / "poses.npz").read_bytes()) == fitted
    assert main(["export", str(full), "--format", "ply", "--resolution", "20", "--out", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "object.ply").is_file()
    assert main(["export", str(tmp_path / "nothing")]) == 1
    # eval says so when the run's own clip has no ground truth, and scores it against another's
    capsys.readouterr()
    assert main(["eval", str(full)]) == 1
    assert "no ground truth" in capsys.readouterr().err
    report = full / "report.html"
    report.unlink()
    assert main(["eval", str(full), "--gt", str(clip_dir), "--resolution", "20"]) == 0
    metrics = json.loads((full / "metrics.json").read_text())
    assert 0 <= metrics["object/f@10mm[rigid]"] <= 1 and "hand_init/mpjpe_mm[root]" in metrics
    assert report.is_file()  # eval refreshes the report with its scores
    # a second fit into the same folder is refused
    capsys.readouterr()
    assert main(["fit", "--config", str(REPO / "configs/fit/demo.yaml"), f"run_dir={full}", *args]) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_missing_clip_is_one_clear_error(tmp_path, capsys):
    # run_dir in tmp: the demo's own runs/demo may exist (after `make demo`) and would be refused first
    args = [f"clip={tmp_path / 'nope'}", f"run_dir={tmp_path / 'run'}", *TINY]
    code = main(["fit", "--config", str(REPO / "configs/fit/demo.yaml"), *args])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error:") and "nope" in err


def test_prior_guidance_reaches_the_object(clip_dir, tmp_path):
    """With an active prior, guidance steps add the SDS term and its gradient reaches the SDF."""
    from hoirecon.priors.diffusion import Denoiser, NetworkConfig, save_checkpoint

    net = NetworkConfig(resolution=16, block_out_channels=[16, 16], down_block_types=["DownBlock2D"] * 2)
    net.norm_num_groups = 8
    ckpt = save_checkpoint(Denoiser(net), tmp_path / "tiny.safetensors")
    parts = _parts(
        clip_dir, tmp_path, "prior.type=diffusion", f"prior.checkpoint={ckpt}", "prior.weight=1.0",
        "guidance.warmup_steps=1", "guidance.every_n_steps=2", "guidance.max_beta=0",
        "loss.mask=0", "loss.hand_mask=0", "loss.contour=0", "loss.eikonal=0", "loss.temporal=0",
    )  # fmt: skip
    objective, scene = parts.system.objective, parts.scene

    def terms_at(step: int) -> dict:
        parts.system.follow_step(step)
        return objective(scene, generator=torch.Generator().manual_seed(0))

    assert "sds" not in terms_at(0)  # warm-up
    assert "sds" not in terms_at(3)  # off step
    terms = terms_at(2)
    assert "sds" in terms
    terms["loss"].backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in scene.sdf.parameters() if p.grad is not None)
    # the prior's own weights are not part of the fit's state
    assert not any("denoiser" in k or "unet" in k for k in parts.system.state_dict())


def test_a_plugin_prior_guides_the_fit(clip_dir, tmp_path):
    """The smooth-surface plugin prior, selected by name, adds its term and reaches the SDF."""
    parts = _parts(
        clip_dir, tmp_path, "prior.type=smooth-surface", "guidance.warmup_steps=0", "guidance.max_beta=0", "loss.mask=0"
    )
    parts.system.follow_step(0)
    terms = parts.system.objective(parts.scene, generator=torch.Generator().manual_seed(1))
    assert "sds" in terms and float(terms["sds"].detach()) > 0
    terms["loss"].backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in parts.scene.sdf.parameters() if p.grad is not None)


def test_novel_view_renders_only_rays_that_meet_the_object(clip_dir, tmp_path, monkeypatch):
    """Rays skipped for missing the solid's box (plus 5 beta and a cell) are ones the full render
    leaves empty: VolSDF's density 5 beta outside the surface is e^-5 of its peak."""
    import hoirecon.fit.scene as scene_module

    parts = _parts(clip_dir, tmp_path, "object.renderer.beta_init=0.003")  # where guidance runs
    scene = parts.scene
    hits = []

    def every_ray(K, T, pixels, lo, hi):
        hits.append(rays_hit_box(K, T, pixels, lo, hi)[0])
        return torch.ones(pixels.shape[:2], dtype=torch.bool)

    monkeypatch.setattr(scene_module, "rays_hit_box", every_ray)
    full = scene.novel_view(0, 16, torch.Generator().manual_seed(2)).target.detach()
    alpha = (full[0, 0].reshape(-1) + 1) / 2
    assert (alpha > 0.5).any() and not hits[0].all()  # the object is in view, and rays are skipped
    assert alpha[~hits[0]].max() < 1e-3


def test_a_novel_view_returns_the_camera_it_was_rendered_from(clip_dir, tmp_path):
    """benchmarks/prior_fit_probe.py renders the truth at the view's camera: it must be the one used."""
    from hoirecon.render.raster import rasterize

    scene = _parts(clip_dir, tmp_path).scene
    view = scene.novel_view(0, 16, torch.Generator().manual_seed(4))
    hand = scene.hands(scene.frame_index(0))
    again = rasterize(hand.vertices, hand.faces, view.K, view.T_cam_from_hand, image_size=(16, 16))
    assert view.T_cam_from_hand.shape == (1, 4, 4) and view.K.shape == (1, 3, 3)
    assert (again.mask > 0.5).any()
    torch.testing.assert_close(view.condition[:, 0], 2 * again.mask.clamp(0, 1) - 1)


def test_the_box_framing_novel_views_is_found_every_16_steps(clip_dir, tmp_path):
    """A fit's novel views reuse the solid's box for OBJECT_BOX_EVERY steps, then find it anew; it
    is kept in the scene's state, so a resumed fit frames its views with the box it had."""
    from hoirecon.fit.scene import OBJECT_BOX_EVERY

    scene = _parts(clip_dir, tmp_path).scene
    first = [x.clone() for x in scene.view_box_at(100)]
    assert torch.equal(torch.stack(first), torch.stack(scene.object_box(torch.float32, torch.device("cpu"))))
    with torch.no_grad():
        scene.sdf.centre.add_(0.03)  # the solid moves ...
    assert torch.equal(torch.stack(scene.view_box_at(100 + OBJECT_BOX_EVERY - 1)), torch.stack(first))  # ... unseen
    moved = torch.stack(scene.view_box_at(100 + OBJECT_BOX_EVERY))
    assert torch.allclose(moved - torch.stack(first), torch.full((2, 3), 0.03), atol=2 * 0.4 / 24)
    state = scene.state_dict()
    assert int(state["view_box_step"]) == 100 + OBJECT_BOX_EVERY
    older = {k: v for k, v in state.items() if not k.startswith("view_box")}  # a checkpoint from before
    scene.load_state_dict(older)
    assert int(scene.view_box_step) == -1  # found anew at the next view


def test_rays_hit_box():
    from hoirecon.geometry.camera import look_at

    K = torch.tensor([[[10.0, 0, 4.5], [0, 10.0, 4.5], [0, 0, 1]]])
    T = look_at(torch.tensor([0.0, 0.0, -1.0]), torch.zeros(3))[None]
    pixels = torch.tensor([[[4.5, 4.5], [0.0, 4.5], [4.5, 9.0]]])  # centre; 0.45 left; 0.45 down
    lo, hi = torch.full((3,), -0.1), torch.full((3,), 0.1)
    # at 1 m a pixel is 0.1 m: the centre ray hits, rays 0.45 m off at the box (0.9-1.1 m) miss
    assert rays_hit_box(K, T, pixels, lo, hi).tolist() == [[True, False, False]]
    behind = look_at(torch.tensor([0.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, -2.0]))[None]
    assert rays_hit_box(K, behind, pixels[:, :1], lo, hi).tolist() == [[False]]  # looking away


def test_unseen_angle_setting_reaches_the_novel_views(clip_dir, tmp_path, monkeypatch):
    """guidance.unseen_angle_deg hands the input cameras and the angle to the view sampler (whose
    avoidance tests/test_prior.py checks), and the views change."""
    import hoirecon.fit.scene as scene_module

    seen = []
    real = scene_module.framed_novel_view

    def recording(points, resolution, generator, **kwargs):
        seen.append(kwargs)
        return real(points, resolution, generator, **kwargs)

    monkeypatch.setattr(scene_module, "framed_novel_view", recording)
    views = {}
    for angle in (0.0, 120.0):
        parts = _parts(
            clip_dir, tmp_path / str(angle), "prior.type=smooth-surface", "guidance.warmup_steps=0",
            "guidance.max_beta=0", f"guidance.unseen_angle_deg={angle}",
        )  # fmt: skip
        parts.system.follow_step(0)
        views[angle] = parts.scene.novel_view(0, 16, torch.Generator().manual_seed(3), angle).condition
        parts.system.objective(parts.scene, generator=torch.Generator().manual_seed(3))
    assert seen[0]["avoid"] is None and seen[1]["avoid"] is None  # angle 0: any view
    assert seen[2]["min_angle_deg"] == 120.0 and len(seen[2]["avoid"]) == parts.scene.n_frames
    assert seen[3]["min_angle_deg"] == 120.0  # through the objective too
    assert not torch.allclose(views[0.0], views[120.0])  # the far side: another view
    parts = _parts(
        clip_dir, tmp_path / "default", "prior.type=smooth-surface", "guidance.warmup_steps=0", "guidance.max_beta=0"
    )
    parts.system.follow_step(0)
    parts.system.objective(parts.scene, generator=torch.Generator().manual_seed(3))
    assert seen[-1]["min_angle_deg"] == 60.0 and seen[-1]["avoid"] is not None  # the default: the unseen side
