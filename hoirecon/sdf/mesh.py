"""Meshes from signed distance functions: marching cubes (scikit-image), lighter copies for
rendering (fast-simplification), saved through trimesh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes

from hoirecon.errors import HoireconError
from hoirecon.utils.io import atomic_path

MESH_FORMATS = (".obj", ".ply", ".glb", ".stl")


class EmptySurfaceError(HoireconError):
    """The SDF has no zero crossing inside the box: nothing to mesh."""


def extract_mesh(
    sdf_fn: Callable[[torch.Tensor], torch.Tensor],
    lo: np.ndarray | float,
    hi: np.ndarray | float | None = None,
    resolution: int = 128,
    voxel: float | None = None,
    largest_component: bool = False,
    chunk: int = 262144,
    dtype: torch.dtype = torch.float32,
) -> trimesh.Trimesh:
    """Marching cubes of ``sdf_fn`` (points (N, 3) metres -> (N,) distances) over the box [lo, hi].

    ``lo`` may be a half-side (box [-lo, lo]^3, e.g. a backbone's ``bound``). The grid has
    ``resolution`` cells along the longest side, or cubes of ``voxel`` metres. The SDF is evaluated
    in chunks of ``dtype`` points without gradients; faces point outwards (the SDF is negative inside).
    """
    lo = np.full(3, -lo, dtype=np.float64) if np.isscalar(lo) and hi is None else np.asarray(lo, dtype=np.float64)
    hi = -lo if hi is None else np.broadcast_to(np.asarray(hi, dtype=np.float64), (3,))
    step = voxel if voxel is not None else float((hi - lo).max()) / resolution
    axes = [np.arange(lo[i], hi[i] + 0.5 * step, step) for i in range(3)]
    grid = torch.from_numpy(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3))
    with torch.no_grad():
        values = [
            sdf_fn(grid[i : i + chunk].to(torch.float32 if voxel is None else grid.dtype)).double()
            for i in range(0, len(grid), chunk)
        ]
    volume = torch.cat(values).numpy().reshape(*[len(a) for a in axes])
    if not (volume.min() < 0 < volume.max()):
        raise EmptySurfaceError(
            f"the SDF has no surface inside the box {lo.round(3).tolist()} .. {hi.round(3).tolist()} "
            f"(values {volume.min():.4f} .. {volume.max():.4f} m)"
        )
    # grid points (almost) on the surface make degenerate triangles: push them just outside
    volume[np.abs(volume) < 1e-3 * step] = 1e-3 * step
    verts, faces, _, _ = marching_cubes(-volume, level=0.0, spacing=(step, step, step))
    mesh = trimesh.Trimesh(verts + lo, faces, process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if largest_component:
        parts = mesh.split(only_watertight=False)
        if len(parts) > 1:
            # a new mesh, not the part itself: split's parts carry cached face normals that point
            # against their winding once fix_normals has run (every contact sign read them)
            part = max(parts, key=lambda m: len(m.faces))
            mesh = trimesh.Trimesh(part.vertices, part.faces, process=False)
    mesh.fix_normals()
    return mesh


def simplified(mesh: trimesh.Trimesh, max_faces: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """A lighter copy of ``mesh`` for rendering: (V, 3) float32 vertices and (F, 3) long faces."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if len(faces) > max_faces:
        import fast_simplification

        vertices, faces = fast_simplification.simplify(
            vertices.astype(np.float32), faces.astype(np.int32), target_reduction=1 - max_faces / len(faces)
        )
    vertices_t = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    return vertices_t, torch.as_tensor(np.asarray(faces), dtype=torch.long)


def save_mesh(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write .obj / .ply / .glb / .stl atomically (the format follows the suffix)."""
    path = Path(path)
    if path.suffix not in MESH_FORMATS:
        raise HoireconError(f"{path}: unsupported mesh format (use {', '.join(MESH_FORMATS)})")
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=path.suffix[1:])
    return path
