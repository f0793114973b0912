"""Objects from mesh files: a user's scan or CAD export (role ``object_generator``, name ``mesh``).

Real meshes are rarely closed: scans have holes, CAD exports come in parts that overlap, handles are
glued on without being merged. None of that needs repair here: the object's SDF signs points by the
generalised winding number (``hoirecon.geometry.mesh_sdf``), so an open mesh has an inside wherever
its surface nearly encloses space. What cannot work gets one line naming the file: no triangles,
non-finite coordinates, a surface that encloses nothing (a flat sheet), or a size no hand holds.
docs/synth.md, "Meshes that are not closed", says what becomes of an open cup.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from hoirecon.data.synth.objects import SynthObject, mesh_from_sdf
from hoirecon.dataclass_config import ranged
from hoirecon.errors import DataError
from hoirecon.geometry.mesh_sdf import MeshSDF
from hoirecon.registry import register

#: Hand-held objects are this many metres across (largest bounding-box side), at most / at least.
MAX_SIZE_M, MIN_SIZE_M = 0.6, 0.01

#: pybullet_data meshes kept for evaluation: never in a generator, split or prior-training set.
RESERVED_EVALUATION_MESHES: tuple[str, ...] = (
    "mug.obj",
    "mug_col.obj",
    "bunny.obj",
    "duck.obj",
    "duck_vhacd.obj",
    "teddy*",
)


def is_reserved(path: str | Path) -> bool:
    """True for pybullet_data's evaluation meshes (matched by file name, anywhere under pybullet_data)."""
    path = Path(path)
    return "pybullet_data" in path.parts and any(fnmatch.fnmatch(path.name, p) for p in RESERVED_EVALUATION_MESHES)


def read_mesh(path: str | Path) -> trimesh.Trimesh:
    """One triangle mesh from .obj/.ply/.stl/.glb (a scene's parts concatenated), vertices welded.

    Vertices split at texture seams are merged (robosuite's .obj files are triangle soups), and
    triangles of zero area dropped; parts and holes stay as they are.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's problem
        raise DataError(f"{path}: unreadable mesh ({type(exc).__name__}: {exc})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise DataError(f"{path}: no triangles in the mesh")
    bad = ~np.isfinite(mesh.vertices).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} of {len(bad)} vertices are NaN or infinite")
    return weld(mesh, str(path))


def weld(mesh: trimesh.Trimesh, name: str) -> trimesh.Trimesh:
    """Merge coincident vertices, drop degenerate triangles and give each part a consistent winding."""
    mesh = trimesh.Trimesh(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces), process=True)
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise DataError(f"{name}: every triangle has zero area")
    trimesh.repair.fix_normals(mesh, multibody=True)
    return mesh


def prepare_mesh(
    mesh: trimesh.Trimesh, name: str, scale: float = 1.0, size: float = 0.0
) -> tuple[trimesh.Trimesh, float]:
    """Centre ``mesh`` on its bounding box and scale it (by ``scale``, or so its largest side is ``size``).

    Returns the new mesh and the scale applied.
    Refuses, naming ``name``, a result no hand holds (under 1 cm or over 60 cm across) and a surface
    that encloses no volume.
    """
    mesh = mesh.copy()
    mesh.apply_translation(-(mesh.bounds[0] + mesh.bounds[1]) / 2)
    extent = float(mesh.extents.max())
    if extent <= 0:
        raise DataError(f"{name}: the mesh is a single point")
    scale = size / extent if size > 0 else scale
    mesh.apply_scale(scale)
    across = float(mesh.extents.max())
    if not MIN_SIZE_M <= across <= MAX_SIZE_M:
        raise DataError(
            f"{name}: the object is {across:.4g} m across, not a hand-held size "
            f"({MIN_SIZE_M * 100:.0f}-{MAX_SIZE_M * 100:.0f} cm); pass --object-size METRES to rescale it"
        )
    if not encloses_volume(MeshSDF(mesh), mesh.bounds):
        raise DataError(
            f"{name}: the surface encloses no volume (a flat sheet, or an open surface with nothing inside it)"
        )
    return mesh, scale


def encloses_volume(sdf: MeshSDF, bounds: np.ndarray, cells: int = 24) -> bool:
    """Whether any point of a ``cells``^3 grid over ``bounds`` (2, 3) is inside (|winding number| > 0.5)."""
    axes = [np.linspace(lo, hi, cells) for lo, hi in zip(*bounds)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return bool((np.abs(sdf.winding_number(grid)) > 0.5).any())


def mesh_object(
    mesh: trimesh.Trimesh, category: str, source: str, params: dict[str, float], voxel: float = 0.0
) -> SynthObject:
    """A ``SynthObject`` of a prepared mesh: its SDF by winding numbers, and as its mesh that SDF's
    zero level set (marching cubes with cubes of ``voxel`` metres, by default 1/80 of its size within
    1-3 mm): one closed outer
    surface, without the faces hidden inside overlapping parts that no camera can see (a kettle's
    base plate under its body), and the surface the grasp was made against."""
    sdf = MeshSDF(mesh)
    voxel = voxel or float(np.clip(mesh.extents.max() / 80, 0.001, 0.003))
    surface = mesh_from_sdf(sdf, mesh.bounds[0], mesh.bounds[1], voxel)
    return SynthObject(category, sdf, surface, params, source=source)


@register("object_generator", "mesh")
class MeshObject:
    """A user's mesh file (.obj/.ply/.stl/.glb), centred, scaled by ``scale`` or to ``size``; may be open."""

    @dataclass
    class Config:
        path: str = ""
        #: Multiply coordinates by this (e.g. 0.001 for millimetres).
        scale: float = ranged(1.0, above=0)
        #: If > 0, scale so the largest bounding-box side is this many metres (overrides scale).
        size: float = ranged(0.0, at_least=0)
        category: str = "object"
        #: Marching-cubes cube side of the object's mesh, metres (0: 1/80 of its size, 1-3 mm).
        voxel: float = ranged(0.0, at_least=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def generate(self, seed: int) -> SynthObject:
        path = Path(self.cfg.path)
        mesh, scale = prepare_mesh(read_mesh(path), str(path), self.cfg.scale, self.cfg.size)
        return mesh_object(mesh, self.cfg.category, str(path), {"scale": float(scale)}, self.cfg.voxel)
