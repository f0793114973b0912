"""Real everyday meshes from packages on the registry (role ``object_generator``, name ``library``).

Installed with ``pip install -e '.[meshes]'``: robosuite (bottle, can, milk carton, cereal box, bread,
lemon), Meta-World (mug, cup, thermos, hammer), Gymnasium-Robotics (the kitchen kettle), all MIT;
pybullet's ``random_urdfs`` (1000 random shapes, zlib licence) for category-agnostic variety. The
files are found at run time through each package's own location (``importlib.util.find_spec``,
which does not import the package) and never copied. Multi-part objects are assembled as the
package's MJCF places them (the positions in ``LIBRARY`` are copied from those files). Every draw
scales the mesh to a hand-held size for its category, with a random aspect change, so one mesh
gives many objects. pybullet's evaluation meshes (``mesh_objects.RESERVED_EVALUATION_MESHES``) are
never drawn. docs/synth.md, "The mesh library".
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from hoirecon.data.synth.mesh_objects import is_reserved, mesh_object, prepare_mesh, read_mesh, weld
from hoirecon.data.synth.objects import SynthObject
from hoirecon.dataclass_config import ranged
from hoirecon.doctor import MESH_PACKAGES
from hoirecon.errors import DataError
from hoirecon.registry import register

#: Largest bounding-box side, metres, of each library category's objects (uniform in this range).
SIZES: dict[str, tuple[float, float]] = {
    "mug": (0.09, 0.12),
    "cup": (0.08, 0.12),
    "bottle": (0.17, 0.25),
    "kettle": (0.18, 0.25),
    "can": (0.10, 0.13),
    "box": (0.12, 0.20),
    "bread": (0.08, 0.14),
    "lemon": (0.06, 0.08),
    "thermos": (0.18, 0.26),
    "hammer": (0.25, 0.33),
    "shape": (0.06, 0.15),
}

#: The category of the random shapes: no category of the prior's, so they train its unconditional branch.
SHAPE_CATEGORY = "shape"


@dataclass(frozen=True)
class Part:
    """One mesh file of an object, relative to its package (or, with ``capsule`` (radius, half
    length), a MuJoCo capsule along z), placed at ``pos`` after rotating by ``euler`` (x, y, z
    radians, MuJoCo's default order) and scaling by ``scale``."""

    path: str = ""
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    euler: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    capsule: tuple[float, float] | None = None


@dataclass(frozen=True)
class LibraryMesh:
    name: str
    category: str
    package: str
    parts: tuple[Part, ...]
    #: Largest side range, metres, when this object's differs from its category's ``SIZES``.
    size: tuple[float, float] | None = None


_RS = "models/assets/objects/meshes/"
_MW = "assets/objects/meshes/"
_KITCHEN = "envs/assets/kitchen_franka/kitchen_assets/meshes/"

#: The named everyday objects. Positions from metaworld/assets/objects/assets/{mug,thermos}.xml,
#: gymnasium_robotics .../item_assets/kettle_chain.xml (both meshes share one frame; the handle
#: stands on two capsules there) and metaworld's hammer (handle along z, head at the handle's end).
LIBRARY: tuple[LibraryMesh, ...] = (
    LibraryMesh("robosuite/bottle", "bottle", "robosuite", (Part(_RS + "bottle.stl"),)),
    LibraryMesh("robosuite/can", "can", "robosuite", (Part(_RS + "can.stl"),)),
    LibraryMesh("robosuite/milk", "box", "robosuite", (Part(_RS + "milk.stl"),), size=(0.15, 0.21)),
    LibraryMesh("robosuite/cereal", "box", "robosuite", (Part(_RS + "cereal.stl"),)),
    LibraryMesh("robosuite/bread", "bread", "robosuite", (Part(_RS + "bread.stl"),)),
    LibraryMesh("robosuite/lemon", "lemon", "robosuite", (Part(_RS + "lemon.stl"),)),
    LibraryMesh(
        "metaworld/mug",
        "mug",
        "metaworld",
        (
            Part(_MW + "coffeemachine/mug.stl", pos=(0.0, 0.0, 0.034)),
            Part(_MW + "coffeemachine/handle.stl", pos=(0.039, 0.0, 0.047), euler=(1.571, 0.0, 0.0)),
        ),
    ),
    # an open cup: its bottom is a separate disc, the wall's ring is left open around it
    LibraryMesh("metaworld/cup", "cup", "metaworld", (Part(_MW + "coffeemachine/cup.stl"),)),
    LibraryMesh(
        "metaworld/thermos",
        "thermos",
        "metaworld",
        (
            Part(_MW + "thermos/therm_base.stl", pos=(0.0, 0.0, 0.02)),
            Part(_MW + "thermos/therm_body.stl", pos=(0.0, 0.0, 0.14)),
            Part(_MW + "thermos/therm_cap.stl", pos=(0.0, 0.0, 0.285)),
            Part(_MW + "thermos/therm_trim.stl", pos=(0.0, 0.0, 0.285)),
            Part(_MW + "thermos/therm_handle.stl", pos=(0.0, -0.135, 0.132)),
        ),
    ),
    LibraryMesh(
        "metaworld/hammer",
        "hammer",
        "metaworld",
        (Part(_MW + "hammer/hammerhandle.stl"), Part(_MW + "hammer/hammerhead.stl", pos=(0.0, 0.0, 0.16))),
    ),
    LibraryMesh(
        "gymnasium_robotics/kettle",
        "kettle",
        "gymnasium_robotics",
        (
            Part(_KITCHEN + "kettle.stl"),
            Part(_KITCHEN + "kettlehandle.stl"),
            Part(pos=(0.092, 0.0, 0.186), capsule=(0.02, 0.07)),
            Part(pos=(-0.092, 0.0, 0.185), capsule=(0.02, 0.07)),
        ),
    ),
)


def package_root(package: str) -> Path | None:
    """Where an installed package's files are, without importing it; None if it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _random_shapes() -> tuple[LibraryMesh, ...]:
    root = package_root("pybullet_data")
    if root is None:
        return ()
    files = sorted((root / "random_urdfs").glob("*/*.obj"))
    return tuple(
        LibraryMesh(
            f"pybullet_data/random_urdfs/{f.stem}", SHAPE_CATEGORY, "pybullet_data", (Part(str(f.relative_to(root))),)
        )
        for f in files
    )


@functools.cache
def library_index() -> tuple[LibraryMesh, ...]:
    """Every library mesh whose package is installed (reserved evaluation meshes never among them)."""
    entries = [e for e in LIBRARY if package_root(e.package) is not None] + list(_random_shapes())
    return tuple(
        e for e in entries if not any(p.path and is_reserved(package_root(e.package) / p.path) for p in e.parts)
    )


def library_categories() -> list[str]:
    """The categories the installed library covers, named objects first."""
    return list(dict.fromkeys(e.category for e in library_index()))


def part_transform(part: Part) -> np.ndarray:
    """(4, 4) package-frame placement of a part: ``euler`` about the rotating x, y, z axes (MuJoCo's
    default eulerseq "xyz"), scaled by ``scale``, then moved to ``pos``."""
    T = trimesh.transformations.euler_matrix(*part.euler, axes="rxyz")
    T[:3, :3] *= part.scale
    T[:3, 3] = part.pos
    return T


@functools.cache
def assembled_mesh(entry: LibraryMesh) -> trimesh.Trimesh:
    """The entry's parts, placed and concatenated (not merged: parts may overlap), vertices welded."""
    root = package_root(entry.package)
    if root is None:
        raise DataError(
            f"mesh library: {entry.name} needs the package '{entry.package}'; "
            f"install it with pip install -e '.[meshes]' (or pip install {MESH_PACKAGES[entry.package]})"
        )
    parts = []
    for part in entry.parts:
        if part.capsule is not None:
            radius, half = part.capsule
            mesh = trimesh.creation.capsule(height=2 * half, radius=radius, count=[16, 16])
        else:
            mesh = read_mesh(root / part.path)
        parts.append(mesh.apply_transform(part_transform(part)))
    return weld(trimesh.util.concatenate(parts), entry.name)


@register("object_generator", "library")
class LibraryObject:
    """A real mesh of ``category`` (any library category if empty), at a random hand-held size."""

    @dataclass
    class Config:
        #: A library category (``library_categories()``; an unknown one lists them); "" draws from all.
        category: str = ""
        #: Relative change of each axis's length (uniform in +-aspect) before scaling to the size.
        aspect: float = ranged(0.1, at_least=0, below=1)
        #: Whether "" may draw pybullet's random shapes (category "shape").
        shapes: bool = True
        #: Sizes (largest side, metres) per category, overriding ``SIZES``.
        sizes: dict[str, list[float]] = field(default_factory=dict)
        #: Marching-cubes cube side of the object's mesh, metres (0: 1/80 of its size, 1-3 mm).
        voxel: float = ranged(0.0, at_least=0)

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def candidates(self) -> list[LibraryMesh]:
        index = library_index()
        if not index:
            raise DataError("mesh library: no mesh package is installed; install them with pip install -e '.[meshes]'")
        if self.cfg.category:
            chosen = [e for e in index if e.category == self.cfg.category]
            if not chosen:
                known = ", ".join(library_categories())
                raise DataError(
                    f"mesh library: no '{self.cfg.category}' meshes (library categories: {known}; "
                    "a missing package? pip install -e '.[meshes]')"
                )
            return chosen
        return [e for e in index if self.cfg.shapes or e.category != SHAPE_CATEGORY]

    def generate(self, seed: int) -> SynthObject:
        rng = np.random.default_rng(seed)
        candidates = self.candidates()
        categories = list(dict.fromkeys(e.category for e in candidates))
        category = categories[int(rng.integers(len(categories)))]  # categories equally likely, then meshes
        of_category = [e for e in candidates if e.category == category]
        return self.object_of(of_category[int(rng.integers(len(of_category)))], rng)

    def object_of(self, entry: LibraryMesh, rng: np.random.Generator) -> SynthObject:
        """``entry``'s mesh with a random aspect change, scaled to a random size of its category."""
        mesh = assembled_mesh(entry).copy()
        aspect = rng.uniform(1 - self.cfg.aspect, 1 + self.cfg.aspect, 3)
        mesh.apply_transform(np.diag([*aspect, 1.0]))
        low, high = self.cfg.sizes.get(entry.category, entry.size or SIZES[entry.category])
        size = float(rng.uniform(low, high))
        mesh, scale = prepare_mesh(mesh, entry.name, size=size)
        params = {"size": size, "scale": scale, **{f"aspect_{a}": float(v) for a, v in zip("xyz", aspect)}}
        source = ";".join(str(package_root(entry.package) / p.path) for p in entry.parts if p.path)
        return mesh_object(mesh, entry.category, f"{entry.name} ({source})", params, self.cfg.voxel)
