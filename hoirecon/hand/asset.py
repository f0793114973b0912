"""The built-in hand: a procedural right hand written in MANO's file format (not MANO itself).

Run ``python -m hoirecon.hand.asset --out PATH`` to rebuild ``hoirecon/assets/HOIRECON_HAND_RIGHT.npz``;
a test checks that the result equals the shipped file. The construction, in order:

1. A skeleton with MANO's 16-joint tree and order (0 wrist; index 1-3; middle 4-6; pinky 7-9;
   ring 10-12; thumb 13-15) and adult proportions, laid out like MANO's rest pose: wrist near
   (0.095, 0.006, 0.006) m, fingers pointing along -x, palm facing -y, thumb on the +z side.
2. The surface: an implicit union of a rounded palm box, tapered finger capsules, a thumb and a wrist
   stub, meshed by marching cubes and decimated (quadric error) to about 800 vertices: one closed,
   watertight surface.
3. Skinning weights from distances to the bones (softmax over the three nearest, rows sum to one).
4. A J_regressor: for each joint, non-negative weights on nearby vertices that sum to one and
   reproduce the joint exactly (the joint lies inside their hull).
5. Ten shape directions as smooth displacement fields: size, palm width, finger length, thickness,
   thumb length, palm length, finger girth, index/ring ratio, pinky length, knuckle spread.
6. posedirs are zero (no pose-corrective shapes); hands_mean is a mild curl; hands_components are
   the principal directions of random poses within the joint limits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.optimize import nnls
from skimage.measure import marching_cubes

from hoirecon.hand.joints import FINGER_CHAINS, JOINT_NAMES, PARENTS, TIP_NAMES, joint_axes, sample_poses, skeleton

ASSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "HOIRECON_HAND_RIGHT.npz"
TARGET_VERTICES = 820
VOXEL = 0.0022


def _segments(joints: np.ndarray, tips: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float, float, int]]:
    """Bones as (start, end, radius at start, radius at end, joint that moves them)."""
    radii = {
        "index": (0.0098, 0.0088, 0.0079, 0.0070),
        "middle": (0.0101, 0.0091, 0.0081, 0.0072),
        "ring": (0.0096, 0.0086, 0.0077, 0.0068),
        "pinky": (0.0085, 0.0076, 0.0068, 0.0061),
        "thumb": (0.0135, 0.0118, 0.0104, 0.0090),
    }
    segs = []
    for t, name in enumerate(TIP_NAMES):
        chain = FINGER_CHAINS[name]
        pts = [joints[j] for j in chain] + [tips[t]]
        r = radii[name]
        for k, joint in enumerate(chain):
            segs.append((pts[k], pts[k + 1], r[k], r[k + 1], joint))
    return segs


def _round_cone(p: torch.Tensor, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> torch.Tensor:
    a_t, b_t = torch.tensor(a), torch.tensor(b)
    ab = b_t - a_t
    h = (((p - a_t) * ab).sum(-1) / (ab * ab).sum()).clamp(0, 1)
    return (p - a_t - h[..., None] * ab).norm(dim=-1) - (ra + (rb - ra) * h)


def _smin(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def _palm_sdf(p: torch.Tensor, joints: np.ndarray) -> torch.Tensor:
    """Rounded box from the wrist to the knuckles, slightly thinner towards the fingers."""
    wrist = joints[0]
    centre = torch.tensor([wrist[0] - 0.046, wrist[1] + 0.001, wrist[2] - 0.002])
    half = torch.tensor([0.044, 0.0125, 0.039])
    q = (p - centre).abs() - (half - 0.011)
    box = q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0) - 0.011
    return box


def hand_sdf(joints: np.ndarray, tips: np.ndarray) -> callable:
    segs = _segments(joints, tips)

    def sdf(p: torch.Tensor) -> torch.Tensor:
        d = _palm_sdf(p, joints)
        wrist = joints[0]
        stub = _round_cone(p, wrist + [0.018, 0.001, -0.003], wrist + [-0.006, 0.001, -0.003], 0.024, 0.026)
        d = _smin(d, stub, 0.012)
        for a, b, ra, rb, joint in segs:
            k = 0.008 if joint in (1, 4, 7, 10, 13) else 0.003
            d = _smin(d, _round_cone(p, a, b, ra, rb), k)
        return d

    return sdf


def build_mesh(joints: np.ndarray, tips: np.ndarray) -> trimesh.Trimesh:
    sdf = hand_sdf(joints, tips)
    lo = np.minimum(joints.min(0), tips.min(0)) - 0.06
    hi = np.maximum(joints.max(0), tips.max(0)) + 0.06
    axes = [np.arange(lo[i], hi[i], VOXEL) for i in range(3)]
    grid = torch.from_numpy(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3))
    with torch.no_grad():
        values = torch.cat([sdf(grid[i : i + 200000]) for i in range(0, len(grid), 200000)]).numpy()
    volume = values.reshape(*[len(a) for a in axes])
    volume[np.abs(volume) < 1e-3 * VOXEL] = 1e-3 * VOXEL
    verts, faces, _, _ = marching_cubes(-volume, 0.0, spacing=(VOXEL,) * 3)
    mesh = trimesh.Trimesh(verts + lo, faces, process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    # about 2 faces per vertex on a closed surface
    mesh = mesh.simplify_quadric_decimation(face_count=2 * TARGET_VERTICES - 4)
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    mesh.fix_normals()
    return mesh


def skinning_weights(vertices: np.ndarray, joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """(V, 16): softmax over the three nearest bones (the palm counts as the wrist's bone)."""
    segs = _segments(joints, tips)
    p = torch.from_numpy(vertices)
    dist = torch.full((len(vertices), 16), 1.0, dtype=torch.float64)
    dist[:, 0] = _palm_sdf(p, joints).clamp(min=0)
    for a, b, ra, rb, joint in segs:
        dist[:, joint] = torch.minimum(dist[:, joint], _round_cone(p, a, b, ra, rb).clamp(min=0))
    # a vertex of a proximal bone near its knuckle blends with the palm
    logits = -dist / 0.004
    top = logits.topk(3, dim=1)
    weights = torch.zeros_like(dist).scatter_(1, top.indices, torch.softmax(top.values, dim=1))
    return weights.numpy()


def joint_regressor(vertices: np.ndarray, joints: np.ndarray, k: int = 80) -> np.ndarray:
    """(16, V): non-negative weights summing to one that reproduce each joint from its k nearest vertices."""
    regressor = np.zeros((len(joints), len(vertices)))
    for j, joint in enumerate(joints):
        near = np.argsort(np.linalg.norm(vertices - joint, axis=1))[:k]
        A = np.vstack([vertices[near].T, 10.0 * np.ones(k)])  # the sum-to-one row, weighted
        w, _ = nnls(A, np.append(joint, 10.0))
        regressor[j, near] = w / w.sum()
    return regressor


def shape_directions(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(V, 3, 10) displacement per unit beta (roughly one standard deviation of adult hands)."""
    wrist = joints[0]
    v = vertices - wrist
    finger_w = 1.0 - weights[:, 0]  # how much a vertex belongs to the fingers
    thumb_w = weights[:, 13:16].sum(1)
    fingers_only = finger_w - thumb_w
    palm_centre_z = 0.0035
    dirs = np.zeros((len(vertices), 3, 10))
    dirs[:, :, 0] = 0.05 * v  # overall size
    dirs[:, 2, 1] = 0.06 * (vertices[:, 2] - palm_centre_z)  # palm width (spreads fingers too)
    dirs[:, 0, 2] = 0.07 * np.minimum(vertices[:, 0] - (wrist[0] - 0.085), 0) * fingers_only  # finger length
    dirs[:, 1, 3] = 0.08 * (vertices[:, 1] - wrist[1])  # thickness
    thumb_dir = joints[15] - joints[13]
    thumb_dir /= np.linalg.norm(thumb_dir)
    dirs[:, :, 4] = (
        0.08 * np.clip((v - (joints[13] - wrist)) @ thumb_dir, 0, None)[:, None] * thumb_dir * thumb_w[:, None]
    )
    dirs[:, 0, 5] = 0.06 * np.minimum(v[:, 0], 0) * (1 - thumb_w) * np.clip(-v[:, 0] / 0.09, 0, 1)  # palm length
    # finger girth: away from each vertex's nearest bone axis, for finger vertices
    axis_point = np.zeros_like(vertices)
    for j in range(1, 16):
        axis_point += weights[:, j : j + 1] * joints[j]
    axis_point += weights[:, :1] * vertices
    dirs[:, :, 6] = 0.08 * (vertices - axis_point) * finger_w[:, None]
    index_w, ring_w = weights[:, 1:4].sum(1), weights[:, 10:13].sum(1)
    dirs[:, 0, 7] = 0.05 * np.minimum(vertices[:, 0] - (wrist[0] - 0.085), 0) * (index_w - ring_w)  # 2D:4D ratio
    pinky_w = weights[:, 7:10].sum(1)
    dirs[:, 0, 8] = 0.08 * np.minimum(vertices[:, 0] - (wrist[0] - 0.075), 0) * pinky_w  # pinky length
    dirs[:, 2, 9] = (
        0.15
        * (vertices[:, 2] - palm_centre_z)
        * np.clip(-(vertices[:, 0] - (wrist[0] - 0.085)) / 0.1, 0, 1)
        * fingers_only
    )
    return dirs


def build() -> dict[str, np.ndarray]:
    """All nine arrays smplx needs, plus the fingertip vertex ids (``tip_vertex_ids``)."""
    joints, tips = skeleton()
    mesh = build_mesh(joints, tips)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    weights = skinning_weights(vertices, joints, tips)
    regressor = joint_regressor(vertices, joints)
    tip_ids = np.array([int(np.argmin(np.linalg.norm(vertices - t, axis=1))) for t in tips])
    kintree = np.stack([np.array(PARENTS), np.arange(16)]).astype(np.int64)
    rng = np.random.default_rng(0)
    poses = sample_poses(4096, rng)  # within the joint limits
    _, _, vt = np.linalg.svd(poses - poses.mean(0), full_matrices=True)
    axes = joint_axes()
    mean = np.zeros((15, 3))
    mean += 0.15 * axes[:, 0]  # a mild curl about every flexion axis
    return {
        "v_template": vertices.astype(np.float32),
        "f": np.asarray(mesh.faces, dtype=np.int64),
        "weights": weights.astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "kintree_table": kintree,
        "shapedirs": shape_directions(vertices, joints, weights).astype(np.float32),
        "posedirs": np.zeros((len(vertices), 3, 135), dtype=np.float32),
        "hands_components": vt.astype(np.float32),
        "hands_mean": mean.reshape(45).astype(np.float32),
        "tip_vertex_ids": tip_ids.astype(np.int64),
        "joint_names": np.array(JOINT_NAMES),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the built-in MANO-format hand asset.")
    parser.add_argument("--out", type=Path, default=ASSET_PATH, help="output .npz (its name must contain RIGHT)")
    args = parser.parse_args(argv)
    arrays = build()
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays['v_template'])} vertices, {len(arrays['f'])} faces")


if __name__ == "__main__":
    main()
