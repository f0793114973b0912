"""Everything a finished fit leaves in its run folder: the fit's own files, then its scores.

It sits above both ``hoirecon.fit.outputs`` (meshes, poses, hands, preview) and
``hoirecon.eval.fit_scores`` (which reads the fitted scene), so that neither has to import the
other (docs/architecture.md, section Layers).
"""

from __future__ import annotations

import json
from pathlib import Path

from hoirecon.data.clip import Clip
from hoirecon.eval.fit_scores import evaluate
from hoirecon.fit.outputs import write_fit_outputs
from hoirecon.fit.scene import FitScene
from hoirecon.utils.io import atomic_write_text


def write_outputs(
    scene: FitScene,
    clip: Clip,
    run_dir: str | Path,
    mesh_resolution: int,
    preview: dict,
    fit_stats: dict | None = None,
    say=None,
) -> dict:
    """Write every output, metrics.json last; returns the metrics (empty without ground truth), with
    ``fit_stats`` (figures of the optimisation itself, e.g. ``fit/sds_steps``) added. ``say(message)``
    is told each stage."""
    mesh = write_fit_outputs(scene, clip, run_dir, mesh_resolution, preview, say)
    if clip.gt is not None and say is not None:
        say("scoring against the ground truth ...")
    metrics = {**evaluate(scene, clip, mesh), **(fit_stats or {})} if clip.gt is not None else {}
    if metrics:
        atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=1))
    return metrics
