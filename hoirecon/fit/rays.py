"""Choosing which pixels each step renders: object, hand and background in scheduled proportions."""

from __future__ import annotations

import torch
from torch import nn

#: The regions in the order ``proportions`` name them, as label values (0 hand, 1 object, 2 background).
REGION_LABELS = (1, 0, 2)


class PixelSampler(nn.Module):
    """Draws pixels of one frame from its object, hand and background regions.

    hand_masks, object_masks: (N, H, W) bool (disjoint). ``sample`` returns pixel coordinates
    (R, 2) as (u, v) and the ground-truth labels (R, 3) one-hot [hand, object, background]. When a
    region is empty in a frame, its share goes to the others. The index tables are buffers, so the
    sampler moves with the module that owns it.
    """

    def __init__(self, hand_masks: torch.Tensor, object_masks: torch.Tensor):
        super().__init__()
        self.height, self.width = hand_masks.shape[1:]
        labels = torch.full(hand_masks.shape, 2, dtype=torch.long)
        labels[object_masks] = 1
        labels[hand_masks] = 0
        flat = labels.reshape(len(labels), -1)
        # per frame: flat pixel indices grouped by region (object, hand, background), ascending in each,
        # and where each region starts in that order
        rank = torch.tensor(REGION_LABELS).argsort()[flat]  # label -> its place in REGION_LABELS
        counts = torch.stack([(flat == c).sum(1) for c in REGION_LABELS], dim=1)  # (N, 3)
        self.register_buffer("order", torch.argsort(rank, dim=1, stable=True), persistent=False)  # (N, H*W)
        self.register_buffer("starts", torch.cumsum(counts, 1) - counts, persistent=False)  # (N, 3)
        self.register_buffer("counts", counts, persistent=False)

    def region(self, frame: int, k: int) -> torch.Tensor:
        """Flat pixel indices of region k (0 object, 1 hand, 2 background) in ``frame``."""
        start, count = int(self.starts[frame, k]), int(self.counts[frame, k])
        return self.order[frame, start : start + count]

    def sample(
        self,
        frame: int,
        n: int,
        proportions: tuple[float, float, float],
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``proportions`` are (object, hand, background) shares; they are renormalised over non-empty regions.
        Pixels and labels come back as ``dtype``, on the sampler's device."""
        regions = [self.region(frame, k) for k in range(len(REGION_LABELS))]
        shares = torch.tensor([p if len(r) else 0.0 for p, r in zip(proportions, regions)])
        shares = shares / shares.sum()
        counts = (shares * n).floor().long()
        counts[int(shares.argmax())] += n - int(counts.sum())
        picked, labels = [], []
        device = self.order.device
        for cls, (region, count) in zip(REGION_LABELS, zip(regions, counts.tolist())):
            if count == 0:
                continue
            # drawn on the generator's device (the CPU), then moved: the same pixels on every device
            picked.append(region[torch.randint(len(region), (count,), generator=generator).to(device)])
            labels.append(torch.full((count,), cls, device=device))
        flat = torch.cat(picked)
        pixels = torch.stack([flat % self.width, flat // self.width], dim=-1).to(dtype)
        return pixels, torch.nn.functional.one_hot(torch.cat(labels), 3).to(dtype)
