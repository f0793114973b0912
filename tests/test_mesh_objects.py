"""Objects from mesh files, open or closed: winding-number signs, clear refusals, the mesh library."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from hoirecon.cli import main
from hoirecon.data.synth.library import LIBRARY, SHAPE_CATEGORY, SIZES, LibraryMesh, Part, library_index, package_root
from hoirecon.data.synth.mesh_objects import RESERVED_EVALUATION_MESHES, is_reserved
from hoirecon.errors import DataError
from hoirecon.geometry.mesh_sdf import MeshSDF
from hoirecon.registry import build

# a thin open cup: wall 3 mm (radius 37-40 mm), 100 mm tall, no rim (open at the top), and a
# 5 mm bottom disc that is a separate, overlapping part (as in Meta-World's cup.stl)
R_IN, R_OUT, HEIGHT, BASE = 0.037, 0.040, 0.100, 0.005


def open_cup() -> trimesh.Trimesh:
    wall = trimesh.creation.annulus(r_min=R_IN, r_max=R_OUT, height=HEIGHT, sections=96)
    rim = (wall.face_normals[:, 2] > 0.99) & (wall.triangles_center[:, 2] > HEIGHT / 2 - 1e-9)
    wall.update_faces(~rim)
    disc = trimesh.creation.cylinder(radius=R_OUT, height=BASE, sections=96)
    disc.apply_translation([0, 0, -HEIGHT / 2 + BASE / 2])
    cup = trimesh.util.concatenate([wall, disc])
    assert not cup.is_watertight
    return cup


def test_open_cup_signs_wall_inside_cavity_and_outside_outside():
    sdf = MeshSDF(open_cup())
    points = torch.tensor(
        [
            [(R_IN + R_OUT) / 2, 0.0, 0.0],  # in the wall
            [0.0, (R_IN + R_OUT) / 2, 0.03],  # in the wall, near the open rim
            [0.0, 0.0, 0.0],  # in the cavity
            [0.0, 0.0, HEIGHT / 2 - 0.002],  # in the cavity's mouth
            [0.06, 0.0, 0.0],  # beside the cup
            [0.0, 0.0, -HEIGHT / 2 + BASE / 2],  # in the bottom disc
        ],
        dtype=torch.float64,
    )
    d = sdf(points).numpy()
    # hand-computed: half the wall; nearest is the rim edge 2 mm above; the inner wall; the wall's
    # top inner edge 2 mm up and 37 mm out; 20 mm to the outer wall; half the disc
    np.testing.assert_allclose(
        d,
        [-0.0015, -0.0015, R_IN, np.hypot(R_IN, 0.002), 0.06 - R_OUT, -BASE / 2],
        atol=2e-4,  # the 96-gon's flats are 0.05 mm inside the circle
    )


def test_signs_do_not_depend_on_face_orientation():
    cup = open_cup()
    flipped = trimesh.Trimesh(cup.vertices, cup.faces[:, ::-1], process=False)
    points = torch.from_numpy(np.random.default_rng(0).uniform(-0.06, 0.06, (2000, 3)))
    np.testing.assert_allclose(MeshSDF(cup)(points).numpy(), MeshSDF(flipped)(points).numpy())


def test_mesh_sdf_matches_trimesh_exact_signed_distance():
    mesh = build("object_generator", "mug").generate(seed=0).mesh
    points = np.random.default_rng(0).uniform(-0.08, 0.08, (400, 3))
    exact = -trimesh.proximity.signed_distance(mesh, points)  # trimesh: positive inside
    ours = MeshSDF(mesh)(torch.from_numpy(points)).numpy()
    np.testing.assert_allclose(np.abs(ours), np.abs(exact), atol=1e-5)  # trimesh prunes candidates
    assert (np.sign(ours) == np.sign(exact))[np.abs(exact) > 1e-4].all()


def test_sign_of_an_extracted_largest_component():
    """The fit's export path (marching cubes, largest component): a sphere's centre is inside."""
    from hoirecon.sdf.mesh import extract_mesh

    def two_spheres(p: torch.Tensor) -> torch.Tensor:
        return torch.minimum(p.norm(dim=-1) - 0.05, (p - p.new_tensor([0.08, 0, 0])).norm(dim=-1) - 0.01)

    mesh = extract_mesh(two_spheres, 0.1, resolution=64, largest_component=True)
    d = MeshSDF(mesh)(torch.tensor([[0.0, 0, 0], [0.0, 0, 0.07]])).numpy()
    np.testing.assert_allclose(d, [-0.05, 0.02], atol=1.5e-3)


def test_user_mesh_is_scaled(tmp_path):
    path = tmp_path / "thing.stl"
    trimesh.creation.box((10.0, 20.0, 40.0)).export(path)
    obj = build("object_generator", {"type": "mesh", "path": str(path), "size": 0.2, "category": "box"}).generate(0)
    # the object's mesh is its SDF's level set (marching cubes), within a hundredth of a voxel here
    np.testing.assert_allclose(obj.mesh.extents, [0.05, 0.1, 0.2], atol=1e-4)
    assert obj.mesh.is_watertight
    assert obj.sdf(torch.zeros(1, 3, dtype=torch.float64)).item() == pytest.approx(-0.025, abs=1e-9)
    assert obj.params["scale"] == pytest.approx(0.005) and obj.source == str(path)
    obj = build("object_generator", {"type": "mesh", "path": str(path), "scale": 0.001}).generate(0)
    np.testing.assert_allclose(obj.mesh.extents, [0.01, 0.02, 0.04], atol=1e-4)


def _generate(path, **cfg):
    return build("object_generator", {"type": "mesh", "path": str(path), **cfg}).generate(0)


def test_open_and_multipart_meshes_are_accepted(tmp_path):
    box = trimesh.creation.box((0.1, 0.1, 0.1))
    box.update_faces(np.arange(len(box.faces) - 1))  # one triangle missing
    box.export(tmp_path / "open.obj")
    obj = _generate(tmp_path / "open.obj")
    assert obj.sdf(torch.zeros(1, 3)).item() == pytest.approx(-0.05, abs=1e-6)
    open_cup().export(tmp_path / "cup.ply")
    cup = _generate(tmp_path / "cup.ply", voxel=0.002)
    assert cup.mesh.is_watertight and cup.mesh.extents.max() == pytest.approx(HEIGHT, abs=0.002)  # one voxel


def test_bad_meshes_are_refused_in_one_line(tmp_path):
    with pytest.raises(DataError, match="missing.obj: mesh file not found"):
        _generate(tmp_path / "missing.obj")
    (tmp_path / "bad.obj").write_text("v 1 2\nf 1 2 9\n")
    with pytest.raises(DataError, match="bad.obj"):
        _generate(tmp_path / "bad.obj")
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(DataError, match="points.obj: no triangles"):
        _generate(tmp_path / "points.obj")
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\nv nan 0 0.1\nf 1 2 3\nf 1 2 4\n")
    with pytest.raises(DataError, match="nan.obj: 1 of 4 vertices are NaN or infinite"):
        _generate(tmp_path / "nan.obj")
    trimesh.creation.box((0.1, 0.1, 0.1)).export(tmp_path / "flat.obj")
    sheet = trimesh.Trimesh([[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0, 0.1, 0]], [[0, 1, 2], [0, 2, 3]])
    sheet.export(tmp_path / "sheet.obj")
    with pytest.raises(DataError, match="sheet.obj: the surface encloses no volume"):
        _generate(tmp_path / "sheet.obj")
    trimesh.creation.icosphere(radius=50.0).export(tmp_path / "huge.obj")
    with pytest.raises(DataError, match=r"huge.obj: the object is 100 m across.*--object-size"):
        _generate(tmp_path / "huge.obj")
    assert _generate(tmp_path / "huge.obj", size=0.08, voxel=0.004).mesh.extents.max() == pytest.approx(0.08, abs=4e-3)


@pytest.mark.slow
def test_synth_clip_of_an_open_mesh_is_valid(tmp_path):
    from hoirecon.data.check import check

    open_cup().apply_scale(1000).export(tmp_path / "scan.obj")  # millimetres, as scanners write
    code = main(
        ["synth", "clip", "--object-mesh", str(tmp_path / "scan.obj"), "--object-size", "0.1",
         "--frames", "2", "--resolution", "32", "--out", str(tmp_path / "clip")]
    )  # fmt: skip
    assert code == 0
    ok, lines = check(tmp_path / "clip")
    assert ok, lines
    gt = trimesh.load(tmp_path / "clip/gt/object.obj", force="mesh")
    assert gt.is_watertight and gt.extents.max() == pytest.approx(0.1, abs=0.0015)


# --- the mesh library (the meshes extra is installed by `make test`) -------------------------------


def test_library_has_every_named_mesh_and_the_random_shapes():
    index = library_index()
    assert {e.name for e in LIBRARY} <= {e.name for e in index}
    assert sum(e.category == SHAPE_CATEGORY for e in index) == 1000
    assert {"mug", "cup", "bottle", "kettle"} <= {e.category for e in index}


def test_reserved_evaluation_meshes_are_never_drawn(monkeypatch):
    import hoirecon.data.synth.library as library

    root = package_root("pybullet_data")
    reserved = [p for p in root.rglob("*") if p.is_file() and is_reserved(p)]
    names = {p.name for p in reserved}
    assert {"mug.obj", "bunny.obj", "duck.obj"} <= names and any(n.startswith("teddy") for n in names)
    assert not is_reserved(root / "random_urdfs/000/000.obj") and not is_reserved("/scans/mug.obj")
    assert not any(is_reserved(package_root(e.package) / p.path) for e in library_index() for p in e.parts)
    # an entry pointing at one is dropped from the index
    sneaky = LibraryMesh("pybullet_data/mug", "mug", "pybullet_data", (Part("objects/mug.obj"),))
    monkeypatch.setattr(library, "LIBRARY", (*LIBRARY, sneaky))
    library.library_index.cache_clear()
    try:
        assert sneaky not in library.library_index()
    finally:
        library.library_index.cache_clear()
    assert RESERVED_EVALUATION_MESHES  # the list the docs point to


@pytest.mark.parametrize("category", ["mug", "cup", "kettle", "bottle"])
def test_library_objects_are_hand_sized_and_seeded(category):
    gen = build("object_generator", {"type": "library", "category": category, "voxel": 0.004})
    a, b, c = gen.generate(1), gen.generate(1), gen.generate(2)
    low, high = SIZES[category]
    assert a.category == category and low - 1e-9 <= a.extent.max() <= high + 1e-9
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    assert not np.allclose(a.extent, c.extent)
    assert a.sdf(torch.zeros(1, 3, dtype=torch.float64)).item() != 0


def test_library_open_cup_has_an_outside_cavity():
    obj = build("object_generator", {"type": "library", "category": "cup"}).generate(0)
    assert "cup.stl" in obj.source and obj.mesh.is_watertight  # the level set of an open mesh's SDF
    top = obj.mesh.bounds[1][2]
    wall = obj.mesh.vertices[np.argmax(obj.mesh.vertices[:, 0])]  # the outermost wall point
    d = obj.sdf(torch.tensor([[0, 0, top * 0.3], [0, 0, top + 0.02], wall - [0.0015, 0, 0]])).numpy()
    assert d[0] > 0.01 and d[1] > 0.01 and d[2] < 0  # cavity and above it: outside; in the wall: inside


def test_library_errors():
    with pytest.raises(DataError, match="no 'teapot' meshes.*library categories: bottle"):
        build("object_generator", {"type": "library", "category": "teapot"}).generate(0)


def test_split_preset_with_real_meshes():
    from hoirecon.data.synth.clip import SynthClipConfig
    from hoirecon.data.synth.commands import split_configs

    configs = split_configs("hoi4d-real", SynthClipConfig())
    library = {name for name, cfg in configs.items() if cfg.objects == "library"}
    assert library == {"mug1", "mug2", "bottle1", "bottle2", "kettle1", "kettle2", "cup1", "cup2"}
    assert {cfg.category for cfg in configs.values()} >= {"bowl", "knife", "toycar"}
    assert all(cfg.objects == "library" for cfg in split_configs("narrow", SynthClipConfig(objects="library")).values())


def test_grasp_of_an_open_library_cup_touches_without_penetrating():
    import igl

    from hoirecon.data.synth.grasp import GraspConfig, GraspSynthesizer

    hand = build("hand_model", "mano")
    obj = build("object_generator", {"type": "library", "category": "cup"}).generate(3)
    cfg = GraspConfig()
    grasp = GraspSynthesizer(hand, cfg).synthesize(obj, seed=1)
    assert grasp.plausible and "palm" in grasp.touching
    # checked with libigl's own signed distance (positive outside), not the grasp's SDF
    verts = trimesh.transform_points(grasp.hand_vertices(hand).numpy(), np.linalg.inv(grasp.T_hand_from_obj))
    kind = igl.SignedDistanceType.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER
    d, _, _, _ = igl.signed_distance(verts.astype(np.float64), obj.mesh.vertices, obj.mesh.faces.astype(np.int64), kind)
    voxel_mm = obj.extent.max() / 80 * 1000  # obj.mesh is marching cubes of the grasp's exact SDF
    assert -d.min() * 1000 <= cfg.max_penetration_mm + voxel_mm
    assert (np.abs(d) * 1000 < cfg.contact_mm + 0.5).sum() >= 10


@pytest.mark.slow
def test_prior_data_draws_library_meshes(tmp_path):
    from hoirecon.data.synth.library import library_categories
    from hoirecon.data.synth.prior_data import PRIOR_CATEGORIES, PriorDataConfig, generate

    cfg = PriorDataConfig(
        n=6,
        shard_size=6,
        resolutions=[16],
        workers=1,
        objects=["library"],
        grasps_per_object=1,
        views_per_grasp=1,
        seed=1,
    )
    generate(cfg, tmp_path)
    with np.load(tmp_path / "r16" / "shard_00000.npz") as data:
        categories = set(data["category"])
    assert categories <= set(library_categories()) and categories - set(PRIOR_CATEGORIES)
    with pytest.raises(DataError, match="unknown object source"):
        generate(PriorDataConfig(n=1, objects=["procedural", "scans"]), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_synth_clip_from_the_library_on_the_command_line(tmp_path, capsys):
    args = ["synth", "clip", "--category", "kettle", "--frames", "2", "--resolution", "32"]
    assert main([*args, "--objects", "library", "--out", str(tmp_path / "k")]) == 0
    meta = (tmp_path / "k" / "meta.yaml").read_text()
    assert "gymnasium_robotics/kettle" in meta
    assert main([*args, "--objects", "library,procedural", "--out", str(tmp_path / "j")]) == 1
    assert "--objects: one source" in capsys.readouterr().err
    assert main(["synth", "prior-data", "--n", "1", "--objects", "scans", "--out", str(tmp_path / "p")]) == 1
    assert "unknown object source" in capsys.readouterr().err


@pytest.mark.slow
def test_user_meshes_in_splits_and_prior_data(tmp_path, capsys):
    from hoirecon.data.prior_shards import read_index

    open_cup().export(tmp_path / "scan.obj")
    common = ["--object-mesh", str(tmp_path / "scan.obj"), "--object-size", "0.1"]
    split = ["synth", "split", "--preset", "narrow", "--frames", "2", "--resolution", "24", *common]
    assert main([*split, "--category", "cup", "--out", str(tmp_path / "split")]) == 0
    assert (tmp_path / "split/manifest.txt").read_text().split() == ["cup1", "cup2"]  # the preset's seeds
    prior = ["synth", "prior-data", "--n", "3", "--resolutions", "16", "--workers", "1", *common]
    assert main([*prior, "--out", str(tmp_path / "prior")]) == 0
    with np.load(tmp_path / "prior/r16/shard_00000.npz") as data:
        assert set(data["category"]) == {"scan"}
    assert read_index(tmp_path / "prior/r16")["samples"] == 3
    reserved = package_root("pybullet_data") / "objects" / "mug.obj"
    assert main([*prior[:-2], "--object-mesh", str(reserved), "--out", str(tmp_path / "p2")]) == 1
    assert "mug.obj: reserved for evaluation" in capsys.readouterr().err
    assert main([*prior, "--objects", "procedural", "--out", str(tmp_path / "p3")]) == 1
    assert "'mesh' is not among the object sources" in capsys.readouterr().err


@pytest.mark.slow
def test_a_packaged_open_cup_makes_a_valid_clip_that_scores(tmp_path):
    """Meta-World's cup.stl (open: its wall ring is not closed) as a user's mesh: a valid clip, and
    evaluation scores against its ground truth (here a copy of it moved by 3 mm)."""
    from hoirecon.data.check import check
    from hoirecon.data.load import load_clip
    from hoirecon.eval.fit_scores import seen_by_the_clip
    from hoirecon.eval.geometry import object_scores

    cup = package_root("metaworld") / "assets/objects/meshes/coffeemachine/cup.stl"
    assert not trimesh.load(cup, force="mesh").is_watertight
    args = ["synth", "clip", "--object-mesh", str(cup), "--object-size", "0.1", "--frames", "3", "--resolution", "48"]
    assert main([*args, "--arc", "60", "--out", str(tmp_path / "clip")]) == 0
    ok, lines = check(tmp_path / "clip")
    assert ok, lines
    clip = load_clip(tmp_path / "clip")
    gt = trimesh.Trimesh(clip.gt.object_vertices, clip.gt.object_faces, process=False)
    moved = gt.copy().apply_translation([0.003, 0, 0])
    scores = object_scores(moved, gt, "none", gt_seen=lambda p: seen_by_the_clip(clip, gt, p))
    assert scores["f@5mm"] > 0.9 and scores["f@10mm"] == pytest.approx(1.0)
    assert 0.05 < scores["unseen_share"] < 0.95 and scores["unseen_f@10mm"] == pytest.approx(1.0)


def test_library_settings_change_the_objects():
    def draw(**cfg):
        return build("object_generator", {"type": "library", "voxel": 0.004, **cfg})

    mug = [e for e in LIBRARY if e.name == "metaworld/mug"][0]
    exact = draw(aspect=0.0).object_of(mug, np.random.default_rng(0))
    ratio = lambda o: np.sort(o.extent) / o.extent.max()  # noqa: E731
    np.testing.assert_allclose(ratio(exact), np.sort([0.081, 0.054, 0.066]) / 0.081, atol=0.06)
    stretched = draw(aspect=0.3).object_of(mug, np.random.default_rng(0))
    assert np.abs(ratio(stretched) - ratio(exact)).max() > 0.05
    assert draw(category="mug", sizes={"mug": [0.2, 0.2]}).generate(0).extent.max() == pytest.approx(0.2, abs=0.005)
    assert all(e.category != SHAPE_CATEGORY for e in draw(shapes=False).candidates())
    assert any(e.category == SHAPE_CATEGORY for e in draw().candidates())
    coarse, fine = draw(category="cup", voxel=0.004).generate(0), draw(category="cup", voxel=0.002).generate(0)
    assert len(fine.mesh.faces) > 3 * len(coarse.mesh.faces)


def test_more_refusals_in_one_line(tmp_path, monkeypatch, capsys):
    import hoirecon.data.synth.library as library

    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 0.1 0 0\nv 0.2 0 0\nf 1 2 3\n")
    with pytest.raises(DataError, match="flat.obj: every triangle has zero area"):
        _generate(tmp_path / "flat.obj")
    open_cup().export(tmp_path / "a.obj")
    args = [
        "synth",
        "clip",
        "--object-mesh",
        str(tmp_path / "a.obj"),
        str(tmp_path / "a.obj"),
        "--out",
        str(tmp_path / "c"),
    ]
    assert main(args) == 1
    assert "--object-mesh: one mesh for a clip" in capsys.readouterr().err
    kettle = [e for e in LIBRARY if e.category == "kettle"][0]
    monkeypatch.setattr(library, "package_root", lambda package: None)
    library.library_index.cache_clear()
    library.assembled_mesh.cache_clear()
    try:
        with pytest.raises(DataError, match="no mesh package is installed; install them with pip install -e"):
            build("object_generator", "library").generate(0)
        with pytest.raises(
            DataError, match="kettle needs the package 'gymnasium_robotics'.*pip install gymnasium-robotics"
        ):
            library.assembled_mesh(kettle)
    finally:
        library.library_index.cache_clear()
        library.assembled_mesh.cache_clear()
