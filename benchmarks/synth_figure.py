"""docs/synth.png: a frame of a synthetic clip for every category, and prior-training samples.

Top rows: frame 0 of `hoirecon synth clip --category C` (seed 0, 128 px) for each category, with its
visible hand (red) and object (blue) mask outlines. Bottom rows: prior-training samples at 64x64 —
condition: hand mask, normal, depth (near = bright), hand code; target: object amodal mask, normal,
depth. Run: .venv/bin/python benchmarks/synth_figure.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw

from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.data.synth.prior_data import PRIOR_CATEGORIES, PriorDataConfig, generate
from hoirecon.registry import build
from hoirecon.runtime import configure_cpu

OUT = Path(__file__).resolve().parents[1] / "docs" / "synth.png"
TILE = 128


def labelled(tile: np.ndarray, text: str) -> np.ndarray:
    image = Image.fromarray(tile)
    ImageDraw.Draw(image).text((3, 2), text, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(image)


def outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def channel_tiles(x: np.ndarray, hand: bool) -> list[np.ndarray]:
    """(C, R, R) channels in [-1, 1] -> RGB uint8 tiles, upscaled to TILE."""

    def rgb(a: np.ndarray) -> np.ndarray:
        a = ((a.clip(-1, 1) + 1) / 2 * 255).astype(np.uint8)
        a = np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a
        k = TILE // a.shape[0]
        return a.repeat(k, 0).repeat(k, 1)

    tiles = [rgb(x[0]), rgb(x[1:4].transpose(1, 2, 0)), rgb(-x[4])]
    if hand:
        code = np.concatenate([x[5:7], -np.ones_like(x[:1])]).transpose(1, 2, 0)
        tiles.append(rgb(code))
    return tiles


def main() -> None:
    configure_cpu(0)
    hand = build("hand_model", "mano")
    frames = []
    for category in PRIOR_CATEGORIES:
        clip = make_clip(SynthClipConfig(category=category, frames=2, resolution=TILE), hand)
        frame = clip.images[0].copy()
        frame[outline(clip.hand_masks[0])] = (255, 40, 40)
        frame[outline(clip.object_masks[0])] = (40, 120, 255)
        frames.append(labelled(frame, category))
    frames += [np.full_like(frames[0], 255)] * (14 - len(frames))
    rows = [np.concatenate(frames[i : i + 7], 1) for i in range(0, 14, 7)]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PriorDataConfig(
            n=12, shard_size=12, resolutions=[64], workers=1, seed=3, grasps_per_object=1, views_per_grasp=1
        )
        generate(cfg, tmp)
        with np.load(Path(tmp) / "r64" / "shard_00000.npz") as data:
            condition, target, category = data["condition"].astype(np.float32), data["target"], data["category"]
    names = ("hand mask", "hand normal", "hand depth", "hand code", "object mask", "obj normal", "obj depth")
    for j in (0, 5, 10):
        tiles = channel_tiles(condition[j], True) + channel_tiles(target[j].astype(np.float32), False)
        tiles = [labelled(t, n if j == 0 else "") for t, n in zip(tiles, names)]
        tiles[0] = labelled(tiles[0], f"\n{category[j]}")
        row = np.concatenate(tiles, 1)
        rows.append(row)
    OUT.parent.mkdir(exist_ok=True)
    iio.imwrite(OUT, np.concatenate(rows, 0))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
