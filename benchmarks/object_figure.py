"""docs/object.png: a procedural mug fitted from 6 views of mask + distance renders, per backbone.

Rows: ground truth, mlp, hashgrid. Columns (a novel view): mask, depth (near = bright), normal, and the
marching-cubes mesh shaded by the soft rasteriser. Run: .venv/bin/python benchmarks/object_figure.py
[--threads N] (default 2; 1 is faster on a busy machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EYES, AnalyticSDF, fit_sdf_to_renders, view_rays  # noqa: E402

from hoirecon.registry import build  # noqa: E402
from hoirecon.render.raster import rasterize  # noqa: E402
from hoirecon.runtime import configure_cpu  # noqa: E402
from hoirecon.sdf.mesh import extract_mesh  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "object.png"
RES, FIT_RES, STEPS = 128, 40, 400


def tiles(net, renderer, view) -> list[np.ndarray]:
    est = build("estimator", {"type": "occgrid", "n_samples": 32, "randomize": False})
    est.update(net, 0)
    out = renderer(net, est, view["o"], view["d"], view["near"], view["far"], training=False)
    mask = out.opacity.detach().reshape(RES, RES).numpy()
    dist = out.distance.detach().reshape(RES, RES).numpy()
    on = mask > 0.5
    depth = np.zeros_like(dist)
    if on.any():
        lo, hi = dist[on].min(), dist[on].max()
        depth[on] = 0.25 + 0.75 * (hi - dist[on]) / max(hi - lo, 1e-6)
    R = view["T"][0, :3, :3]
    normal = (out.normal.detach() @ R.T).reshape(RES, RES, 3).numpy()
    normal = (normal * [1, -1, -1] + 1) / 2 * mask[..., None]
    mesh = extract_mesh(net.sdf, net.bound, resolution=96)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)[None]
    faces = torch.tensor(mesh.faces)
    r = rasterize(verts, faces, view["K"], view["T"], image_size=(RES, RES))
    shade = (0.2 + 0.8 * (-r.normal[0, ..., 2]).clamp(min=0)).numpy() * r.mask[0].detach().numpy()
    gray = lambda x: np.repeat(x[..., None], 3, -1)  # noqa: E731
    return [gray(mask), gray(depth), normal, gray(shade)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    configure_cpu(parser.parse_args().threads)
    mug = build("object_generator", "mug").generate(seed=0)
    truth = AnalyticSDF(mug.sdf)
    gt_renderer = build("renderer", {"type": "volsdf", "beta_init": 0.001, "learn_beta": False})
    uniform = build("estimator", {"type": "uniform", "n_samples": 160, "randomize": False})
    views, targets = [], []
    for eye in EYES:
        v = view_rays(FIT_RES, eye)
        with torch.no_grad():
            out = gt_renderer(truth, uniform, v["o"], v["d"], v["near"], v["far"], training=False)
        views.append(v)
        targets.append((out.opacity.detach(), out.distance.detach()))
    novel = view_rays(RES, [0.15, -0.13, -0.13], fov=35.0)
    rows = [tiles(truth, gt_renderer, novel)]
    for name in ("mlp", "hashgrid"):
        start = time.perf_counter()
        net, renderer = fit_sdf_to_renders(name, views, targets, STEPS)
        print(f"{name}: {STEPS} steps in {time.perf_counter() - start:.1f} s")
        rows.append(tiles(net, renderer, novel))
    image = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    iio.imwrite(OUT, (image * 255).clip(0, 255).astype(np.uint8))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
