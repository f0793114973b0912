"""Load a clip in any registered format, detecting the format when asked to."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hoirecon.data.clip import Clip
from hoirecon.errors import DataError
from hoirecon.registry import REGISTRY


def detect_format(path: Path) -> str:
    """Name of the registered clip format of highest ``priority`` (ties: by name) whose ``detect`` accepts ``path``."""
    if not path.exists():
        raise DataError(f"{path}: clip folder not found")
    entries = sorted(REGISTRY.entries("clip_format"), key=lambda e: (-e.obj.priority, e.name))
    for entry in entries:
        if entry.obj.detect(path):
            return entry.name
    names = ", ".join(e.name for e in entries)
    raise DataError(
        f"{path}: not a clip in any known layout ({names})",
        hint="see docs/data.md for the layouts, or pass the format explicitly",
    )


def load_clip(path: str | Path, clip_format: str | Mapping[str, Any] = "auto") -> Clip:
    """Load and validate a clip. ``clip_format``: "auto", a format name, or ``{"type": name, ...}``."""
    path = Path(path)
    if clip_format == "auto":
        clip_format = detect_format(path)
    return REGISTRY.build("clip_format", clip_format, where="clip_format").load(path)
