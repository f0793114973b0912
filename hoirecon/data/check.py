"""``hoirecon data check``: a readable summary of a clip, or every problem found in it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hoirecon.categories import KNOWN_CATEGORIES
from hoirecon.data.clip import Clip, ClipError
from hoirecon.data.load import detect_format, load_clip

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, width: int = 60) -> str:
    """Values >= 0 as block characters scaled to their maximum; binned (mean) to at most ``width``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) > width:
        values = np.array([chunk.mean() for chunk in np.array_split(values, width)])
    top = values.max() if len(values) and values.max() > 0 else 1.0
    levels = np.round(values / top * (len(SPARKS) - 1)).astype(int)
    return "".join(SPARKS[i] for i in levels)


def summarize(clip: Clip, fmt: str) -> list[str]:
    n = len(clip)
    h, w = clip.image_size
    lines = [
        f"clip       {clip.path} ({fmt})",
        f"frames     {n} ({clip.frame_names[0]} .. {clip.frame_names[-1]}), {w}x{h} px, {clip.fps:g} fps",
    ]
    known = "known to the prior" if clip.category in KNOWN_CATEGORIES else "unknown: prior unconditioned"
    lines.append(f"category   {clip.category or '(none)'} ({known})")
    f = clip.K[:, 0, 0]
    lines.append(
        f"cameras    focal {f.min():.1f}-{f.max():.1f} px; initial T_cam_from_hand: "
        + ("yes" if clip.T_cam_from_hand is not None else "no")
    )
    lines.append(f"hands      initial MANO parameters: {'yes' if clip.hands is not None else 'no'}")
    for label, masks in (("hand mask", clip.hand_masks), ("obj mask", clip.object_masks)):
        cover = masks.reshape(n, -1).mean(axis=1)
        lines.append(f"{label:<10} {sparkline(cover)}  {cover.min():.1%}-{cover.max():.1%} of the image")
    zero = int((clip.frame_weights == 0).sum()) if clip.frame_weights is not None else 0
    lines.append(f"weights    {n - zero} frame(s) used" + (f", {zero} with weight 0" if zero else ""))
    gt = clip.gt
    if gt is None:
        lines.append("gt         none")
    else:
        parts = []
        if gt.object_vertices is not None:
            parts.append(f"object mesh ({len(gt.object_vertices)} vertices)")
        parts += [k for k in ("T_cam_from_obj", "T_hand_from_obj", "T_cam_from_hand") if getattr(gt, k) is not None]
        if gt.hands is not None:
            parts.append("hands")
        lines.append(f"gt         {', '.join(parts) or 'empty'}")
    return lines


def initializer_note(clip: Clip) -> str | None:
    """What a fit of a clip without initial hands needs: the default initialiser (provided) stops on it."""
    if clip.hands is not None:
        return None
    mocap = clip.path / "mocap"  # the frankmocap initialiser's default folder
    if mocap.is_dir() and any(mocap.glob("*_prediction_result.pkl")):
        use = f"initializer.type=frankmocap (FrankMocap's output is in {mocap})"
    else:
        use = (
            "initializer.type=mediapipe (hands from the frames; the [video] extra), "
            "or initializer.type=frankmocap with FrankMocap's output in mocap/"
        )
    return f"{clip.path}: no initial hands; a fit with the default initializer (provided) stops; use {use}"


def check(path: str | Path, clip_format: str | Mapping[str, Any] = "auto") -> tuple[bool, list[str]]:
    """(ok, lines to print) for the clip at ``path``."""
    path = Path(path)
    if clip_format == "auto":
        clip_format = detect_format(path)
    fmt = clip_format if isinstance(clip_format, str) else clip_format["type"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # they are printed below, once
            clip = load_clip(path, clip_format)
    except ClipError as exc:
        report = exc.report
        lines = [f"{path} ({fmt}): {len(report.errors)} problem(s)"]
        lines += [f"  error: {e}" for e in report.errors]
        lines += [f"  warning: {w}" for w in report.warnings]
        return False, lines
    lines = summarize(clip, fmt)
    note = initializer_note(clip)
    lines += [f"warning: {w}" for w in [*clip.warnings, *([note] if note else [])]]
    lines.append("ok")
    return True, lines
