"""Components that follow the step, config values that change a fit, the fit as a library call, and
device safety (issue 14): each setting below is shown to change what the fit does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hoirecon.api import fit_clip
from hoirecon.config import compose, validate
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.errors import ConfigError, DataError
from hoirecon.registry import register
from hoirecon.schema import FitConfig
from hoirecon.systems.fit import build_fit

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "fit" / "demo.yaml"
TINY = {
    "trainer.threads": 1,
    "trainer.progress_bar": False,
    "trainer.checkpoint_every_n_steps": 1000,
    "rays.n_rays": 64,
    "rays.contour_points": 32,
    "rays.eikonal_points": 32,
    "object.export_resolution": 16,
    "output.preview_size": 24,
    "output.preview_frames": 1,
}


@register("prior", "test-step-recorder")
class StepRecorder:
    """A throwaway prior that records when the fit calls its step hook and its guidance."""

    @dataclass
    class Config:
        pass

    active, resolution = True, 8
    hooks: list[tuple[int, int]] = []
    guided: list[int] = []

    def __init__(self, cfg: Config):
        type(self).hooks, type(self).guided = [], []

    def on_step(self, step: int, max_steps: int) -> None:
        self.hooks.append((step, max_steps))

    def sds_loss(self, object_channels, hand_condition, categories, step):
        self.guided.append(step)
        return object_channels[:, 0].mean() * 0.0


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hooks") / "mug"
    write_clip(make_clip(SynthClipConfig(category="mug", frames=3, resolution=32, arc_degrees=60)), path)
    return path


def _fit(clip_dir: Path, run_dir: Path, steps: int, **keys):
    return fit_clip(DEMO, clip=str(clip_dir), run_dir=str(run_dir), **{**TINY, "trainer.max_steps": steps, **keys})


@pytest.mark.slow  # 30-step fits
def test_a_hashgrid_fit_anneals_to_all_levels(clip_dir, tmp_path):
    """The bug behind issue 14: coarse-to-fine was set once and never followed the fit."""
    annealed = _fit(clip_dir, tmp_path / "a", 30, **{"object.sdf": {"type": "hashgrid", "anneal_steps": 10}})
    assert annealed.scene.sdf.encoding.level_mask.tolist() == [1.0] * 8
    slow = _fit(clip_dir, tmp_path / "b", 30, **{"object.sdf": {"type": "hashgrid", "anneal_steps": 1000}})
    assert slow.scene.sdf.encoding.level_mask.tolist() == [1.0] * 4 + [0.0] * 4  # 4 + int(29/1000 * 4)
    # the setting changes what the fit learns, not only a flag
    x = torch.rand(500, 3) * 0.2 - 0.1
    with torch.no_grad():
        assert not torch.allclose(annealed.scene.sdf.sdf(x), slow.scene.sdf.sdf(x))


@pytest.mark.slow  # 30-step fits
def test_every_step_hook_is_called_each_step_and_the_prior_starts_when_configured(clip_dir, tmp_path):
    """A throwaway component's hook sees every step once, in order; guidance starts at warmup_steps."""
    keys = {"prior.type": "test-step-recorder", "guidance.every_n_steps": 2, "guidance.max_beta": 0.0}
    _fit(clip_dir, tmp_path / "early", 30, **keys, **{"guidance.warmup_steps": 10})
    assert StepRecorder.hooks == [(s, 30) for s in range(30)]
    assert StepRecorder.guided == list(range(10, 30, 2))
    _fit(clip_dir, tmp_path / "late", 30, **keys, **{"guidance.warmup_steps": 21})
    assert StepRecorder.guided == list(range(22, 30, 2))
    # guidance waits for sharp silhouettes: beta is still ~1 cm after 14 steps, above 3 mm ...
    sharp = {**keys, "guidance.warmup_steps": 10, "guidance.max_beta": 0.003}
    with pytest.warns(Warning, match="no score-distillation step ran in 14 steps"):
        never = _fit(clip_dir, tmp_path / "sharp", 14, **sharp, **{"guidance.start_by": 1.0})
    assert StepRecorder.guided == [] and never.metrics["fit/sds_steps"] == 0
    _fit(clip_dir, tmp_path / "soft", 14, **{**keys, "guidance.warmup_steps": 10, "guidance.max_beta": 0.05})
    assert StepRecorder.guided == [10, 12]
    # ... but not beyond start_by of the run, whatever beta is (12 >= 0.8 * 14 = 11.2)
    late = _fit(clip_dir, tmp_path / "late-start", 14, **sharp, **{"guidance.start_by": 0.8})
    assert StepRecorder.guided == [12] and late.metrics["fit/sds_steps"] == 1


