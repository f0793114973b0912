"""Soft rasteriser speed: forward + backward for the built-in hand at 64, 128 and 256 px (2 threads).

The hand is posed palm towards the camera, 0.45 m away, 45 degree field of view (it fills about a
third of the image). The loss sums mask, depth and normal, backpropagated to the vertices. The dense
reference (every pixel against every face) is timed at 64 and 128 px. Last line: one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import time_ms  # noqa: E402

from hoirecon.geometry.camera import intrinsics_from_fov  # noqa: E402
from hoirecon.registry import build  # noqa: E402
from hoirecon.render.raster import rasterize  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    hand = build("hand_model", "mano")
    out = hand(
        hand_pose=torch.zeros(1, 45),
        betas=torch.zeros(1, 10),
        global_orient=torch.tensor([[1.5708, 0.0, 0.0]]),
        transl=torch.tensor([[-0.0, 0.0, 0.45]]),
    )
    verts = out.vertices.detach().requires_grad_(True)

    def step(res: int, dense: bool) -> None:
        K = intrinsics_from_fov(45.0, res, res)[None]
        r = rasterize(verts, hand.faces, K, image_size=(res, res), dense=dense)
        (r.mask.sum() + r.depth.sum() + r.normal.sum()).backward()
        verts.grad = None

    rows = []
    culled = {res: time_ms(lambda res=res: step(res, False), repeats=20) for res in (64, 128, 256)}
    dense = {res: time_ms(lambda res=res: step(res, True), repeats=2 if res == 128 else 5) for res in (64, 128)}
    for res in (64, 128, 256):
        rows.append((res, culled[res], dense.get(res)))
    print(
        f"built-in hand: {verts.shape[1]} vertices, {len(hand.faces)} faces; torch threads: {torch.get_num_threads()}"
    )
    print(f"{'pixels':>8} {'culled ms':>10} {'dense ms':>10} {'dense/culled':>13}")
    for res, c, d in rows:
        ratio = f"{d / c:13.1f}" if d else f"{'-':>13}"
        dense_text = f"{d:10.1f}" if d else f"{'-':>10}"
        print(f"{res:>8} {c:10.1f} {dense_text} {ratio}")
    result = {
        "ms_64": round(culled[64], 2),
        "ms_128": round(culled[128], 2),
        "ms_256": round(culled[256], 2),
        "dense_over_culled_128": round(dense[128] / culled[128], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
