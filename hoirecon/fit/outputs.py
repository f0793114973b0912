"""What a fit leaves in its run folder: meshes, poses, hands, a preview and metrics (all written atomically).

run_dir/
  object.obj, object.ply                  the object in its own frame (metres)
  object_in_hand.obj, object_in_hand.ply  the object in the hand frame (frame 0's T_hand_from_obj)
  hands/000000.obj ...                    the hand of every frame, hand frame
  poses.npz, poses.json                   T_cam_from_hand, T_hand_from_obj, K, hand_pose, betas per frame
  preview.png                             input | masks | render overlay | novel views, a row per frame
  metrics.json                            when the clip has ground truth (hoirecon.run_outputs)
  report.html                             all of it on one offline page (written by hoirecon.eval.report)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import trimesh

from hoirecon.data.clip import Clip
from hoirecon.fit.scene import FitScene
from hoirecon.geometry.camera import look_at
from hoirecon.geometry.transforms import transform_points
from hoirecon.render.composite import composite_labels
from hoirecon.render.raster import rasterize
from hoirecon.sdf.mesh import EmptySurfaceError, extract_mesh, save_mesh
from hoirecon.utils.io import atomic_path, atomic_write_text

HAND_RGB = np.array([230, 60, 50])
OBJECT_RGB = np.array([50, 110, 235])


def object_mesh(scene: FitScene, resolution: int) -> trimesh.Trimesh:
    """Marching cubes of the SDF over its box, largest component, object frame."""
    return extract_mesh(scene.sdf.sdf, float(scene.sdf.bound), resolution=resolution, largest_component=True)


@torch.no_grad()
def poses(scene: FitScene) -> dict[str, np.ndarray]:
    frames = torch.arange(scene.n_frames)
    p = scene.poses(frames)
    hand_pose, betas = scene.hand(frames)
    return {
        "T_cam_from_hand": p["T_cam_from_hand"].numpy(),
        "T_hand_from_obj": p["T_hand_from_obj"].numpy(),
        "K": p["K"].numpy(),
        "hand_pose": hand_pose.numpy(),
        "betas": betas[0].numpy(),
    }


def write_fit_outputs(
    scene: FitScene, clip: Clip, run_dir: str | Path, mesh_resolution: int, preview: dict, say=None
) -> trimesh.Trimesh | None:
    """Every output but metrics.json (``hoirecon.run_outputs`` adds it); returns the object mesh
    (None when the SDF has no surface in its box), for scoring without extracting it again.
    ``say(message)`` is told each stage (these take minutes on a loaded machine)."""
    say = say or (lambda message: None)
    run_dir = Path(run_dir)
    say(f"extracting the object mesh (grid {mesh_resolution}^3) ...")
    try:
        mesh = object_mesh(scene, mesh_resolution)
    except EmptySurfaceError:
        mesh = None
    say("writing meshes, poses and hands ...")
    write_meshes_and_poses(scene, run_dir, mesh, clip.frame_names, (".obj", ".ply"))
    say("rendering the preview ...")
    save_preview(scene, clip, mesh, run_dir / "preview.png", **preview)
    return mesh


def write_meshes_and_poses(
    scene: FitScene, run_dir: Path, mesh: trimesh.Trimesh | None, frame_names: list[str], suffixes: tuple[str, ...]
) -> list[Path]:
    """poses.npz/json, the object in its frame and in the hand frame (each suffix), each frame's hand."""
    arrays = poses(scene)
    with atomic_path(run_dir / "poses.npz") as tmp:
        np.savez(tmp, **arrays)
    written = [run_dir / "poses.npz"]
    written.append(atomic_write_text(run_dir / "poses.json", json.dumps({k: v.tolist() for k, v in arrays.items()})))
    with torch.no_grad():
        hands = scene.hands(torch.arange(scene.n_frames))
    faces = scene.hand_model.faces.numpy()
    for suffix in suffixes:
        if mesh is not None:
            in_hand = mesh.copy().apply_transform(arrays["T_hand_from_obj"][0])
            written.append(save_mesh(mesh, run_dir / f"object{suffix}"))
            written.append(save_mesh(in_hand, run_dir / f"object_in_hand{suffix}"))
    for name, verts in zip(frame_names, hands.vertices.numpy()):  # hands in the first format only
        hand = trimesh.Trimesh(verts, faces, process=False)
        written.append(save_mesh(hand, run_dir / "hands" / f"{name}{suffixes[0]}"))
    return written