@pytest.mark.slow  # 30-step fits
def test_the_beta_floor_schedule_changes_the_rendered_surface(clip_dir, tmp_path):
    fast_beta = {"optim.renderer.lr": 0.05}
    plain = _fit(clip_dir, tmp_path / "plain", 30, **fast_beta)
    floored = _fit(clip_dir, tmp_path / "floor", 30, **fast_beta, **{"object.renderer.beta_min": [0, 0.009, 0.009, 0]})
    plain_beta, floored_beta = (float(r.scene.renderer.beta.detach()) for r in (plain, floored))
    # the floor holds beta up (its learned part started at beta_init - floor = 1 mm) where the plain fit's fell
    assert 0.009 <= floored_beta < 0.009 + 0.0011 and plain_beta < 0.0098 and plain_beta != floored_beta
    # a moving floor is where its schedule says at the last step (29 of a 0 -> 20 ramp: its end value)
    moving = _fit(clip_dir, tmp_path / "moving", 30, **{"object.renderer.beta_min": [0, 0.005, 0.0002, 20]})
    assert float(moving.scene.renderer.beta_min) == pytest.approx(0.0002)
    assert moving.metrics != plain.metrics


def test_a_bad_beta_floor_is_one_line_naming_the_key(clip_dir, tmp_path):
    with pytest.raises(Exception, match=r"object\.renderer\.beta_min must be in \[0, beta_init\)"):
        _fit(clip_dir, tmp_path / "bad", 2, **{"object.renderer.beta_min": 0.05})


@pytest.mark.slow  # two whole fits (one resumed) with every output
def test_fit_clip_returns_outputs_and_resumes(clip_dir, tmp_path):
    run = tmp_path / "run"
    result = _fit(clip_dir, run, 2)
    assert result.steps == 2 and result.run_dir == run
    for path in (result.object_mesh, result.object_in_hand, result.poses, result.preview, result.report):
        assert path is not None and path.is_file(), path
    assert (result.hands / "000000.obj").is_file()
    assert result.metrics["object/f@10mm[rigid]"] >= 0  # the synthetic clip has ground truth
    with pytest.raises(DataError, match="already holds a run"):
        _fit(clip_dir, run, 2)
    with pytest.raises(DataError, match="not a run folder"):
        fit_clip(resume=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="a run needs a config"):
        fit_clip()
    resumed = fit_clip(resume=run, **{"trainer.max_steps": 4})
    assert resumed.steps == 4 and resumed.config.trainer.max_steps == 4


class _MixedDtypes(TorchDispatchMode):
    """Records every op that mixes float32 and float64 tensors (type promotion hides such a leftover)."""

    def __init__(self):
        super().__init__()
        self.mixed: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        dtypes = set()
        for a in torch.utils._pytree.tree_leaves((args, kwargs or {})):
            if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dim() > 0:
                dtypes.add(a.dtype)
        if {torch.float32, torch.float64} <= dtypes:
            self.mixed.add(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("estimator", ["occgrid", "uniform"])
def test_a_step_after_double_uses_no_float32_tensor(clip_dir, tmp_path, estimator):
    """Everything a step uses lives on the modules: after .double() (as after .to(device)) nothing is left behind."""
    overrides = [f"{k}={v}" for k, v in TINY.items()] + [f"clip={clip_dir}", f"run_dir={tmp_path}"]
    overrides += [f"object.estimator.type={estimator}", "loss.penetration=1.0", "loss.contact=1.0"]
    parts = build_fit(validate(compose(DEMO, overrides), FitConfig))
    system = parts.system.double()
    with _MixedDtypes() as mode:
        system.follow_step(0)
        terms = system.objective(parts.scene, generator=torch.Generator().manual_seed(0))
        terms["loss"].backward()
    assert terms["loss"].dtype == torch.float64
    assert not mode.mixed, sorted(mode.mixed)
    grads = [p.grad for p in system.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float64 for g in grads)


@register("prior", "test-nan-gradient")
class NaNGradientPrior:
    """A throwaway prior whose loss is finite (0) but whose gradient is NaN: sqrt'(0) * 0."""

    @dataclass
    class Config:
        pass

    active, resolution = True, 8

    def __init__(self, cfg: Config):
        pass

    def sds_loss(self, object_channels, hand_condition, categories, step):
        return torch.sqrt((object_channels * 0).sum())


def test_a_nan_gradient_with_a_finite_loss_does_not_destroy_the_fit(clip_dir, tmp_path):
    """Clipping multiplies every gradient by a NaN norm; the fit drops non-finite entries first."""
    keys = {"prior.type": "test-nan-gradient", "guidance.warmup_steps": 0, "guidance.every_n_steps": 1}
    keys["guidance.max_beta"] = 0.0
    with pytest.warns(Warning, match="non-finite gradient entries were set to 0"):
        result = _fit(clip_dir, tmp_path / "run", 3, **keys)
    assert all(bool(torch.isfinite(p).all()) for p in result.scene.parameters())
    assert result.metrics["render/mask_iou[object]"] >= 0
