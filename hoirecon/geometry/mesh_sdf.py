"""Signed distance to any triangle mesh (negative inside): open, multi-part or non-manifold ones too.

The magnitude is the exact distance to the nearest triangle (libigl's AABB tree); the sign comes
from the generalised winding number (Jacobson et al. 2013; libigl's fast winding number, Barill et
al. 2018): a point is inside where the surface winds around it more than half way, |w| > 0.5. For a
closed mesh that is the ordinary inside; for an open one it is the region the surface nearly
encloses (docs/synth.md, "Meshes that are not closed"). Taking |w| makes a mesh whose faces all
point inwards work too. Shared by the synthetic objects (grasp search, a user's mesh) and the
contact metrics (fitted hands against the fitted mesh), so it sits here, below both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import trimesh

#: Points (N, 3) -> signed distances (N,), metres, in the points' dtype.
SDF = Callable[[torch.Tensor], torch.Tensor]


class MeshSDF:
    """``MeshSDF(mesh)(points (N, 3)) -> (N,)`` signed distances in the points' dtype and device.

    Exact distances, winding-number signs; the AABB tree is built once, here. Triangles longer than
    a tenth of the mesh's size are split first (the surface does not move): the fast winding
    number's far-field expansion then applies to more of space (3.5x faster on a 1000-triangle mug).
    The winding number's hierarchy is built once too (libigl's ``FastWindingNumberBVH``): the grasp
    search asks thousands of small batches, and rebuilding it per call was most of their cost.
    """

    def __init__(self, mesh: trimesh.Trimesh):
        import igl

        if len(mesh.faces) == 0:
            raise ValueError("MeshSDF needs a mesh with triangles")
        size = float(np.ptp(np.asarray(mesh.vertices), axis=0).max())
        vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=max(size / 10, 1e-9))
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self._tree = igl.AABB()
        self._tree.init(self.vertices, self.faces)
        self._winding = igl.FastWindingNumberBVH()
        self._winding.init(self.vertices, self.faces)

    def winding_number(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) float64 -> (N,) generalised winding numbers (1 inside a closed outward mesh, 0 outside)."""
        # accuracy 2: libigl's default, the same numbers as igl.fast_winding_number(V, F, Q)
        return self._winding.winding_number(np.ascontiguousarray(points, dtype=np.float64), 2.0)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) float64 -> (N,) unsigned distance to the nearest triangle."""
        squared, _, _ = self._tree.squared_distance(
            self.vertices, self.faces, np.ascontiguousarray(points, dtype=np.float64)
        )
        return np.sqrt(np.maximum(squared, 0.0))

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        q = p.detach().reshape(-1, 3).cpu().numpy().astype(np.float64)
        if len(q) == 0:
            return p.new_zeros(p.shape[:-1])
        distance = self.distance(q)
        signed = np.where(np.abs(self.winding_number(q)) > 0.5, -distance, distance)
        return torch.from_numpy(signed).to(dtype=p.dtype, device=p.device).reshape(p.shape[:-1])
