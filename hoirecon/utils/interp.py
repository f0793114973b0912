"""Filling frames whose values are missing (NaN rows) from their neighbours."""

from __future__ import annotations

import numpy as np
import roma
import torch


def fill_missing_rows(values: np.ndarray) -> np.ndarray:
    """(N, C) with NaN rows -> linear interpolation over frames; ends take the nearest known row."""
    out = np.array(values, dtype=np.float64)
    ok = np.isfinite(out).all(axis=1)
    if not ok.any():
        raise ValueError("no frame has a value to interpolate from")
    frames = np.arange(len(out))
    for c in range(out.shape[1]):
        out[:, c] = np.interp(frames, frames[ok], out[ok, c])
    return out.astype(values.dtype)


def fill_missing_rotvecs(rotvecs: np.ndarray) -> np.ndarray:
    """(N, 3) axis-angle rows with NaN rows -> slerp between the nearest known frames on each side."""
    out = np.array(rotvecs, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(out).all(axis=1))
    if len(ok) == 0:
        raise ValueError("no frame has a value to interpolate from")
    for i in np.flatnonzero(~np.isfinite(out).all(axis=1)):
        before, after = ok[ok < i], ok[ok > i]
        if len(before) == 0 or len(after) == 0:
            out[i] = out[after[0] if len(before) == 0 else before[-1]]
            continue
        a, b = before[-1], after[0]
        step = torch.tensor([(i - a) / (b - a)], dtype=torch.float64)
        out[i] = roma.rotvec_slerp(torch.from_numpy(out[a]), torch.from_numpy(out[b]), step)[0].numpy()
    return out.astype(rotvecs.dtype)
