"""What a fit leaves in its run folder: meshes, poses, hands, a preview and metrics (all written atomically).

run_dir/
  object.obj, object.ply                  the object in its own frame (metres)
  object_in_hand.obj, object_in_hand.ply  the object in the hand frame (frame 0's T_hand_from_obj)
  hands/000000.obj ...                    the hand of every frame, hand frame
  poses.npz, poses.json                   T_cam_from_hand, T_hand_from_obj, K, hand_pose, betas per frame
  preview.png                             input | masks | render overlay | novel views, a row per frame
  metrics.json                            when the clip has ground truth
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
from hoirecon.eval.geometry import object_scores
from hoirecon.eval.metrics import HandMPJPE, HandObjectContact, MaskIoU
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


def write_outputs(scene: FitScene, clip: Clip, run_dir: str | Path, mesh_resolution: int, preview: dict) -> dict:
    """Write every output; returns the metrics (empty without ground truth)."""
    run_dir = Path(run_dir)
    try:
        mesh = object_mesh(scene, mesh_resolution)
    except EmptySurfaceError:
        mesh = None
    write_meshes_and_poses(scene, run_dir, mesh, clip.frame_names, (".obj", ".ply"))
    save_preview(scene, clip, mesh, run_dir / "preview.png", **preview)
    metrics = evaluate(scene, clip, mesh) if clip.gt is not None else {}
    if metrics:
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
    return metrics


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


# -- metrics --------------------------------------------------------------------------------------


def evaluate(scene: FitScene, clip: Clip, mesh: trimesh.Trimesh | None) -> dict[str, float]:
    """Object F-scores and chamfers (aligned, and hand-relative) and hand MPJPE against the clip's GT."""
    gt = clip.gt
    metrics: dict[str, float] = {}
    if gt.object_vertices is not None and mesh is not None:
        gt_mesh = trimesh.Trimesh(gt.object_vertices, gt.object_faces, process=False)
        for key, value in object_scores(mesh, gt_mesh, "rigid").items():
            metrics[f"object/{key}[rigid]"] = value
        if gt.T_hand_from_obj is not None:
            pred_hand = mesh.copy().apply_transform(poses(scene)["T_hand_from_obj"][0])
            gt_hand = gt_mesh.copy().apply_transform(gt.T_hand_from_obj[0])
            for key, value in object_scores(pred_hand, gt_hand, "none").items():
                metrics[f"object/{key}[hand_relative]"] = value
    if gt.hands is not None and gt.T_cam_from_hand is not None:
        metrics.update(_hand_metrics(scene, clip))
    metrics.update(render_metrics(scene, clip))
    if mesh is not None:
        metrics.update(contact_metrics(scene, mesh))
    return metrics


@torch.no_grad()
def render_metrics(scene: FitScene, clip: Clip, max_frames: int = 8) -> dict[str, float]:
    """Mask IoU of the final renders (composited, front-most label per pixel) against the clip's masks,
    on up to ``max_frames`` evenly spaced frames."""
    frames = np.unique(np.linspace(0, len(clip) - 1, min(max_frames, len(clip))).round().astype(int))
    hand_iou, object_iou = MaskIoU(), MaskIoU()
    for i in frames:
        r = scene.render_frame(int(i))
        labels = composite_labels(r["hand_alpha"], r["hand_depth"], r["object_alpha"], r["object_depth"])
        winner = labels.argmax(-1)
        hand_iou.update((winner == 0)[None], torch.as_tensor(clip.hand_masks[i])[None])
        object_iou.update((winner == 1)[None], torch.as_tensor(clip.object_masks[i])[None])
    return {"render/mask_iou[hand]": hand_iou.compute(), "render/mask_iou[object]": object_iou.compute()}


@torch.no_grad()
def contact_metrics(scene: FitScene, mesh: trimesh.Trimesh) -> dict[str, float]:
    """Penetration depth and contact ratio of the fitted hands against the fitted object mesh."""
    from hoirecon.data.synth.objects import mesh_sdf

    verts = scene.hand_vertices_in_object(torch.arange(scene.n_frames))
    sdf = mesh_sdf(mesh)(verts.reshape(-1, 3).double()).reshape(verts.shape[:2])
    metric = HandObjectContact()
    metric.update(sdf)
    return {f"contact/{k}": v for k, v in metric.compute().items()}


@torch.no_grad()
def _hand_metrics(scene: FitScene, clip: Clip) -> dict[str, float]:
    """MPJPE of the fitted and of the initial hands (camera frame) against the clip's GT."""
    gt, metrics = clip.gt, {}
    frames = torch.arange(scene.n_frames)
    gt_joints = _camera_joints(scene, gt.hands.hand_pose, gt.hands.betas, gt.T_cam_from_hand)
    pred = scene.hands(frames).joints
    pred = transform_points(scene.poses(frames)["T_cam_from_hand"], pred)
    metric = HandMPJPE()
    metric.update(pred, gt_joints)
    metrics.update({f"hand/{k}": v for k, v in metric.compute().items()})
    init_metric = HandMPJPE()
    init_joints = _camera_joints(
        scene, scene.hand.hand_pose_init.numpy(), scene.hand.betas_init.numpy(), scene.cameras.T_init.numpy()
    )
    init_metric.update(init_joints, gt_joints)
    metrics.update({f"hand_init/{k}": v for k, v in init_metric.compute().items()})
    return metrics


def _camera_joints(scene: FitScene, hand_pose, betas, T_cam_from_hand) -> torch.Tensor:  # noqa: ANN001
    pose = torch.as_tensor(np.asarray(hand_pose), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(betas), dtype=torch.float32).reshape(-1, 10).expand(len(pose), -1)
    zeros = torch.zeros(len(pose), 3)
    joints = scene.hand_model(pose, b, zeros, zeros).joints
    return transform_points(torch.as_tensor(np.asarray(T_cam_from_hand), dtype=torch.float32), joints)


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
