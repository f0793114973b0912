"""What ``hoirecon synth clip|split|prior-data`` do, as functions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.errors import DataError
from hoirecon.utils.io import atomic_write_text

#: Named splits: (category, seed) per clip, the clip settings they share, and the categories whose
#: objects come from the mesh library (the rest are procedural).
SPLITS: dict[str, dict] = {
    # DiffHOI's HOI4D test split: 2 clips each of 6 rigid categories, each seeing about one side
    "hoi4d-like": {
        "clips": [(c, s) for c in ("mug", "bottle", "kettle", "bowl", "knife", "toycar") for s in (1, 2)],
        "arc_degrees": 120.0,
    },
    # The same with real meshes where the library has the category (and its open cup), procedural elsewhere
    "hoi4d-real": {
        "clips": [(c, s) for c in ("mug", "bottle", "kettle", "cup", "bowl", "knife", "toycar") for s in (1, 2)],
        "arc_degrees": 120.0,
        "library": ("mug", "bottle", "kettle", "cup"),
    },
    # The prior ablation (benchmarks/prior.py): narrow arcs leave the far side to the prior, every
    # HOI4D category twice
    "narrow12": {
        "clips": [(c, s) for c in ("mug", "bottle", "kettle", "bowl", "knife", "toycar") for s in (1, 2)],
        "arc_degrees": 40.0,
    },
    # The first, smaller prior ablation; mugs twice, since their cavity is invisible to masks
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


def split_configs(preset: str, base: SynthClipConfig, arc_degrees: float | None = None) -> dict[str, SynthClipConfig]:
    """The clip configs of a named split, by clip folder name; ``arc_degrees`` overrides the preset's arc.

    Objects come from the library for the preset's library categories, or for all of them when
    ``base.objects`` is "library". With ``base.object_mesh`` every clip shows that mesh: one clip per
    seed of the preset, named after ``base.category``.
    """
    if preset not in SPLITS:
        raise DataError(f"unknown split preset '{preset}'; presets: {', '.join(SPLITS)}")
    spec = SPLITS[preset]
    if base.object_mesh:
        seeds = dict.fromkeys(seed for _, seed in spec["clips"])
        arc = arc_degrees or spec["arc_degrees"]
        return {f"{base.category}{seed}": replace(base, seed=seed, arc_degrees=arc) for seed in seeds}
    library = {c for c, _ in spec["clips"]} if base.objects == "library" else set(spec.get("library", ()))
    return {
        f"{category}{seed}": replace(
            base,
            category=category,
            seed=seed,
            arc_degrees=arc_degrees or spec["arc_degrees"],
            objects="library" if category in library else "procedural",
        )
        for category, seed in spec["clips"]
    }


def synth_split(
    preset: str, out: str | Path, base: SynthClipConfig, advance=None, arc_degrees: float | None = None
) -> list[Path]:
    """Write every clip of a named split under ``out`` (existing clips are kept: a rerun resumes)."""
    configs = split_configs(preset, base, arc_degrees)
    out = Path(out)
    paths = []
    for name, cfg in configs.items():
        path = out / name
        if not path.exists():
            write_clip(make_clip(cfg), path)
        paths.append(path)
        if advance:
            advance(1)
    atomic_write_text(out / "manifest.txt", "".join(f"{p.name}\n" for p in paths))
    return paths
