"""Choosing which pixels each step renders: object, hand and background in scheduled proportions."""

from __future__ import annotations

import torch


class PixelSampler:
    """Draws pixels of one frame from its object, hand and background regions.

    hand_masks, object_masks: (N, H, W) bool (disjoint). ``sample`` returns pixel coordinates
    (R, 2) as (u, v) and the ground-truth labels (R, 3) one-hot [hand, object, background]. When a
    region is empty in a frame, its share goes to the others.
    """

    def __init__(self, hand_masks: torch.Tensor, object_masks: torch.Tensor):
        self.height, self.width = hand_masks.shape[1:]
        labels = torch.full(hand_masks.shape, 2, dtype=torch.long)
        labels[object_masks] = 1
        labels[hand_masks] = 0
        flat = labels.reshape(len(labels), -1)
        # per frame, per class: the flat indices of its pixels
        self.indices = [[torch.nonzero(f == c).squeeze(1) for c in (1, 0, 2)] for f in flat]

    def sample(
        self, frame: int, n: int, proportions: tuple[float, float, float], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``proportions`` are (object, hand, background) shares; they are renormalised over non-empty regions."""
        regions = self.indices[frame]
        shares = torch.tensor([p if len(r) else 0.0 for p, r in zip(proportions, regions)])
        shares = shares / shares.sum()
        counts = (shares * n).floor().long()
        counts[int(shares.argmax())] += n - int(counts.sum())
        picked, labels = [], []
        for cls, (region, count) in zip((1, 0, 2), zip(regions, counts.tolist())):
            if count == 0:
                continue
            picked.append(region[torch.randint(len(region), (count,), generator=generator)])
            labels.append(torch.full((count,), cls))
        flat = torch.cat(picked)
        pixels = torch.stack([flat % self.width, flat // self.width], dim=-1).float()
        return pixels, torch.nn.functional.one_hot(torch.cat(labels), 3).float()
