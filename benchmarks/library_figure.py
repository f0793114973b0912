"""docs/library.png: every named mesh of the mesh library, and some random shapes, held by the hand.

Frame 0 of a 2-frame synthetic clip (seed 0, 160 px, full arc) of each library object, scaled to a
size of its category, with its visible hand (red) and object (blue) mask outlines. Needs the meshes
extra (pip install -e '.[meshes]'). Run: .venv/bin/python benchmarks/library_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from synth_figure import labelled, outline

from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.data.synth.library import LIBRARY, SHAPE_CATEGORY, library_index
from hoirecon.registry import build
from hoirecon.runtime import configure_cpu
from hoirecon.utils.io import atomic_path

OUT = Path(__file__).resolve().parents[1] / "docs" / "library.png"
TILE, COLUMNS = 160, 5


def main() -> None:
    import imageio.v3 as iio

    configure_cpu(0)
    hand = build("hand_model", "mano")
    generator = build("object_generator", "library")
    shapes = [e for e in library_index() if e.category == SHAPE_CATEGORY][::250][:4]
    tiles = []
    for i, entry in enumerate([*LIBRARY, *shapes]):
        obj = generator.object_of(entry, np.random.default_rng(i))
        clip = make_clip(SynthClipConfig(category=entry.category, frames=2, resolution=TILE), hand, obj)
        frame = clip.images[0].copy()
        frame[outline(clip.hand_masks[0])] = (255, 40, 40)
        frame[outline(clip.object_masks[0])] = (40, 120, 255)
        tiles.append(labelled(frame, f"{entry.name}\n{obj.extent.max() * 100:.0f} cm"))
        print(f"{entry.name:34s} {entry.category:8s} {obj.extent.round(3)}")
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % COLUMNS)
    rows = [np.concatenate(tiles[i : i + COLUMNS], 1) for i in range(0, len(tiles), COLUMNS)]
    with atomic_path(OUT) as tmp:
        iio.imwrite(tmp, np.concatenate(rows, 0))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
