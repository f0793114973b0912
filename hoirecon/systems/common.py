"""Trainer construction shared by the fit and prior training: threads, logging, checkpoints, progress."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from hoirecon.runtime import configure_cpu
from hoirecon.schema import TrainerSection


def start_run(cfg: TrainerSection) -> None:
    """Threads and seeds for a run, before anything random is built."""
    configure_cpu(cfg.threads)
    L.seed_everything(cfg.seed, verbose=False)


def last_checkpoint(run_dir: Path) -> Path | None:
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def make_trainer(cfg: TrainerSection, run_dir: Path, callbacks: list[Callback] = (), **overrides) -> L.Trainer:
    """A Trainer writing TensorBoard logs to ``run_dir/tb`` and checkpoints to ``run_dir/checkpoints``.

    ``last.ckpt`` is kept for resuming, plus a periodic one every ``checkpoint_every_n_steps``.
    """
    run_dir = Path(run_dir)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint_every_n_steps,
        save_last=True,
        save_top_k=-1,
        # a resumed run overwrites last.ckpt instead of writing last-v1.ckpt beside it
        enable_version_counter=False,
    )
    progress: list[Callback] = []
    if cfg.progress_bar:
        progress = [
            RichProgressBar(leave=True) if _is_tty() else TQDMProgressBar(refresh_rate=max(cfg.log_every_n_steps, 1))
        ]
    return L.Trainer(
        default_root_dir=run_dir,
        max_steps=cfg.max_steps,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        logger=TensorBoardLogger(run_dir, name="tb", version="", default_hp_metric=False),
        callbacks=[checkpoint, *progress, *callbacks],
        log_every_n_steps=cfg.log_every_n_steps,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **overrides,
    )


def _is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
