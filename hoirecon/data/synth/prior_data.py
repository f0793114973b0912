"""Prior-training samples: synthetic grasps rendered from random views around the hand.

Each sample is one (object, grasp, view): the hand's condition channels and the object's amodal
target channels (``hoirecon.priors.channels``), at every requested resolution, with the category.
Views are drawn as the fit draws its novel views (``hoirecon.priors.novel_view``): a uniformly random
rotation looking at the centre of the hand-object box, framed so the pair fills the image. Shards are independent
(seeded by their index) and written atomically, so generation runs in parallel processes and an
interrupted run resumes by skipping the shards that exist.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hoirecon.data.prior_shards import shard_path, write_index, write_shard
from hoirecon.errors import DataError
from hoirecon.priors.channels import hand_channels, object_channels, reference_depth
from hoirecon.priors.novel_view import FOCAL, box_corners, framed_novel_view
from hoirecon.runtime import configure_cpu

#: DiffHOI's six rigid HOI4D categories and five other everyday ones.
PRIOR_CATEGORIES: tuple[str, ...] = (
    "mug", "bottle", "kettle", "bowl", "knife", "toycar", "cup", "can", "box", "ball", "spraybottle",
)  # fmt: skip


@dataclass
class PriorDataConfig:
    n: int = 50000
    resolutions: list[int] = field(default_factory=lambda: [32, 64])
    shard_size: int = 500
    categories: list[str] = field(default_factory=lambda: list(PRIOR_CATEGORIES))
    #: Where objects come from, equally likely per object: "procedural" (a generator of ``categories``)
    #: and/or "library" (a real mesh of any library category, ``hoirecon.data.synth.library``).
    objects: list[str] = field(default_factory=lambda: ["procedural"])
    #: Mesh files of the source "mesh" (a user's scans), drawn uniformly; labelled ``mesh_category``
    #: (or each file's name) and scaled to ``object_size`` metres (0: as they are).
    object_meshes: list[str] = field(default_factory=list)
    object_size: float = 0.0
    mesh_category: str = ""
    #: Distinct grasps carry the idea (the hand says where the object is): many grasps, few views each.
    grasps_per_object: int = 4
    views_per_grasp: int = 2
    #: Share of the image's half-width the hand-object sphere fills (uniform in this range; the fit's
    #: views use ``hoirecon.priors.novel_view.FILL``, the middle).
    fill: list[float] = field(default_factory=lambda: [0.7, 0.9])
    seed: int = 0
    workers: int = 2

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard_size)


def resolution_folder(out: Path, resolution: int) -> Path:
    return Path(out) / f"r{resolution}"


def render_views(hand_verts, hand_faces, hand_code, obj_verts, obj_faces, T_cam_from_hand, focal, resolution):
    """Condition (B, 7, R, R) and target (B, 5, R, R) for views T_cam_from_hand (B, 4, 4), focal (B,) x R pixels.

    hand_verts (V, 3) or (B, V, 3) and obj_verts (W, 3) or (B, W, 3) in the hand frame (one grasp, or
    one per view); hand_code (V, 2).
    """
    from hoirecon.data.synth.scene import render_mesh
    from hoirecon.geometry.transforms import transform_points

    b, r = len(T_cam_from_hand), resolution
    c = (r - 1) / 2
    K = torch.zeros(b, 3, 3)
    K[:, 0, 0] = K[:, 1, 1] = focal * r
    K[:, 0, 2] = K[:, 1, 2] = c
    K[:, 2, 2] = 1
    hand_cam = transform_points(T_cam_from_hand, hand_verts.expand(b, -1, -1))
    obj_cam = transform_points(T_cam_from_hand, obj_verts.expand(b, -1, -1))
    hand = render_mesh(hand_cam, hand_faces, K, (r, r), attributes=hand_code.expand(b, -1, -1))
    obj = render_mesh(obj_cam, obj_faces, K, (r, r))
    z_ref = reference_depth(hand.mask, hand.depth, T_cam_from_hand[:, 2, 3])
    condition = hand_channels(hand.mask, hand.normal, hand.depth, hand.attributes, z_ref)
    target = object_channels(obj.mask, obj.normal, obj.depth, z_ref)
    return condition, target


_WORKER: dict = {}


def _worker_setup() -> None:
    configure_cpu(1)


def make_shard(cfg: PriorDataConfig, index: int, out: Path) -> int:
    """Generate shard ``index`` at every resolution; returns its sample count."""
    from hoirecon.data.synth.grasp import GraspSynthesizer
    from hoirecon.geometry.transforms import transform_points
    from hoirecon.registry import build
    from hoirecon.sdf.mesh import simplified

    if "hand" not in _WORKER:
        _WORKER["hand"] = build("hand_model", "mano")
        _WORKER["grasps"] = GraspSynthesizer(_WORKER["hand"])
    hand_model, grasps = _WORKER["hand"], _WORKER["grasps"]
    rng = np.random.default_rng([cfg.seed, index])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    count = min(cfg.shard_size, cfg.n - index * cfg.shard_size)
    conditions = {r: [] for r in cfg.resolutions}
    targets = {r: [] for r in cfg.resolutions}
    labels: list[str] = []
    while len(labels) < count:
        source = cfg.objects[int(rng.integers(len(cfg.objects)))] if len(cfg.objects) > 1 else cfg.objects[0]
        if source == "library":
            # 3 mm cubes: renders use at most 3000 faces of the mesh anyway
            obj = build("object_generator", {"type": "library", "voxel": 0.003}).generate(int(rng.integers(2**31)))
        elif source == "mesh":
            obj = _mesh_object(cfg, cfg.object_meshes[int(rng.integers(len(cfg.object_meshes)))])
        else:
            category = cfg.categories[int(rng.integers(len(cfg.categories)))]
            obj = build("object_generator", category).generate(int(rng.integers(2**31)))
        category = obj.category
        obj_verts, obj_faces = simplified(obj.mesh, max_faces=3000)
        frame_points = box_corners(*torch.tensor(np.array(obj.mesh.bounds), dtype=torch.float32))
        views: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # hand, object, T_cam_from_hand
        for _ in range(cfg.grasps_per_object):
            grasp = grasps.synthesize(obj, int(rng.integers(2**31)))
            if not grasp.plausible:
                continue
            hand_verts = grasp.hand_vertices(hand_model)
            obj_hand = transform_points(torch.from_numpy(grasp.T_hand_from_obj), obj_verts)
            n_views = min(cfg.views_per_grasp, count - len(labels) - len(views))
            points = torch.cat([hand_verts, transform_points(torch.from_numpy(grasp.T_hand_from_obj), frame_points)])
            fills = rng.uniform(*cfg.fill, n_views)
            views += [(hand_verts, obj_hand, framed_novel_view(points, 1, gen, fill=float(f))[0]) for f in fills]
            if len(labels) + len(views) >= count:
                break
        if views:  # all the object's views in one rasteriser call per mesh and resolution
            hand_b, obj_b, T = (torch.stack(x) for x in zip(*views))
            focal = torch.full((len(views),), FOCAL)
            for r in cfg.resolutions:
                condition, target = render_views(
                    hand_b, hand_model.faces, hand_model.vertex_code, obj_b, obj_faces, T, focal, r
                )
                conditions[r].append(condition.numpy())
                targets[r].append(target.numpy())
            labels += [category] * len(views)
    for r in cfg.resolutions:
        folder = resolution_folder(out, r)
        folder.mkdir(parents=True, exist_ok=True)
        write_shard(shard_path(folder, index), np.concatenate(conditions[r]), np.concatenate(targets[r]), labels)
    return count


def _make_shard_star(args: tuple) -> int:
    return make_shard(*args)


def check_objects(cfg: PriorDataConfig) -> None:
    """Refuse unknown object sources, the library without its packages and unusable mesh files,
    before any worker starts."""
    from hoirecon.data.synth.clip import OBJECT_SOURCES
    from hoirecon.data.synth.mesh_objects import is_reserved, prepare_mesh, read_mesh
    from hoirecon.registry import build

    sources = (*OBJECT_SOURCES, "mesh")
    unknown = [o for o in cfg.objects if o not in sources]
    if unknown or not cfg.objects:
        raise DataError(f"objects: unknown object source(s) {unknown or cfg.objects} (sources: {', '.join(sources)})")
    if "library" in cfg.objects:
        build("object_generator", "library").candidates()
    if "mesh" in cfg.objects and not cfg.object_meshes:
        raise DataError("objects: the source 'mesh' needs mesh files (--object-mesh A.obj B.ply ...)")
    if cfg.object_meshes and "mesh" not in cfg.objects:
        raise DataError("object_meshes are given but 'mesh' is not among the object sources (--objects ...,mesh)")
    for path in cfg.object_meshes if "mesh" in cfg.objects else ():
        if is_reserved(path):
            raise DataError(f"{path}: reserved for evaluation (docs/synth.md); never train the prior on it")
        prepare_mesh(read_mesh(path), path, size=cfg.object_size)  # a bad file fails here, in one line


def _mesh_object(cfg: PriorDataConfig, path: str):
    """The object of a user's mesh file, made once per worker (its grasps differ per draw)."""
    from hoirecon.registry import build

    cache = _WORKER.setdefault("meshes", {})
    if path not in cache:
        spec = {"type": "mesh", "path": path, "size": cfg.object_size, "voxel": 0.003}
        cache[path] = build("object_generator", {**spec, "category": cfg.mesh_category or Path(path).stem}).generate(0)
    return cache[path]


