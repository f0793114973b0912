"""A fitted scene scored against its clip's ground truth: the keys of a run's metrics.json.

Object F-scores and chamfers (aligned, and in the hand frame), hand MPJPE (fitted and initial),
render mask IoU and hand-object contact; conventions are in ``hoirecon.eval.geometry`` and
docs/compare.md. ``hoirecon.run_outputs`` writes the result beside the fit's other outputs.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from hoirecon.data.clip import Clip
from hoirecon.eval.geometry import object_scores
from hoirecon.eval.metrics import HandMPJPE, HandObjectContact, MaskIoU
from hoirecon.fit.outputs import poses
from hoirecon.fit.scene import FitScene
from hoirecon.geometry.camera import project
from hoirecon.geometry.mesh_sdf import MeshSDF
from hoirecon.geometry.transforms import transform_points
from hoirecon.render.composite import composite_labels
from hoirecon.render.raster import rasterize
from hoirecon.sdf.mesh import simplified


def evaluate(scene: FitScene, clip: Clip, mesh: trimesh.Trimesh | None) -> dict[str, float]:
    """Object F-scores and chamfers (aligned, and hand-relative) and hand MPJPE against the clip's GT."""
    gt = clip.gt
    metrics: dict[str, float] = {}
    if gt.object_vertices is not None and mesh is not None:
        gt_mesh = trimesh.Trimesh(gt.object_vertices, gt.object_faces, process=False)
        seen = (lambda points: seen_by_the_clip(clip, gt_mesh, points)) if gt.T_cam_from_obj is not None else None
        for key, value in object_scores(mesh, gt_mesh, "rigid", gt_seen=seen).items():
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
def seen_by_the_clip(
    clip: Clip, gt_mesh: trimesh.Trimesh, points: np.ndarray, tolerance: float = 0.004, max_frames: int = 12
) -> np.ndarray:
    """(N,) bool: which object-frame points (N, 3) on the true surface some frame of the clip shows
    (of up to ``max_frames`` evenly spaced frames: neighbouring frames see nearly the same).

    A point is seen in a frame when it projects into the image, is the first object surface along
    its pixel's ray (within ``tolerance`` of the true object's depth there, rasterised from the
    ground-truth poses) and the hand is not in front of it (the clip's visible hand mask)."""
    gt = clip.gt
    verts, faces = simplified(gt_mesh, 4000)  # depth maps need no more (the tolerance is far above its error)
    h, w = clip.hand_masks.shape[1:]
    q = torch.as_tensor(points, dtype=torch.float32)
    seen = torch.zeros(len(q), dtype=torch.bool)
    for i in np.unique(np.linspace(0, len(clip) - 1, min(max_frames, len(clip))).round().astype(int)).tolist():
        T = torch.as_tensor(gt.T_cam_from_obj[i], dtype=torch.float32)[None]
        K = torch.as_tensor(clip.K[i], dtype=torch.float32)[None]
        render = rasterize(verts[None], faces, K, T, image_size=(h, w))
        uv, z = project(transform_points(T, q[None]), K)
        u, v = uv[0, :, 0].round().long(), uv[0, :, 1].round().long()
        inside = (z[0] > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        u, v = u.clamp(0, w - 1), v.clamp(0, h - 1)
        first = render.mask[0, v, u] > 0.5
        first &= (z[0] - render.depth[0, v, u]).abs() < tolerance
        uncovered = ~torch.as_tensor(clip.hand_masks[i])[v, u]
        seen |= inside & first & uncovered
    return seen.numpy()


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
    verts = scene.hand_vertices_in_object(torch.arange(scene.n_frames))
    sdf = MeshSDF(mesh)(verts.reshape(-1, 3).double()).reshape(verts.shape[:2])
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


def _camera_joints(scene: FitScene, hand_pose, betas, T_cam_from_hand) -> torch.Tensor:
    pose = torch.as_tensor(np.asarray(hand_pose), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(betas), dtype=torch.float32).reshape(-1, 10).expand(len(pose), -1)
    zeros = torch.zeros(len(pose), 3)
    joints = scene.hand_model(pose, b, zeros, zeros).joints
    return transform_points(torch.as_tensor(np.asarray(T_cam_from_hand), dtype=torch.float32), joints)
