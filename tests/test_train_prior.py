"""`hoirecon train-prior` end to end at tiny size: outputs, resume, held-out split, 2-process DDP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hoirecon.cli import main
from hoirecon.data.prior_shards import ShardStream, read_index, shard_path, write_index, write_shard
from hoirecon.errors import DataError
from hoirecon.priors.diffusion import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "network.resolution=16",
    "network.block_out_channels=[16,32]",
    "network.down_block_types=[DownBlock2D,AttnDownBlock2D]",
    "network.norm_num_groups=8",
    "data.batch_size=4",
    "data.val_shards=1",
    "train.val_every_n_steps=2",
    "train.val_batches=1",
    "train.sample_every_n_steps=2",
    "train.sample_steps=2",
    "trainer.log_every_n_steps=1",
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
]


def make_shards(folder: Path, n_shards: int = 3, per_shard: int = 6, resolution: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n_shards):
        cond = rng.uniform(-1, 1, (per_shard, 7, resolution, resolution))
        target = rng.uniform(-1, 1, (per_shard, 5, resolution, resolution))
        write_shard(shard_path(folder, i), cond, target, ["mug", "bottle", "spoon"] * (per_shard // 3))
    write_index(folder, resolution)
    return folder


def test_shard_stream_splits_work_without_overlap(tmp_path):
    folder = make_shards(tmp_path / "data", n_shards=3, per_shard=6)
    shards = sorted(folder.glob("shard_*.npz"))
    assert read_index(folder)["samples"] == 18
    for world in (2, 4):  # 4 parts > 3 shards: split by sample instead
        seen = []
        for rank in range(world):
            part = list(ShardStream(shards, seed=1, rank=rank, world_size=world))
            seen += [(t.sum().item(), c) for t, _, c in part]
        assert len(seen) == 18 and len(set(seen)) == 18
    target, condition, category = next(iter(ShardStream(shards)))
    assert target.shape == (5, 16, 16) and condition.shape == (7, 16, 16) and target.dtype == torch.float32


def test_bad_prior_data_folder(tmp_path):
    with pytest.raises(DataError, match="index.json: not found"):
        read_index(tmp_path)
    with pytest.raises(ValueError, match="shard shapes disagree"):
        write_shard(tmp_path / "s.npz", np.zeros((2, 7, 4, 4)), np.zeros((3, 5, 4, 4)), ["a", "b"])


def test_train_prior_writes_a_loadable_checkpoint_and_resumes(tmp_path, capsys):
    data = make_shards(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train-prior", "--config", str(REPO / "configs/prior/default.yaml"), *TINY]
    assert main([*args, f"data.path={data}", f"run_dir={run}", "trainer.max_steps=3"]) == 0
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    model, extra = load_checkpoint(run / "prior.safetensors")
    assert extra == {"steps": 3} and model.cfg.resolution == 16
    # the same folder again is refused; --resume continues to a larger step budget
    assert main([*args, f"data.path={data}", f"run_dir={run}", "trainer.max_steps=3"]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train-prior", "--resume", str(run), "trainer.max_steps=5"]) == 0
    assert load_checkpoint(run / "prior.safetensors")[1] == {"steps": 5}


@pytest.mark.slow  # DDP training in two processes
def test_train_prior_with_two_processes(tmp_path):
    data = make_shards(tmp_path / "data", n_shards=5)
    run = tmp_path / "run"
    exe = Path(sys.executable).with_name("hoirecon")
    cmd = [str(exe), "train-prior", "--config", str(REPO / "configs/prior/default.yaml"), *TINY]
    cmd += [f"data.path={data}", f"run_dir={run}", "trainer.max_steps=2", "trainer.devices=2", "trainer.strategy=ddp"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_checkpoint(run / "prior.safetensors")[1] == {"steps": 2}
