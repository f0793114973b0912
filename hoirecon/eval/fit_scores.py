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
from hoirecon.geometry.mesh_sdf import mesh_sdf
from hoirecon.geometry.transforms import transform_points
from hoirecon.render.composite import composite_labels


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


def _camera_joints(scene: FitScene, hand_pose, betas, T_cam_from_hand) -> torch.Tensor:
    pose = torch.as_tensor(np.asarray(hand_pose), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(betas), dtype=torch.float32).reshape(-1, 10).expand(len(pose), -1)
    zeros = torch.zeros(len(pose), 3)
    joints = scene.hand_model(pose, b, zeros, zeros).joints
    return transform_points(torch.as_tensor(np.asarray(T_cam_from_hand), dtype=torch.float32), joints)
