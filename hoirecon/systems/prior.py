"""Prior training: ``network_config`` (the run config's network section), ``PriorSystem`` (LightningModule)
and ``PriorDataModule`` over prior-data shards."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from hoirecon.data.prior_shards import ShardStream, read_index, split_heldout
from hoirecon.dataclass_config import make_config
from hoirecon.errors import ConfigError, DataError
from hoirecon.priors.diffusion import HIGH_T, Denoiser, NetworkConfig, load_checkpoint, save_checkpoint
from hoirecon.schema import PriorDataSection, PriorTrainSection


def network_config(section: Mapping[str, Any]) -> NetworkConfig:
    """The run config's ``network:`` section as the denoiser's ``NetworkConfig``; a bad key or value is
    one line naming ``network.<key>``. (``hoirecon.schema`` keeps the section a plain mapping so that
    it names no concrete prior.)"""
    return make_config(NetworkConfig, section, component="the prior network (NetworkConfig)", where="network")


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    target, condition, category = zip(*batch)
    return torch.stack(target), torch.stack(condition), list(category)


class PriorDataModule(L.LightningDataModule):
    """Training stream over all shards but ``val_shards`` held out (the last or the first ones)."""

    def __init__(self, cfg: PriorDataSection, resolution: int, seed: int = 0):
        super().__init__()
        self.cfg, self.seed = cfg, seed
        folder = Path(cfg.path)
        index = read_index(folder)
        if index["resolution"] != resolution:
            raise DataError(f"{folder}: samples are {index['resolution']} px, the network wants {resolution} px")
        shards = [folder / name for name in sorted(index["shards"])]
        missing = [s for s in shards if not s.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: listed in index.json but missing")
        if len(shards) <= cfg.val_shards:
            raise DataError(f"{folder}: {len(shards)} shard(s); need more than data.val_shards = {cfg.val_shards}")
        self.train_shards, self.val_shards = split_heldout(shards, cfg.val_shards, cfg.heldout)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        stream = ShardStream(self.train_shards, seed=self.seed, infinite=True, rank=rank, world_size=world)
        return DataLoader(stream, batch_size=self.cfg.batch_size, num_workers=self.cfg.num_workers, collate_fn=_collate)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        stream = ShardStream(self.val_shards, seed=0, shuffle=False, rank=rank, world_size=world)
        return DataLoader(stream, batch_size=self.cfg.batch_size, num_workers=0, collate_fn=_collate)


class PriorSystem(L.LightningModule):
    """Trains a Denoiser; logs losses, held-out losses (with and without category) and sample grids."""

    def __init__(self, network: NetworkConfig, train: PriorTrainSection):
        super().__init__()
        if train.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"train.lr_schedule must be cosine or constant, not {train.lr_schedule!r}")
        if not 0 <= train.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {train.ema_decay}")
        self.network, self.train_cfg = network, train
        self.model = Denoiser(network)
        if train.init_from:
            start, _ = load_checkpoint(train.init_from)
            if start.cfg != network:
                raise ConfigError(
                    f"train.init_from: {train.init_from} has another network ({start.cfg}) than network: ({network})"
                )
            self.model.unet.load_state_dict(start.unet.state_dict())
        # the average of the weights is what is validated, sampled and exported
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(train.ema_decay), use_buffers=True)
            if train.ema_decay > 0
            else None
        )
        if self.ema is not None:
            self.ema.requires_grad_(False)  # not trained: DDP would wait for its gradients

    @property
    def averaged(self) -> Denoiser:
        """The weights to use: the moving average if there is one, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        target, condition, categories = batch
        ids = self.model.class_ids(categories, warn=False)
        loss = self.model.training_loss(
            target,
            condition,
            ids,
            p_uncond=self.train_cfg.p_uncond,
            p_no_hand=self.train_cfg.p_no_hand,
            t_min=self.train_cfg.t_min,
        )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(target))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=len(target))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        target, condition, categories = batch
        model = self.averaged
        ids = model.class_ids(categories, warn=False)
        cond, uncond = (x.mean() for x in model.heldout_losses(target, condition, ids, seed=batch_idx))
        self.log("val/loss_cond", cond, sync_dist=True, batch_size=len(target))
        self.log("val/loss_uncond", uncond, sync_dist=True, batch_size=len(target))
        # what the x0 distillation uses: the one-step x0's error at high t (docs/prior.md)
        x0_high, _ = model.heldout_losses(target, condition, ids, seed=batch_idx, t_min=HIGH_T, x0=True)
        self.log("val/x0_high_t", x0_high.mean(), sync_dist=True, batch_size=len(target))
        every = self.train_cfg.sample_every_n_steps
        if batch_idx == 0 and every and self.global_step % every < self.train_cfg.val_every_n_steps:
            self._log_samples(target[:4], condition[:4], ids[:4])

    def _log_samples(self, target: torch.Tensor, condition: torch.Tensor, ids: torch.Tensor) -> None:
        """Rows: hand mask | hand normal | sampled object mask | sampled normal | true mask | true normal."""
        if self.logger is None or self.global_rank != 0:
            return
        gen = torch.Generator().manual_seed(0)
        sampled = self.averaged.sample(condition, ids, self.train_cfg.sample_steps, self.train_cfg.guidance_scale, gen)

        def tiles(x: torch.Tensor) -> list[torch.Tensor]:
            mask = x[:, :1].expand(-1, 3, -1, -1)
            return [mask, x[:, 1:4]]

        rows = [torch.cat(list(t), dim=2) for t in (*tiles(condition), *tiles(sampled), *tiles(target))]
        grid = (torch.cat(rows, dim=1).clamp(-1, 1) + 1) / 2  # (3, 6H, B*W) in [0, 1]
        self.logger.experiment.add_image("samples", grid.cpu(), self.global_step)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.train_cfg
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        max_steps = self.trainer.max_steps if self._trainer is not None else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, max_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def export(self, path: Path) -> Path:
        """The (averaged) weights as a standalone prior checkpoint (what `prior.checkpoint` loads), in
        float16: half the size, and SDS and sampling do not notice (tests/test_prior.py)."""
        extra = {"steps": int(self.global_step), "ema_decay": self.train_cfg.ema_decay}
        return save_checkpoint(self.averaged, path, extra=extra, half=True)


def lr_factor(step: int, cfg: PriorTrainSection, max_steps: int) -> float:
    """Multiplier of ``cfg.lr`` at ``step``: constant, or warm-up then cosine decay to ``lr_min``."""
    if cfg.lr_schedule == "constant":
        return 1.0
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if max_steps <= cfg.warmup_steps:
        return 1.0
    progress = min((step - cfg.warmup_steps) / (max_steps - cfg.warmup_steps), 1.0)
    return cfg.lr_min + (1 - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))
