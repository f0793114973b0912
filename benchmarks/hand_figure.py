"""docs/hand.png: the built-in hand, rest pose and a grasp-like pose, rendered by the soft rasteriser.

Columns: mask, depth (near = bright), normal (camera frame as RGB), hand code (2 channels as RG),
for two views each. Run: .venv/bin/python benchmarks/hand_figure.py
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from hoirecon.geometry.camera import intrinsics_from_fov, look_at
from hoirecon.hand.joints import from_local_components, joint_limits
from hoirecon.registry import build
from hoirecon.render.raster import rasterize

OUT = Path(__file__).resolve().parents[1] / "docs" / "hand.png"
RES = 160


def grasp_pose() -> torch.Tensor:
    lower, upper = joint_limits()
    comps = torch.zeros(1, 15, 3, dtype=torch.float64)
    comps[0, :, 0] = torch.from_numpy(upper[:, 0]) * 0.55  # fingers and thumb half closed
    comps[0, 12, 1] = 0.5  # thumb opposed
    return from_local_components(comps).float()


def tiles(out, res: int) -> list[np.ndarray]:
    mask = out.mask[0].detach().numpy()
    depth = out.depth[0].detach().numpy()
    valid = out.covered[0].numpy()
    d = np.zeros_like(depth)
    if valid.any():
        lo, hi = depth[valid].min(), depth[valid].max()
        d[valid] = 0.25 + 0.75 * (hi - depth[valid]) / max(hi - lo, 1e-6)
    normal = (out.normal[0].detach().numpy() * [1, -1, -1] + 1) / 2 * valid[..., None]
    code = out.attributes[0].detach().numpy()
    code_rgb = np.concatenate([(code + 1) / 2, np.zeros((res, res, 1))], -1) * valid[..., None]
    gray = lambda x: np.repeat(x[..., None], 3, -1)  # noqa: E731
    return [gray(mask), gray(d), normal, code_rgb]


def main() -> None:
    hand = build("hand_model", "mano")
    K = intrinsics_from_fov(40.0, RES, RES)[None]
    rows = []
    for pose in (torch.zeros(1, 45), grasp_pose()):
        out = hand(hand_pose=pose, betas=torch.zeros(1, 10), global_orient=torch.zeros(1, 3), transl=torch.zeros(1, 3))
        centre = out.vertices[0].mean(0)
        for eye in (centre + torch.tensor([0.0, -0.42, 0.0]), centre + torch.tensor([0.25, -0.25, 0.25])):
            T = look_at(eye, centre, up=torch.tensor([1.0, 0.0, 0.0]))[None]
            r = rasterize(out.vertices, hand.faces, K, T, image_size=(RES, RES), attributes=hand.vertex_code[None])
            rows.append(np.concatenate(tiles(r, RES), axis=1))
    image = (np.concatenate(rows, axis=0) * 255).clip(0, 255).astype(np.uint8)
    iio.imwrite(OUT, image)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
