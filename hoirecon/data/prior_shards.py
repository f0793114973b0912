"""Prior-training samples on disk: shards of condition/target channel images with category labels.

A dataset folder holds ``shard_00000.npz ...`` (float16 ``condition`` (n, 7, R, R), ``target``
(n, 5, R, R) in the layouts of ``hoirecon.priors.base``, unicode ``category`` (n,)) and an
``index.json`` (resolution, channel names, per-shard counts). Shards are written atomically, so an
interrupted generator resumes by skipping the shards that exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from hoirecon.errors import DataError
from hoirecon.priors.base import HAND_CHANNELS, OBJECT_CHANNELS
from hoirecon.utils.io import atomic_path, atomic_write_text


def shard_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"shard_{index:05d}.npz"


def write_shard(path: Path, condition: np.ndarray, target: np.ndarray, categories: Sequence[str]) -> Path:
    """Write one shard atomically (float16 channels)."""
    n = len(categories)
    if condition.shape[:2] != (n, len(HAND_CHANNELS)) or target.shape[:2] != (n, len(OBJECT_CHANNELS)):
        raise ValueError(f"shard shapes disagree: condition {condition.shape}, target {target.shape}, {n} labels")
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            condition=condition.astype(np.float16),
            target=target.astype(np.float16),
            category=np.asarray(list(categories), dtype=np.str_),
        )
    return Path(path)


def write_index(folder: Path, resolution: int) -> dict:
    """(Re)write index.json from the shards present."""
    shards = sorted(Path(folder).glob("shard_*.npz"))
    counts = {}
    for shard in shards:
        with np.load(shard) as data:
            counts[shard.name] = int(len(data["category"]))
    index = {
        "resolution": resolution,
        "object_channels": list(OBJECT_CHANNELS),
        "hand_channels": list(HAND_CHANNELS),
        "shards": counts,
        "samples": sum(counts.values()),
    }
    atomic_write_text(Path(folder) / "index.json", json.dumps(index, indent=1))
    return index


def read_index(folder: Path) -> dict:
    path = Path(folder) / "index.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; is {folder} a prior-data folder (`hoirecon synth prior-data`)?")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None
    if index.get("object_channels") != list(OBJECT_CHANNELS) or index.get("hand_channels") != list(HAND_CHANNELS):
        raise DataError(f"{path}: channel layout differs from this version of hoirecon")
    if not index.get("shards"):
        raise DataError(f"{path}: lists no shards")
    return index


def split_heldout(shards: Sequence[Path], n_heldout: int, which: str = "last") -> tuple[list[Path], list[Path]]:
    """(training, held-out) shards: the ``which`` ("first" or "last") ``n_heldout`` are held out. The
    first ones stay the same while a dataset grows."""
    shards = list(shards)
    if which == "last":
        split = len(shards) - n_heldout
        return shards[:split], shards[split:]
    if which == "first":
        return shards[n_heldout:], shards[:n_heldout]
    raise DataError(f"data.heldout must be 'first' or 'last', not {which!r}")


class ShardStream(IterableDataset):
    """Streams (target (5,R,R), condition (7,R,R), category) from shards, reshuffled every pass.

    Each DataLoader worker of each distributed rank (``rank``/``world_size``) reads its own part: whole
    shards when there are enough of them, else every n-th sample, so no sample is seen twice in a
    pass. With ``infinite`` the passes repeat (training runs for a number of steps, not epochs).
    """

    def __init__(
        self,
        shards: Sequence[Path],
        seed: int = 0,
        shuffle: bool = True,
        infinite: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        if not shards:
            raise DataError("no prior-data shards to read")
        self.shards, self.seed, self.shuffle, self.infinite = [Path(s) for s in shards], seed, shuffle, infinite
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, str]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        parts, part = self.world_size * workers, self.rank * workers + worker
        by_shard = len(self.shards) >= parts
        epoch = 0
        while True:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.shards)) if self.shuffle else np.arange(len(self.shards))
            counter = 0
            for i in order[part::parts] if by_shard else order:
                with np.load(self.shards[i]) as data:
                    condition, target, category = data["condition"], data["target"], data["category"]
                samples = rng.permutation(len(category)) if self.shuffle else np.arange(len(category))
                for j in samples:
                    counter += 1
                    if not by_shard and (counter - 1) % parts != part:
                        continue
                    yield (
                        torch.from_numpy(target[j].astype(np.float32)),
                        torch.from_numpy(condition[j].astype(np.float32)),
                        str(category[j]),
                    )
            epoch += 1
            if not self.infinite:
                return