# -- preview --------------------------------------------------------------------------------------


@torch.no_grad()
def novel_view_tile(scene: FitScene, mesh: trimesh.Trimesh | None, frame: int, angle: float, size: int) -> np.ndarray:
    """Hand (red) and object mesh (blue) of ``frame`` seen from ``angle`` radians around the hand frame's y axis."""
    hand = scene.hands(torch.tensor([frame]))
    verts = [hand.vertices[0]]
    faces = [hand.faces]
    colours = [np.repeat(HAND_RGB[None], len(hand.vertices[0]), 0)]
    if mesh is not None:
        T = scene.hand_from_obj(torch.tensor([frame]))[0]
        ov = transform_points(T, torch.as_tensor(mesh.vertices, dtype=torch.float32))
        faces.append(torch.as_tensor(mesh.faces, dtype=torch.long) + len(hand.vertices[0]))
        verts.append(ov)
        colours.append(np.repeat(OBJECT_RGB[None], len(ov), 0))
    v = torch.cat(verts)
    centre = v.mean(0)
    radius = float((v - centre).norm(dim=-1).max())
    eye = centre + torch.tensor([np.sin(angle), -0.3, np.cos(angle)], dtype=torch.float32) * radius * 3.2
    T_cam = look_at(eye, centre)[None]
    f = size * 1.4
    K = torch.tensor([[[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]]])
    attrs = torch.as_tensor(np.concatenate(colours), dtype=torch.float32)[None]
    out = rasterize(v[None], torch.cat(faces), K, T_cam, image_size=(size, size), attributes=attrs)
    light = torch.tensor([-0.3, -0.5, -0.8])
    intensity = 0.35 + 0.65 * (out.normal[0] @ (light / light.norm())).clamp(min=0)
    rgb = (out.attributes[0] / 255 * intensity[..., None]).numpy()
    a = out.mask[0].numpy()[..., None]
    return (255 * (rgb * a + (1 - a))).clip(0, 255).astype(np.uint8)


def save_preview(
    scene: FitScene, clip: Clip, mesh: trimesh.Trimesh | None, path: Path, frames: int = 3, size: int = 160
) -> Path:
    """input | GT masks | render overlay (hand red, object blue) | two novel views, one row per frame."""
    picks = np.unique(np.linspace(0, len(clip) - 1, max(frames, 1)).round().astype(int))
    rows = []
    for row, i in enumerate(picks):
        image = clip.images[i]
        masks = np.zeros_like(image)
        masks[clip.hand_masks[i]] = HAND_RGB
        masks[clip.object_masks[i]] = OBJECT_RGB
        r = scene.render_frame(int(i))
        labels = composite_labels(r["hand_alpha"], r["hand_depth"], r["object_alpha"], r["object_depth"]).numpy()
        colour = labels[..., :1] * HAND_RGB + labels[..., 1:2] * OBJECT_RGB + labels[..., 2:] * image
        overlay = (0.6 * colour + 0.4 * image).clip(0, 255).astype(np.uint8)
        tiles = [_resize(t, size) for t in (image, masks, overlay)]
        # two views per row, turning from row to row, so the rows show the object from six sides
        tiles += [novel_view_tile(scene, mesh, int(i), a + row * 1.05, size) for a in (0.0, math.pi)]
        rows.append(np.concatenate(tiles, 1))
    with atomic_path(path) as tmp:
        import imageio.v3 as iio

        iio.imwrite(tmp, np.concatenate(rows, 0))
    return path


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    t = torch.as_tensor(image, dtype=torch.float32).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t[0].permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()
