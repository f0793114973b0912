"""docs/grasp.png: the fitted grasp of runs side by side (e.g. the demo without and with the
penetration and contact terms), as the report's 3D view shows it: the object see-through, the hand
behind it, hand vertices inside the object red.

A row per run and frame; columns are three views around the hand-object centre (hand frame). Each
row is labelled with the run's name, the frame, and how many hand vertices are inside the object and
how deep (winding-number signed distance, ``MeshSDF``, as ``contact/penetration_mm``).

Usage: benchmarks/grasp_figure.py RUN [RUN ...] [--names off,on] [--frames 000000,000012]
[--out docs/grasp.png]. Last line: one JSON object (per run: vertices inside and depth, mm).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw

from hoirecon.data.synth.scene import lambert
from hoirecon.eval.report import inside_label
from hoirecon.geometry.camera import intrinsics_from_fov, look_at
from hoirecon.geometry.mesh_sdf import MeshSDF
from hoirecon.render.raster import rasterize

REPO = Path(__file__).resolve().parents[1]
RES = 200
OBJECT = torch.tensor([0.55, 0.7, 0.9])
SKIN = torch.tensor([0.86, 0.64, 0.52])
RED = torch.tensor([0.95, 0.1, 0.1])
SEE_THROUGH = 0.45  # the object's opacity, as in the report


def render(mesh: trimesh.Trimesh, colours: torch.Tensor, T: torch.Tensor, K: torch.Tensor):
    """(H, W, 3) shaded colour, (H, W) depth (inf where empty) of a mesh with (V, 3) vertex colours."""
    verts = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)[None]
    faces = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long)
    with torch.no_grad():
        out = rasterize(verts, faces, K[None], T[None], image_size=(RES, RES), attributes=colours[None])
    normal = out.normal[0]
    normal = torch.where((normal[..., 2:] > 0), -normal, normal)  # light both sides: the object is open
    colour = lambert(normal, out.attributes[0].clamp(0, 1))
    depth = torch.where(out.covered[0], out.depth[0], torch.full_like(out.depth[0], float("inf")))
    return colour, depth


def tile(obj: trimesh.Trimesh, hand: trimesh.Trimesh, inside: np.ndarray, eye: torch.Tensor, centre: torch.Tensor):
    T = look_at(eye, centre, up=torch.tensor([0.0, 0.0, 1.0]))
    radius = float(np.linalg.norm(np.asarray(hand.vertices) - centre.numpy(), axis=1).max())
    fov = float(2 * np.degrees(np.arctan(1.15 * radius / float((eye - centre).norm()))))
    K = intrinsics_from_fov(fov, RES, RES)
    o_col, o_depth = render(obj, OBJECT.expand(len(obj.vertices), 3).clone(), T, K)
    hand_colours = torch.where(torch.from_numpy(inside)[:, None], RED, SKIN)
    h_col, h_depth = render(hand, hand_colours, T, K)
    image = torch.ones(RES, RES, 3)
    hand_seen = torch.isfinite(h_depth)
    image[hand_seen] = h_col[hand_seen]
    obj_front = torch.isfinite(o_depth) & (o_depth < h_depth)
    behind = obj_front & hand_seen  # the hand seen through the object
    image[obj_front & ~hand_seen] = o_col[obj_front & ~hand_seen]
    image[behind] = SEE_THROUGH * o_col[behind] + (1 - SEE_THROUGH) * h_col[behind]
    return image.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (object_in_hand.obj, hands/<frame>.obj)")
    parser.add_argument("--names", default="", help="a name per run, comma-separated (default: folder names)")
    parser.add_argument("--frames", default="000000")
    parser.add_argument("--out", default=str(REPO / "docs" / "grasp.png"))
    args = parser.parse_args()
    runs = [Path(r) for r in args.runs]
    names = args.names.split(",") if args.names else [r.name for r in runs]
    rows, summary = [], {}
    for run, name in zip(runs, names):
        obj = trimesh.load(run / "object_in_hand.obj", force="mesh")
        sdf = MeshSDF(obj)
        for frame in args.frames.split(","):
            hand = trimesh.load(run / "hands" / f"{frame}.obj", force="mesh")
            depth = -sdf(torch.from_numpy(np.asarray(hand.vertices))).numpy()
            inside = depth > 0
            centre = torch.as_tensor(np.asarray(hand.vertices).mean(0), dtype=torch.float32)
            eyes = [
                centre + 0.35 * torch.tensor(d) / torch.tensor(d).norm()
                for d in ((0, -1.0, 0.4), (1.0, 0, 0.4), (-0.7, -0.7, -0.3))
            ]
            tiles = [tile(obj, hand, inside, eye, centre) for eye in eyes]
            row = Image.fromarray((np.concatenate(tiles, axis=1) * 255).astype(np.uint8))
            label = f"{name}, frame {frame}: {inside_label(depth)}"
            ImageDraw.Draw(row).text((4, 4), label, fill=(0, 0, 0))
            rows.append(np.asarray(row))
            summary[f"{name}/{frame}"] = {
                "inside": int(inside.sum()),
                "depth_mm": round(1000 * float(max(depth.max(), 0)), 2),
            }
            print(label)
    iio.imwrite(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
