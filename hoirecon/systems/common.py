"""Trainer construction shared by the fit and prior training: threads, logging, checkpoints, progress."""

from __future__ import annotations

import io
import time
import warnings
import zipfile
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from hoirecon.errors import DataError, HoireconWarning, Interrupted
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
    """``checkpoints/last.ckpt``, or when it is missing or unreadable (a truncated or corrupt file) the
    newest readable ``step*.ckpt``, with a warning saying so; None when the run has none. (A step
    checkpoint is written just before ``last.ckpt``: a process killed between the two leaves one.)"""
    folder = Path(run_dir) / "checkpoints"
    last = folder / "last.ckpt"
    if last.is_file() and readable_checkpoint(last):
        return last
    steps = sorted(folder.glob("step*.ckpt"), reverse=True)
    fallback = next((p for p in steps if readable_checkpoint(p)), None)
    if fallback is None and last.is_file():
        raise DataError(f"{last}: unreadable (truncated or corrupt) and no readable step checkpoint beside it")
    if fallback is None:
        return None
    problem = "unreadable (truncated or corrupt)" if last.is_file() else "missing"
    warnings.warn(f"{last} is {problem}; using {fallback.name} instead", HoireconWarning, stacklevel=2)
    return fallback


def readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a whole torch checkpoint (a zip whose directory and records check out)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def resume_message(run_dir: Path, checkpoint: Path | None) -> str:
    """What resuming ``run_dir`` from ``checkpoint`` (``last_checkpoint``'s) does, for the user: the
    step it continues from, or a fresh start."""
    if checkpoint is None:
        return f"{run_dir}: no checkpoint yet (the run stopped before its first); starting from step 0"
    step = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True).get("global_step", "?")
    return f"resuming {run_dir} from step {step} ({checkpoint})"


class LastCheckpoint(Callback):
    """``last.ckpt`` also every ``every_minutes`` of training (a long step budget on a slow machine
    should not lose an hour to a kill; DiffHOI saves every 1000 s) and when the run is interrupted
    (Ctrl-C: Lightning then exits with code 1 and saves nothing itself). ``interrupted_at`` is the
    step of an interrupted run's checkpoint."""

    def __init__(self, path: Path, every_minutes: float):
        self.path, self.every_seconds = Path(path), every_minutes * 60
        self.last_save = time.monotonic()
        self.interrupted_at: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if self.every_seconds > 0 and time.monotonic() - self.last_save >= self.every_seconds:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.last_save = time.monotonic()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.interrupted_at = trainer.global_step


def run_training(
    trainer: L.Trainer, system: L.LightningModule, run_dir: Path, checkpoint: Path | None, command: str, **kw
):
    """``trainer.fit`` from ``checkpoint`` (a resumed run's ``last_checkpoint``, else None); an
    interrupted run (Ctrl-C) ends in ``Interrupted`` saying where its checkpoint is and how to
    resume, not Lightning's bare exit."""
    try:
        trainer.fit(system, ckpt_path=checkpoint, **kw)
    except SystemExit:
        saver = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        if saver is None or not trainer.interrupted:
            raise
        where = (
            f"saved step {saver.interrupted_at} to {saver.path}"
            if saver.interrupted_at is not None
            else "no step was done, nothing saved"
        )
        raise Interrupted(f"interrupted; {where}", hint=f"resume with: hoirecon {command} --resume {run_dir}") from None


class StepBar(TQDMProgressBar):
    """Steps of the run (global step / max_steps), not batches of Lightning's single endless epoch:
    a resumed run shows 60/120 and its own rate, not "Training: 80/?" (a checkpoint is mid-epoch, so
    a resume never sees an epoch start: the bar is set up at the train start too)."""

    def _count_steps(self, trainer: L.Trainer) -> None:
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = bar.n = trainer.global_step  # tqdm's rate counts from ``initial``
        bar.set_description("steps", refresh=False)

    def on_train_start(self, trainer: L.Trainer, *_: object) -> None:
        super().on_train_start(trainer)
        self._count_steps(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, *_: object) -> None:
        self._count_steps(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        bar, n = self.train_progress_bar, trainer.global_step
        if bar is not None and not bar.disable and self._should_update(n, bar.total):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, module))  # refreshes


class RichStepBar(RichProgressBar):
    """``StepBar`` for terminals (Lightning's reads "Epoch 0/-2" for a run bounded by steps)."""

    def _get_train_description(self, current_epoch: int) -> str:
        return "steps"

    def _count_steps(self, trainer: L.Trainer) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.reset(self.train_progress_bar_id, total=trainer.max_steps, completed=trainer.global_step)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, module)
        self._count_steps(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:  # resumed mid-epoch
            self._initialize_train_progress_bar_id()
            self._count_steps(trainer)
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, module)
        self.refresh()


def make_trainer(cfg: TrainerSection, run_dir: Path, callbacks: list[Callback] = (), **overrides) -> L.Trainer:
    """A Trainer writing TensorBoard logs to ``run_dir/tb`` and checkpoints to ``run_dir/checkpoints``.

    ``last.ckpt`` is kept for resuming (also every ``checkpoint_every_minutes`` and on Ctrl-C), plus a
    periodic one every ``checkpoint_every_n_steps``. Run it with ``run_training``.
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
    last = LastCheckpoint(run_dir / "checkpoints" / "last.ckpt", cfg.checkpoint_every_minutes)
    progress: list[Callback] = []
    if cfg.progress_bar:
        progress = [RichStepBar(leave=True) if _is_tty() else StepBar(refresh_rate=max(cfg.log_every_n_steps, 1))]
    return L.Trainer(
        default_root_dir=run_dir,
        max_steps=cfg.max_steps,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        logger=TensorBoardLogger(run_dir, name="tb", version="", default_hp_metric=False),
        callbacks=[checkpoint, last, *progress, *callbacks],
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
