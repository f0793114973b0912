"""Trainer construction shared by the fit and prior training: threads, logging, checkpoints, progress."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from hoirecon.errors import DataError, HoireconWarning
from hoirecon.runtime import configure_cpu
from hoirecon.schema import TrainerSection
from hoirecon.utils.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in their own folder, then renamed: truly atomic.

    Lightning's own save goes through an fsspec transaction that writes under ``$TMPDIR`` and moves
    the file into place, a copy across file systems: a full disk left a truncated step checkpoint.
    Here a full disk is an ``OutOfSpaceError`` (one line) and the previous checkpoint stays whole.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        # serialised in memory first: torch's own file writer turns a failed write (ENOSPC) into
        # "RuntimeError: unexpected pos", where Python's gives an OSError with its errno
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())


def start_run(cfg: TrainerSection) -> None:
    """Threads and seeds for a run, before anything random is built."""
    configure_cpu(cfg.threads)
    L.seed_everything(cfg.seed, verbose=False)


def last_checkpoint(run_dir: Path) -> Path | None:
    """``checkpoints/last.ckpt``, or when it is unreadable (a truncated or corrupt file) the newest
    readable ``step*.ckpt``, with a warning saying so; None when the run has none."""
    folder = Path(run_dir) / "checkpoints"
    last = folder / "last.ckpt"
    if not last.is_file():
        return None
    if readable_checkpoint(last):
        return last
    steps = sorted(folder.glob("step*.ckpt"), reverse=True)
    fallback = next((p for p in steps if readable_checkpoint(p)), None)
    if fallback is None:
        raise DataError(f"{last}: unreadable (truncated or corrupt) and no readable step checkpoint beside it")
    message = f"{last} is unreadable (truncated or corrupt); using {fallback.name} instead"
    warnings.warn(message, HoireconWarning, stacklevel=2)
    return fallback


def readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a whole torch checkpoint (a zip whose directory and records check out)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def resume_message(run_dir: Path) -> str:
    """What ``--resume run_dir`` will do, for the user: the step it continues from, or a fresh start."""
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        return f"{run_dir}: no checkpoint yet (the run stopped before its first); starting from step 0"
    step = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True).get("global_step", "?")
    return f"resuming {run_dir} from step {step} ({checkpoint})"


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
        plugins=[AtomicCheckpointIO()],
        log_every_n_steps=cfg.log_every_n_steps,
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **overrides,
    )


def _is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
