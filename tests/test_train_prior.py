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
    assert extra == {"steps": 3, "ema_decay": 0.999} and model.cfg.resolution == 16
    # the same folder again is refused; --resume continues to a larger step budget
    assert main([*args, f"data.path={data}", f"run_dir={run}", "trainer.max_steps=3"]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train-prior", "--resume", str(run), "trainer.max_steps=5"]) == 0
    assert load_checkpoint(run / "prior.safetensors")[1]["steps"] == 5


@pytest.mark.slow  # DDP training in two processes
def test_train_prior_with_two_processes(tmp_path):
    data = make_shards(tmp_path / "data", n_shards=5)
    run = tmp_path / "run"
    exe = Path(sys.executable).with_name("hoirecon")
    cmd = [str(exe), "train-prior", "--config", str(REPO / "configs/prior/default.yaml"), *TINY]
    cmd += [f"data.path={data}", f"run_dir={run}", "trainer.max_steps=2", "trainer.devices=2", "trainer.strategy=ddp"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_checkpoint(run / "prior.safetensors")[1]["steps"] == 2


def test_learning_rate_warms_up_then_decays_to_its_floor():
    from hoirecon.schema import PriorTrainSection
    from hoirecon.systems.prior import lr_factor

    cfg = PriorTrainSection(warmup_steps=10, lr_min=0.1)
    assert lr_factor(0, cfg, 110) == pytest.approx(0.1) and lr_factor(9, cfg, 110) == pytest.approx(1.0)
    assert lr_factor(60, cfg, 110) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert lr_factor(110, cfg, 110) == pytest.approx(0.1) and lr_factor(500, cfg, 110) == pytest.approx(0.1)
    assert lr_factor(60, PriorTrainSection(lr_schedule="constant"), 110) == 1.0


def test_the_moving_average_is_what_is_exported(tmp_path):
    from hoirecon.priors.diffusion import NetworkConfig
    from hoirecon.schema import PriorTrainSection
    from hoirecon.systems.prior import PriorSystem

    net = NetworkConfig(16, [16, 32], ["DownBlock2D", "AttnDownBlock2D"], norm_num_groups=8)
    system = PriorSystem(net, PriorTrainSection(ema_decay=0.5))
    start = [p.detach().clone() for p in system.model.parameters()]
    system.ema.update_parameters(system.model)  # the first update copies
    with torch.no_grad():
        for p in system.model.parameters():
            p.add_(1.0)
    system.ema.update_parameters(system.model)  # then 0.5 old + 0.5 new
    averaged = list(system.averaged.parameters())
    assert all(torch.allclose(a, s + 0.5) for a, s in zip(averaged, start))
    model, _ = load_checkpoint(system.export(tmp_path / "p.safetensors"))
    first = next(iter(model.unet.state_dict().values()))
    assert torch.allclose(first, next(iter(system.averaged.unet.state_dict().values())), atol=1e-2)  # float16
    assert PriorSystem(net, PriorTrainSection(ema_decay=0.0)).averaged is not None
    from hoirecon.errors import ConfigError

    with pytest.raises(ConfigError, match="train.lr_schedule"):
        PriorSystem(net, PriorTrainSection(lr_schedule="linear"))


def test_heldout_shards_first_or_last(tmp_path):
    from hoirecon.schema import PriorDataSection
    from hoirecon.systems.prior import PriorDataModule

    data = make_shards(tmp_path / "data", n_shards=4)
    last = PriorDataModule(PriorDataSection(path=str(data), val_shards=1), 16)
    first = PriorDataModule(PriorDataSection(path=str(data), val_shards=1, heldout="first"), 16)
    assert [s.name for s in last.val_shards] == ["shard_00003.npz"] and len(last.train_shards) == 3
    assert [s.name for s in first.val_shards] == ["shard_00000.npz"] and first.train_shards[0].name == "shard_00001.npz"
    with pytest.raises(DataError, match="data.heldout must be"):
        PriorDataModule(PriorDataSection(path=str(data), heldout="middle"), 16)


def test_a_moving_average_decay_outside_0_1_is_refused():
    from hoirecon.errors import ConfigError
    from hoirecon.priors.diffusion import NetworkConfig
    from hoirecon.schema import PriorTrainSection
    from hoirecon.systems.prior import PriorSystem

    net = NetworkConfig(16, [16, 32], ["DownBlock2D", "AttnDownBlock2D"], norm_num_groups=8)
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\), got 1.0"):
        PriorSystem(net, PriorTrainSection(ema_decay=1.0))


def test_init_from_starts_from_a_checkpoints_weights(tmp_path):
    from hoirecon.errors import ConfigError
    from hoirecon.priors.diffusion import NetworkConfig
    from hoirecon.schema import PriorTrainSection
    from hoirecon.systems.prior import PriorSystem

    net = NetworkConfig(16, [16, 32], ["DownBlock2D", "AttnDownBlock2D"], norm_num_groups=8)
    torch.manual_seed(0)
    saved = PriorSystem(net, PriorTrainSection(ema_decay=0.0))
    path = saved.export(tmp_path / "start.safetensors")
    torch.manual_seed(1)
    fresh = PriorSystem(net, PriorTrainSection())
    started = PriorSystem(net, PriorTrainSection(init_from=str(path)))
    weights = next(iter(saved.model.unet.state_dict().values()))
    assert not torch.allclose(next(iter(fresh.model.unet.state_dict().values())), weights, atol=1e-2)
    assert torch.allclose(next(iter(started.model.unet.state_dict().values())), weights, atol=1e-2)  # float16 file
    assert torch.allclose(next(iter(started.averaged.unet.state_dict().values())), weights, atol=1e-2)
    other = NetworkConfig(16, [16, 32], ["DownBlock2D", "DownBlock2D"], norm_num_groups=8)
    with pytest.raises(ConfigError, match="train.init_from: .* has another network"):
        PriorSystem(other, PriorTrainSection(init_from=str(path)))


# One "node" of a multi-node training: the same call on every machine (hoirecon.api.train_prior), which
# then reports what its rank holds: a digest of the weights it trained and of the ones it started from.
NODE = """
import hashlib, json, sys
import torch
from hoirecon.api import train_prior

def digest(module):
    h = hashlib.sha256()
    for value in module.state_dict().values():
        h.update(value.detach().to(torch.float64).numpy().tobytes())
    return h.hexdigest()

config, out, *overrides = sys.argv[1:]
result = train_prior(config, overrides=overrides)
report = {"rank": result.global_rank, "world": result.world_size, "steps": result.steps,
          "weights": digest(result.system.model), "checkpoint": str(result.checkpoint)}
with open(out, "w") as f:
    json.dump(report, f)
"""


@pytest.mark.slow  # two processes, one per "node", over gloo on localhost
def test_train_prior_on_two_nodes(tmp_path):
    """Lightning's multi-node path as a cluster runs it: every node the same command, with MASTER_ADDR,
    MASTER_PORT and NODE_RANK set (what SLURM or torchrun provide). The nodes train on different shards,
    so only the gradients' all-reduce keeps their weights equal after a step."""
    import json
    import os
    import socket

    data = make_shards(tmp_path / "data", n_shards=4)
    run = tmp_path / "run"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [*TINY, f"data.path={data}", f"run_dir={run}", "trainer.max_steps=2", "trainer.num_nodes=2"]
    args += ["trainer.devices=1", "trainer.strategy=ddp", "trainer.threads=1"]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(rank)}
        env.update({"LOCAL_RANK": "0", "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"})
        cmd = [sys.executable, "-c", NODE, str(REPO / "configs/prior/default.yaml"), str(tmp_path / f"node{rank}.json")]
        procs.append(subprocess.Popen([*cmd, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-1500:] + outputs[1][-1500:]
    reports = [json.loads((tmp_path / f"node{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1] and all(r["world"] == 2 and r["steps"] == 2 for r in reports)
    assert reports[0]["weights"] == reports[1]["weights"]
    assert reports[0]["checkpoint"] == str(run / "prior.safetensors") and reports[1]["checkpoint"] == "None"
    assert load_checkpoint(run / "prior.safetensors")[1]["steps"] == 2


def test_train_t_min_reaches_the_training_loss(monkeypatch):
    from types import SimpleNamespace

    from hoirecon.priors.diffusion import NetworkConfig
    from hoirecon.schema import PriorTrainSection
    from hoirecon.systems.prior import PriorSystem

    net = NetworkConfig(16, [16, 32], ["DownBlock2D", "AttnDownBlock2D"], norm_num_groups=8)
    system = PriorSystem(net, PriorTrainSection(t_min=0.9, ema_decay=0.0))
    drawn = []
    real = system.model.raw

    def spy(x_t, condition, t, class_ids):
        drawn.append(t.clone())
        return real(x_t, condition, t, class_ids)

    monkeypatch.setattr(system.model, "raw", spy)
    monkeypatch.setattr(system, "log", lambda *a, **k: None)
    monkeypatch.setattr(system, "optimizers", lambda: SimpleNamespace(param_groups=[{"lr": 0.0}]))
    target, condition = torch.zeros(8, 5, 16, 16), torch.zeros(8, 7, 16, 16)
    system.training_step((target, condition, ["mug"] * 8), 0)
    steps = system.model.cfg.num_train_timesteps
    assert int(torch.cat(drawn).min()) >= int(0.9 * steps)
