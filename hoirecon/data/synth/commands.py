"""What ``hoirecon synth clip|split|prior-data`` do, as functions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.errors import DataError
from hoirecon.utils.io import atomic_write_text

#: Named splits: (category, seed) per clip and the clip settings they share.
SPLITS: dict[str, dict] = {
    # DiffHOI's HOI4D test split: 2 clips each of 6 rigid categories, each seeing about one side
    "hoi4d-like": {
        "clips": [(c, s) for c in ("mug", "bottle", "kettle", "bowl", "knife", "toycar") for s in (1, 2)],
        "arc_degrees": 120.0,
    },
    # The prior ablation (benchmarks/prior.py): narrow arcs leave the far side to the prior; mugs twice,
    # since their cavity is invisible to masks
    "narrow": {
        "clips": [("mug", 1), ("mug", 2), ("bottle", 1), ("bowl", 1), ("kettle", 1), ("toycar", 1)],
        "arc_degrees": 40.0,
    },
}


def synth_clip(cfg: SynthClipConfig, out: str | Path, overwrite: bool = False) -> Path:
    """Generate one clip and write it (atomically) to ``out``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; choose a new --out folder or pass --overwrite")
    clip = make_clip(cfg)
    return write_clip(clip, out, overwrite=overwrite)


def synth_split(
    preset: str, out: str | Path, base: SynthClipConfig, advance=None, arc_degrees: float | None = None
) -> list[Path]:
    """Write every clip of a named split under ``out`` (existing clips are kept: a rerun resumes).

    ``arc_degrees`` overrides the preset's camera arc.
    """
    if preset not in SPLITS:
        raise DataError(f"unknown split preset '{preset}'; presets: {', '.join(SPLITS)}")
    spec = SPLITS[preset]
    out = Path(out)
    paths = []
    for category, seed in spec["clips"]:
        path = out / f"{category}{seed}"
        if not path.exists():
            cfg = replace(base, category=category, seed=seed, arc_degrees=arc_degrees or spec["arc_degrees"])
            write_clip(make_clip(cfg), path)
        paths.append(path)
        if advance:
            advance(1)
    atomic_write_text(out / "manifest.txt", "".join(f"{p.name}\n" for p in paths))
    return paths
