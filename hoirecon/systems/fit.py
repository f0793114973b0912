"""``FitSystem``: the per-clip optimisation as a LightningModule, and ``build_fit`` that assembles it.

The system is thin: ``FitScene`` holds the unknowns and renders them, ``FitObjective`` computes the
loss of a step; here are the optimiser (AdamW, one group per parameter group with its own learning
rate, exponential decay), per-step seeding (so a resumed run repeats the uninterrupted one), the
step hook and logging. Every component that follows the training step (``on_step(step, max_steps)``,
``hoirecon.contracts.StepFollower``) is called by ``follow_step`` before each step's losses: the
scene's modules (sdf, renderer, estimator, hand model, parameters), the objective (its schedules)
and the prior, whatever their role. All state lives in module parameters and buffers, so
checkpoints and ``.to(device)`` need no special cases.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from hoirecon.data.clip import Clip
from hoirecon.data.load import load_clip
from hoirecon.errors import DataError, DivergedError, HoireconWarning
from hoirecon.fit.objective import FitObjective
from hoirecon.fit.scene import FitScene
from hoirecon.registry import build
from hoirecon.schema import FitConfig, OptimSection


class _Steps(IterableDataset):
    """An endless stream of step tokens: each step draws its own frames and pixels."""

    def __iter__(self) -> Iterator[int]:
        while True:
            yield 0


class FitSystem(L.LightningModule):
    def __init__(self, scene: FitScene, objective: FitObjective, optim: OptimSection, max_steps: int, seed: int):
        super().__init__()
        self.scene = scene
        self.objective = objective
        self.optim_cfg, self.max_steps, self.seed = optim, max_steps, seed
        self.scene.hand_model.requires_grad_(False)
        if isinstance(objective.prior, torch.nn.Module):
            objective.prior.requires_grad_(False)
        # every part that follows the step, once each, in a fixed order (modules first, then the rest)
        parts = [*self.modules(), objective.prior]
        unique = {id(p): p for p in parts if p is not None and p is not self}
        self.step_followers = [p for p in unique.values() if callable(getattr(p, "on_step", None))]
        self.nonfinite_gradients = 0  # gradient entries dropped so far (see on_before_optimizer_step)
        self.sds_steps = 0  # steps with the prior's score distillation so far (kept in checkpoints)

    def follow_step(self, step: int) -> None:
        """Tell every component that follows the step where the fit is (before the step's losses)."""
        for part in self.step_followers:
            part.on_step(step, self.max_steps)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Steps(), batch_size=None)

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        s = self.scene
        return {
            "sdf": list(s.sdf.parameters()),
            "renderer": [p for p in s.renderer.parameters() if p.requires_grad],
            "hand_pose": [s.hand.pose_delta],
            "betas": [s.hand.betas],
            "hand_from_obj": list(s.hand_from_obj.parameters()),
            "cameras": list(s.cameras.parameters()),
            "intrinsics": list(s.intrinsics.parameters()),
        }

    def configure_optimizers(self) -> dict[str, Any]:
        groups = []
        for name, params in self.parameter_groups().items():
            group = getattr(self.optim_cfg, name)
            for p in params:
                p.requires_grad_(group.enabled)
            if group.enabled and params:
                groups.append({"params": params, "lr": group.lr, "name": name})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.optim_cfg.weight_decay)
        gamma = self.optim_cfg.final_lr_ratio ** (1 / max(self.max_steps, 1))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        step = self.global_step
        # every random draw of a step follows from (seed, step): a resumed run repeats the same steps
        torch.manual_seed(self.seed * 1_000_003 + step)
        generator = torch.Generator().manual_seed(self.seed * 1_000_033 + step)
        self.check_finite_parameters(step)
        self.follow_step(step)
        try:
            terms = self.objective(self.scene, generator)
        except DivergedError as exc:  # raised where it is found (e.g. the rays); say when
            raise DivergedError(f"step {step}: {exc}", hint=exc.hint) from None
        loss = terms.pop("loss")
        if not math.isfinite(float(loss.detach())):
            raise DivergedError(f"the fit's loss became {float(loss)} at step {step}; try smaller learning rates")
        self.sds_steps += int("sds" in terms)
        self.log("loss", loss, prog_bar=True)
        self.log("guidance/sds_steps", float(self.sds_steps), prog_bar=False)
        self.log_dict({f"loss/{k}": float(v.detach()) for k, v in terms.items()}, prog_bar=False)
        return loss

    def check_finite_parameters(self, step: int) -> None:
        """Stop with the step and the parameter group when the last update left a NaN or inf: the
        renderer would otherwise fail far away (an IndexError in sampling) before the loss shows it."""
        for name, params in self.parameter_groups().items():
            if any(not bool(torch.isfinite(p).all()) for p in params):
                raise DivergedError(
                    f"the fit's '{name}' parameters became non-finite before step {step}",
                    hint=f"try a smaller optim.{name}.lr",
                )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Non-finite gradient entries are dropped (set to 0) before clipping and the step.

        A finite loss can still have a NaN somewhere in its gradient (a 0/0 in one backward of one
        ray); the gradient-norm clipping then multiplies every gradient by NaN and the whole fit is
        lost (a hash-grid toycar fit in docs/benchmarks.md ended that way). Finite gradients are
        untouched, so fits without the problem are bit-identical. The count is logged.
        """
        dropped = 0
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    bad = ~torch.isfinite(p.grad)
                    if bad.any():
                        dropped += int(bad.sum())
                        p.grad.masked_fill_(bad, 0.0)
        if dropped:
            self.nonfinite_gradients += dropped
            if self.nonfinite_gradients == dropped:  # the first time only: a warning, not a flood
                warnings.warn(
                    f"step {self.global_step}: {dropped} non-finite gradient entries were set to 0 "
                    "(logged as nonfinite_gradients in TensorBoard)",
                    HoireconWarning,
                    stacklevel=2,
                )
        self.log("nonfinite_gradients", float(self.nonfinite_gradients), prog_bar=False)

    def on_train_end(self) -> None:
        prior = self.objective.prior
        if getattr(prior, "active", False) and self.sds_steps == 0:
            warnings.warn(
                f"the prior ({type(prior).__name__}) is active but no score-distillation step ran in "
                f"{self.global_step} steps: see guidance.warmup_steps, guidance.max_beta, guidance.start_by "
                "and loss.sds",
                HoireconWarning,
                stacklevel=2,
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sds_steps"] = self.sds_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        _upgrade_estimator_state(checkpoint)
        self.sds_steps = int(checkpoint.get("sds_steps", 0))


def _upgrade_estimator_state(checkpoint: dict[str, Any]) -> None:
    """Checkpoints written before the estimators kept their state in buffers (November 2026 and earlier)."""
    old = checkpoint.pop("estimator_state", None)
    if old is None or old.get("occupancy") is None:
        return
    state = checkpoint["state_dict"]
    key = "scene.estimator."
    state[key + "occupancy"] = old["occupancy"]
    state[key + "aabb"] = old["aabb"]
    state[key + "last_update"] = torch.tensor(old["last_update"])
    state[key + "step"] = torch.tensor(checkpoint.get("global_step", 0))
    state[key + "scale"] = torch.tensor(old["scale"], dtype=torch.float64)
    state[key + "grid_scale"] = torch.tensor(old["grid_scale"], dtype=torch.float64)


@dataclass
class FitParts:
    """Everything ``hoirecon fit`` needs: the clip, the scene, the objective and the system."""

    clip: Clip
    scene: FitScene
    system: FitSystem
    category: str
    config: FitConfig
    #: What the initialiser had to do (interpolated frames, smoothing), for reports.
    scene_init_notes: list[str]


def build_fit(config: FitConfig) -> FitParts:
    """Load the clip, initialise the hands and cameras, and build the components named in ``config``."""
    if not config.clip:
        raise DataError("the config names no clip", hint="set clip=path/to/clip (e.g. one from `hoirecon synth clip`)")
    clip = load_clip(config.clip, config.clip_format or "auto")
    category = config.category or clip.category
    hand_model = build("hand_model", config.hand)
    init = build("initializer", config.initializer).initialize(clip, hand_model)
    scene = FitScene(
        hand_model,
        build("sdf", config.object.sdf),
        build("renderer", config.object.renderer),
        build("estimator", config.object.estimator),
        init,
        torch.as_tensor(clip.K),
        clip.image_size,
        hand_from_obj_shared=config.optim.hand_from_obj_shared,
    )
    prior = build("prior", config.prior)
    weights = torch.as_tensor(clip.frame_weights if clip.frame_weights is not None else np.ones(len(clip)))
    if init.frame_weights is not None:  # the initialiser's confidence in each frame's hand
        weights = weights * init.frame_weights.to(weights.dtype)
    objective = FitObjective(
        torch.as_tensor(clip.hand_masks),
        torch.as_tensor(clip.object_masks),
        weights,
        config.loss,
        config.rays,
        config.guidance,
        config.trainer.max_steps,
        prior=prior,
        categories=[category],
    )
    system = FitSystem(scene, objective, config.optim, config.trainer.max_steps, config.trainer.seed)
    return FitParts(clip, scene, system, category, config, list(init.notes))


def run_fit_config(run_dir: Path) -> FitConfig:
    """The validated config a run saved (its config.yaml)."""
    from hoirecon.config import compose, validate

    if not (run_dir / "config.yaml").is_file():
        raise DataError(f"{run_dir}: not a run folder (no config.yaml)")
    return validate(compose(run_dir / "config.yaml", []), FitConfig)


def run_clip(run_dir: Path) -> Clip:
    """The clip a run fitted, from its config.yaml, without rebuilding the fit."""
    config = run_fit_config(run_dir)
    return load_clip(config.clip, config.clip_format or "auto")


def load_run(run_dir: str | Path) -> FitParts:
    """Rebuild a run's fit from its config.yaml and its last checkpoint (for export and evaluation)."""
    from hoirecon.systems.common import last_checkpoint

    run_dir = Path(run_dir)
    config = run_fit_config(run_dir)
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        raise DataError(f"{run_dir}: no checkpoints/last.ckpt; the run has not saved a step yet")
    parts = build_fit(config)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    parts.system.on_load_checkpoint(state)
    parts.system.load_state_dict(state["state_dict"])
    # the state of the last step done: coarse-to-fine levels, scheduled floors, ...
    parts.system.follow_step(max(int(state.get("global_step", 1)) - 1, 0))
    return parts
