"""The fit as one library call: ``fit_clip(config, **overrides) -> FitResult``.

``hoirecon fit`` is a thin shell over this function, and ``hoirecon compare`` runs it in a worker
process per run. It loads the config (a YAML path, a mapping, or a run folder to resume), validates
it, loads the clip, initialises, optimises, writes every output atomically and returns where they
are and the metrics::

    from hoirecon import fit_clip

    result = fit_clip("configs/fit/demo.yaml", clip="clips/demo-mug", run_dir="runs/py",
                      **{"trainer.max_steps": 300})
    print(result.metrics["object/f@10mm[rigid]"], result.object_mesh)
    fit_clip(resume="runs/py", **{"trainer.max_steps": 600})   # continue the same run further

Overrides are dotted keys (``"trainer.max_steps": 300``) or nested mappings (``trainer={...}``),
layered over the config as on the command line (docs/config.md).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hoirecon.config import compose, merge_trees, parse_overrides, save_config, validate
from hoirecon.errors import ConfigError, DataError, HoireconWarning
from hoirecon.runtime import check_accelerator
from hoirecon.schema import FitConfig


@dataclass
class FitResult:
    """What a finished fit left in ``run_dir`` (paths) and its scores (empty without ground truth)."""

    run_dir: Path
    config: FitConfig
    metrics: dict[str, float]
    #: The object in its own frame and in the hand frame; None when the SDF had no surface in its box.
    object_mesh: Path | None
    object_in_hand: Path | None
    hands: Path
    poses: Path
    preview: Path
    report: Path
    #: Optimisation steps done in total and the wall time of this call, seconds.
    steps: int
    seconds: float
    #: The fitted scene (``hoirecon.fit.scene.FitScene``): render it, query its SDF, export again.
    scene: Any = None
    #: What the initialiser had to do (interpolated frames, smoothing).
    notes: list[str] = field(default_factory=list)


def run_config(
    schema: type,
    config: str | Path | Mapping[str, Any] | None = None,
    resume: str | Path | None = None,
    overrides: Sequence[str] = (),
    **keys: Any,
) -> tuple[dict[str, Any], Any]:
    """The resolved config tree of a run and its validated ``schema`` (``FitConfig``, ``PriorTrainConfig``).

    ``config``: a YAML file or a mapping; or ``resume``: a run folder, whose saved config.yaml is
    used and whose run_dir stays. ``overrides`` are command-line style ``key=value`` strings and
    ``keys`` the same as keyword arguments; keys win over overrides. A new run refuses a folder that
    already holds one.
    """
    if resume is not None:
        path = Path(resume) / "config.yaml"
        if not path.is_file():
            raise DataError(f"{resume}: not a run folder (no config.yaml)")
        tree = _tree(compose(path, overrides))
    elif isinstance(config, Mapping):
        tree = merge_trees(dict(config), parse_overrides(overrides))
    elif config is not None:
        tree = _tree(compose(Path(config), overrides))
    else:
        raise ConfigError("a run needs a config (a YAML file or a mapping) or a run folder to resume")
    for key, value in keys.items():
        tree = merge_trees(tree, _nested(key, value))
    if resume is not None:
        tree["run_dir"] = str(resume)  # a resumed run stays in its folder
    validated = validate(tree, schema)
    run_dir = Path(validated.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir}: is a file, not a folder")
    # a run that stopped before its first checkpoint still holds its config.yaml: resume it, do not mix two.
    # (Not in DDP's other processes: Lightning starts them once rank 0 has written config.yaml.)
    started = (run_dir / "checkpoints").exists() or (run_dir / "config.yaml").exists()
    if resume is None and started and not _launched_rank():
        raise DataError(
            f"{run_dir}: already holds a run", hint=f"resume it with --resume {run_dir}, or set run_dir=..."
        )
    check_accelerator(validated.trainer.accelerator)
    return tree, validated


def fit_clip(
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    overrides: Sequence[str] = (),
    on_start=None,
    say=None,
    **keys: Any,
) -> FitResult:
    """Fit one clip from start to outputs (see the module docstring). ``on_start(parts)`` is called
    once the clip is loaded and the fit is built, before the first step (the CLI prints there);
    ``say(message)`` is told where a resume continues and each stage of writing the outputs."""
    from hoirecon.eval.report import run_report
    from hoirecon.run_outputs import write_outputs
    from hoirecon.systems.common import last_checkpoint, make_trainer, resume_message, run_training, start_run
    from hoirecon.systems.fit import build_fit

    start = time.perf_counter()
    tree, config = run_config(FitConfig, config, resume, overrides, **keys)
    run_dir = Path(config.run_dir)
    checkpoint = None
    if resume is not None:
        clean_after_interruption(run_dir)
        checkpoint = last_checkpoint(run_dir)  # once: it checks the file and may warn
    start_run(config.trainer)
    parts = build_fit(config)
    if on_start is not None:
        on_start(parts)
    if resume is not None and say is not None:
        say(resume_message(run_dir, checkpoint))
    trainer = make_trainer(config.trainer, run_dir, gradient_clip_val=config.optim.grad_clip)
    save_config(tree, run_dir / "config.yaml")
    run_training(trainer, parts.system, run_dir, checkpoint, "fit")
    preview = {"frames": config.output.preview_frames, "size": config.output.preview_size}
    fit_stats = {"fit/sds_steps": float(parts.system.sds_steps)}
    metrics = write_outputs(parts.scene, parts.clip, run_dir, config.object.export_resolution, preview, fit_stats, say)
    if say is not None:
        say("writing the report ...")
    has_mesh = (run_dir / "object.obj").is_file()
    return FitResult(
        run_dir=run_dir,
        config=config,
        metrics=metrics,
        object_mesh=run_dir / "object.obj" if has_mesh else None,
        object_in_hand=run_dir / "object_in_hand.obj" if has_mesh else None,
        hands=run_dir / "hands",
        poses=run_dir / "poses.npz",
        preview=run_dir / "preview.png",
        report=run_report(run_dir),
        steps=int(trainer.global_step),
        seconds=time.perf_counter() - start,
        scene=parts.scene,
        notes=list(parts.scene_init_notes),
    )


@dataclass
class PriorTrainResult:
    """A finished ``train_prior``: the exported checkpoint (rank 0; None on the other ranks), the
    trained system (its ``model`` and ``averaged`` copy) and the rank of this process."""

    run_dir: Path
    checkpoint: Path | None
    system: Any
    global_rank: int
    world_size: int
    steps: int


def train_prior(
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    overrides: Sequence[str] = (),
    say=print,
    **keys: Any,
) -> PriorTrainResult:
    """Train the diffusion prior (``hoirecon train-prior``): on this machine, in DDP processes
    (``trainer.devices``), or as one node of several (``trainer.num_nodes``; every node runs this same
    call, docs/prior.md "Several machines"). Rank 0 writes the run's files and ``prior.safetensors``."""
    from hoirecon.schema import PriorTrainConfig
    from hoirecon.systems.common import last_checkpoint, make_trainer, resume_message, run_training, start_run
    from hoirecon.systems.prior import PriorDataModule, PriorSystem, network_config

    tree, config = run_config(PriorTrainConfig, config, resume, overrides, **keys)
    run_dir = Path(config.run_dir)
    network = network_config(config.network)
    start_run(config.trainer)
    data = PriorDataModule(config.data, network.resolution, seed=config.trainer.seed)
    system = PriorSystem(network, config.train)
    trainer = make_trainer(
        config.trainer,
        run_dir,
        val_check_interval=config.train.val_every_n_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=config.train.val_batches,
    )
    rank0 = trainer.global_rank == 0
    checkpoint = None
    if resume is not None:
        if rank0:
            clean_after_interruption(run_dir)
        checkpoint = last_checkpoint(run_dir)
        if rank0:
            say(resume_message(run_dir, checkpoint))
    if rank0:
        save_config(tree, run_dir / "config.yaml")
    run_training(trainer, system, run_dir, checkpoint, "train-prior", datamodule=data)
    exported = system.export(run_dir / "prior.safetensors") if rank0 else None
    return PriorTrainResult(run_dir, exported, system, trainer.global_rank, trainer.world_size, trainer.global_step)


def _launched_rank() -> bool:
    """Whether this process is one Lightning (or torchrun) launched for a rank other than 0."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in ("LOCAL_RANK", "RANK", "NODE_RANK"))


def clean_after_interruption(run_dir: Path) -> None:
    """Before a resume: remove the temporary files of writes a kill interrupted (no writer is alive)."""
    from hoirecon.utils.io import remove_temporaries

    removed = remove_temporaries(run_dir)
    if removed:
        names = ", ".join(str(p.relative_to(run_dir)) for p in removed[:3]) + (", ..." if len(removed) > 3 else "")
        message = f"{run_dir}: removed {len(removed)} temporary files of interrupted writes ({names})"
        warnings.warn(message, HoireconWarning, stacklevel=2)


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    """``("a.b", 1)`` -> ``{"a": {"b": 1}}``; a mapping value merges into the section it names."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"override key '{dotted}' is not a dotted.key")
    node: Any = value
    for part in reversed(parts):
        node = {part: node}
    return node


def _tree(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)