def missing_shards(cfg: PriorDataConfig, out: Path) -> list[int]:
    """Shards not yet written at every resolution (what a resumed run still has to make)."""
    return [
        i
        for i in range(cfg.n_shards)
        if not all(shard_path(resolution_folder(out, r), i).is_file() for r in cfg.resolutions)
    ]


def generate(cfg: PriorDataConfig, out: str | Path, progress: Callable[[int], None] | None = None) -> dict[int, dict]:
    """Write every missing shard (in ``cfg.workers`` processes) and the index of each resolution folder."""
    check_objects(cfg)
    out = Path(out)
    todo = missing_shards(cfg, out)
    jobs = [(cfg, i, out) for i in todo]
    if cfg.workers <= 1 or len(jobs) <= 1:
        threads = torch.get_num_threads()
        _worker_setup()
        try:
            for job in jobs:
                done = _make_shard_star(job)
                if progress:
                    progress(done)
        finally:
            torch.set_num_threads(threads)
    else:
        ctx = multiprocessing.get_context("spawn")  # fork after torch threads started can hang
        with ctx.Pool(cfg.workers, initializer=_worker_setup) as pool:
            for done in pool.imap_unordered(_make_shard_star, jobs):
                if progress:
                    progress(done)
    return {r: write_index(resolution_folder(out, r), r) for r in cfg.resolutions}
