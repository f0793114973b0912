"""Grasps, synthetic clips and prior-training data (hoirecon synth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from hoirecon.cli import main
from hoirecon.data.formats.hoirecon import HoireconFormat
from hoirecon.data.prior_shards import ShardStream, read_index, shard_path
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.data.synth.grasp import GraspConfig, GraspSynthesizer, first_true
from hoirecon.data.synth.prior_data import PriorDataConfig, generate
from hoirecon.geometry.transforms import transform_points
from hoirecon.priors.channels import FAR
from hoirecon.registry import build
from hoirecon.render.raster import rasterize


@pytest.fixture(scope="module")
def hand():
    return build("hand_model", "mano")


def posed_hand(hand, grasp) -> trimesh.Trimesh:
    return trimesh.Trimesh(grasp.hand_vertices(hand).numpy(), hand.faces.numpy(), process=False)


@pytest.mark.parametrize("category", ["mug", "bottle", "knife", "box"])
def test_grasps_touch_without_penetrating(hand, category):
    obj = build("object_generator", category).generate(seed=0)
    cfg = GraspConfig()
    grasp = GraspSynthesizer(hand, cfg).synthesize(obj, seed=1)
    assert grasp.plausible
    # checked independently of the grasp code: trimesh's signed distance to the object's mesh
    hand_mesh = posed_hand(hand, grasp)
    verts_obj = trimesh.transform_points(hand_mesh.vertices, np.linalg.inv(grasp.T_hand_from_obj))
    inside = trimesh.proximity.signed_distance(obj.mesh, verts_obj)  # positive inside
    assert inside.max() * 1000 <= cfg.max_penetration_mm + 0.5  # marching-cubes mesh vs analytic SDF
    touching = np.abs(inside) * 1000 < cfg.contact_mm + 0.5
    assert touching.sum() >= 10
    # the palm and at least three fingertips' worth of distinct fingers touch (thumb included)
    assert "palm" in grasp.touching and "thumb" in grasp.touching and len(grasp.touching) >= 4
    # the hand is not inside the object: its centre is outside
    centre = verts_obj.mean(0, keepdims=True)
    assert trimesh.proximity.signed_distance(obj.mesh, centre)[0] < 0


def test_grasp_is_deterministic(hand):
    obj = build("object_generator", "mug").generate(seed=0)
    a = GraspSynthesizer(hand).synthesize(obj, seed=5)
    b = GraspSynthesizer(hand).synthesize(obj, seed=5)
    c = GraspSynthesizer(hand).synthesize(obj, seed=6)
    assert np.array_equal(a.hand_pose, b.hand_pose) and np.array_equal(a.T_hand_from_obj, b.T_hand_from_obj)
    assert not np.array_equal(a.T_hand_from_obj, c.T_hand_from_obj)


@pytest.mark.parametrize("n, stride", [(141, 10), (141, 7), (5, 10), (1, 3)])
def test_first_true_finds_the_first_index_with_fewer_tests(n, stride):
    asked = []

    def at_least(first):
        def test(index):
            asked.extend(index.tolist())
            return index >= first

        return test

    for first in range(n):  # every place the test could start to hold
        asked.clear()
        assert first_true(at_least(first), n, stride) == first
        assert len(asked) <= -(-n // stride) + stride  # coarse pass, then one stride of fine ones
    assert first_true(at_least(n), n, stride) is None  # never holds


@pytest.fixture(scope="module")
def small_clip(hand, tmp_path_factory):
    from hoirecon.data.formats.hoirecon import write_clip

    cfg = SynthClipConfig(category="mug", seed=0, frames=4, resolution=64, arc_degrees=90)
    path = tmp_path_factory.mktemp("synth") / "mug0"
    write_clip(make_clip(cfg, hand), path)
    return HoireconFormat(HoireconFormat.Config()).load(path)


@pytest.mark.slow  # renders every frame of a 64 px clip; about 5 s
def test_clip_masks_agree_with_projected_ground_truth(small_clip, hand):
    clip = small_clip
    gt = clip.gt
    assert gt is not None and gt.object_vertices is not None
    h, w = clip.image_size
    K = torch.from_numpy(clip.K)
    obj_v = torch.from_numpy(gt.object_vertices)
    obj_cam = transform_points(torch.from_numpy(gt.T_cam_from_obj), obj_v.expand(len(clip), -1, -1))
    zeros = torch.zeros(len(clip), 3)
    hands = gt.hands
    with torch.no_grad():
        hv = hand(torch.from_numpy(hands.hand_pose), torch.from_numpy(hands.betas).expand(len(clip), -1), zeros, zeros)
    hand_cam = transform_points(torch.from_numpy(gt.T_cam_from_hand), hv.vertices)
    with torch.no_grad():
        o = rasterize(obj_cam, torch.from_numpy(gt.object_faces), K, image_size=(h, w))
        hr = rasterize(hand_cam, hand.faces, K, image_size=(h, w))
    for i in range(len(clip)):
        hand_front = hr.covered[i] & (~o.covered[i] | (hr.depth[i] <= o.depth[i]))
        obj_front = o.covered[i] & ~hand_front
        for mask, proj in ((clip.hand_masks[i], hand_front), (clip.object_masks[i], obj_front)):
            proj = proj.numpy()
            iou = (mask & proj).sum() / max((mask | proj).sum(), 1)
            assert iou > 0.9, (i, iou)  # the clip renders a simplified object mesh
        assert clip.hand_masks[i].any() and clip.object_masks[i].any()
        assert not (clip.hand_masks[i] & clip.object_masks[i]).any()


def test_clip_initial_hands_are_noisy_but_close(small_clip):
    clip = small_clip
    gt = clip.gt
    d_t = np.linalg.norm(clip.T_cam_from_hand[:, :3, 3] - gt.T_cam_from_hand[:, :3, 3], axis=-1)
    assert (d_t > 1e-4).all() and (d_t < 0.1).all()
    d_pose = np.abs(clip.hands.hand_pose - gt.hands.hand_pose).mean()
    assert 0.01 < d_pose < 0.3
    # the grasp is rigid: one hand-object pose for the clip
    assert np.allclose(gt.T_hand_from_obj, gt.T_hand_from_obj[0])
    assert np.allclose(gt.T_cam_from_obj, gt.T_cam_from_hand @ gt.T_hand_from_obj, atol=1e-5)


def test_same_seed_same_files(tmp_path, capsys):
    args = ["synth", "clip", "--category", "box", "--seed", "2", "--frames", "2", "--resolution", "32"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) >= 9
    for rel in files:
        a, b = tmp_path / "a" / rel, tmp_path / "b" / rel
        if rel.suffix == ".npz":  # zip entries carry a time stamp: compare the arrays
            with np.load(a) as x, np.load(b) as y:
                assert all(np.array_equal(x[k], y[k]) for k in x.files)
        else:
            assert a.read_bytes() == b.read_bytes(), rel
    assert main([*args, "--seed", "3", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "a/images/000000.png").read_bytes() != (tmp_path / "c/images/000000.png").read_bytes()
    # an existing folder is refused, nothing overwritten
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_clip_from_a_user_mesh(tmp_path, capsys):
    trimesh.creation.icosphere(subdivisions=3, radius=30.0).export(tmp_path / "ball.obj")  # millimetres
    code = main(
        ["synth", "clip", "--object-mesh", str(tmp_path / "ball.obj"), "--object-size", "0.07",
         "--frames", "2", "--resolution", "32", "--out", str(tmp_path / "clip")]
    )  # fmt: skip
    assert code == 0
    mesh = trimesh.load(tmp_path / "clip/gt/object.obj", force="mesh")
    assert mesh.extents.max() == pytest.approx(0.07, rel=1e-3)


def test_prior_data_channels_and_resume(tmp_path):
    cfg = PriorDataConfig(n=5, shard_size=3, resolutions=[16, 24], workers=1, categories=["box", "ball"])
    indexes = generate(cfg, tmp_path)
    assert indexes[16]["samples"] == 5 and indexes[24]["samples"] == 5
    with np.load(shard_path(tmp_path / "r24", 0)) as data:
        cond, target, cats = data["condition"].astype(np.float32), data["target"].astype(np.float32), data["category"]
    assert cond.shape == (3, 7, 24, 24) and target.shape == (3, 5, 24, 24)
    assert set(cats) <= {"box", "ball"}
    hand_on, obj_on = cond[:, 0] > 0.9, target[:, 0] > 0.9
    assert hand_on.any(axis=(1, 2)).all() and obj_on.any(axis=(1, 2)).all()
    assert np.all(np.abs(cond) <= 1.0) and np.all(np.abs(target) <= 1.0)
    # normals are unit length on the object and the hand, zero on the background
    assert np.allclose(np.linalg.norm(target[:, 1:4], axis=1)[obj_on], 1, atol=0.02)
    assert np.allclose(target[:, 1:4].transpose(0, 2, 3, 1)[target[:, 0] < -0.99], 0, atol=0.006)
    # depth: background far; the hand's mean relative depth is about zero
    assert np.allclose(target[:, 4][target[:, 0] < -0.99], FAR, atol=0.011)
    assert abs(float(cond[:, 4][hand_on].mean())) < 0.1
    assert np.any(cond[:, 5][hand_on] != 0)  # the hand code
    # resume: a missing shard is made again, identically; the others are kept
    before = shard_path(tmp_path / "r16", 1).read_bytes()
    shard_path(tmp_path / "r16", 1).unlink()
    mtime = shard_path(tmp_path / "r16", 0).stat().st_mtime_ns
    generate(cfg, tmp_path)
    with np.load(shard_path(tmp_path / "r16", 1)) as new, np.load(__import__("io").BytesIO(before)) as old:
        assert np.array_equal(new["condition"], old["condition"])
    assert shard_path(tmp_path / "r16", 0).stat().st_mtime_ns == mtime
    # the training stream reads it
    assert read_index(tmp_path / "r16")["samples"] == 5
    samples = list(ShardStream(sorted((tmp_path / "r16").glob("shard_*.npz")), shuffle=False))
    assert len(samples) == 5 and samples[0][0].shape == (5, 16, 16) and samples[0][1].shape == (7, 16, 16)


@pytest.mark.slow  # twelve clips, twice
def test_split_writes_every_clip_and_resumes(tmp_path, capsys):
    args = ["synth", "split", "--preset", "hoi4d-like", "--frames", "2", "--resolution", "24", "--out", str(tmp_path)]
    assert main(args) == 0
    names = (tmp_path / "manifest.txt").read_text().split()
    assert len(names) == 12 and {n.rstrip("0123456789") for n in names} == {
        "mug", "bottle", "kettle", "bowl", "knife", "toycar"
    }  # fmt: skip
    stamp = (tmp_path / names[0] / "meta.yaml").stat().st_mtime_ns
    assert main(args) == 0  # existing clips are kept
    assert (tmp_path / names[0] / "meta.yaml").stat().st_mtime_ns == stamp
    assert main([*args[:3], "nope", *args[4:]]) == 1


def test_prior_data_fill_sets_how_much_of_the_image_the_pair_takes(tmp_path):
    areas = {}
    for fill in (0.5, 0.9):
        cfg = PriorDataConfig(n=2, shard_size=2, resolutions=[16], workers=1, categories=["box"], fill=[fill, fill])
        generate(cfg, tmp_path / str(fill))
        with np.load(shard_path(tmp_path / str(fill) / "r16", 0)) as data:
            masks = (data["condition"][:, 0] > 0) | (data["target"][:, 0] > 0)
        areas[fill] = masks.sum(axis=(1, 2)).mean()
    # the same grasps and rotations: the area grows about as fill squared (0.81 / 0.25 = 3.2)
    assert 2.0 < areas[0.9] / areas[0.5] < 4.5
