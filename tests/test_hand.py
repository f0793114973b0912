"""The hand: the built-in MANO-format asset through smplx, its joints, shapes and limits."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import trimesh

from hoirecon.errors import DataError
from hoirecon.hand.asset import ASSET_PATH
from hoirecon.hand.asset import build as build_asset
from hoirecon.hand.joints import FINGER_CHAINS, from_local_components, joint_limit_loss, joint_limits, skeleton
from hoirecon.registry import build

ZERO3 = torch.zeros(1, 3)


@pytest.fixture(scope="module")
def hand():
    return build("hand_model", {"type": "mano"})


def run(hand, pose=None, betas=None):
    pose = torch.zeros(1, 45) if pose is None else pose
    betas = torch.zeros(1, 10) if betas is None else betas
    return hand(hand_pose=pose, betas=betas, global_orient=ZERO3, transl=ZERO3)


def test_builtin_hand_has_adult_proportions(hand):
    out = run(hand)
    assert out.vertices.shape == (1, 820, 3) and out.joints.shape == (1, 21, 3)
    joints = out.joints[0]
    assert 0.17 <= (joints[18] - joints[0]).norm().item() <= 0.19  # wrist to middle fingertip
    v = out.vertices[0].numpy()
    weights = np.load(ASSET_PATH)["weights"]
    mcp_x = joints[[1, 4, 7, 10], 0].mean().item()
    band = (v[:, 0] > mcp_x - 0.01) & (v[:, 0] < mcp_x + 0.015) & (weights[:, 13:16].sum(1) < 0.5)
    assert 0.08 <= np.ptp(v[band, 2]) <= 0.09  # palm width across the knuckles
    tips = joints[16:]
    assert tips[0, 2] > joints[4, 2]  # thumb on the +z side
    assert (tips[1:, 0] < joints[0, 0] - 0.12).all()  # fingertips ahead of the wrist along -x


def test_asset_is_a_closed_mesh_with_consistent_arrays():
    data = np.load(ASSET_PATH)
    mesh = trimesh.Trimesh(data["v_template"], data["f"], process=False)
    assert 700 <= len(mesh.vertices) <= 1000
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0 and mesh.euler_number == 2
    np.testing.assert_allclose(data["weights"].sum(1), 1.0, atol=1e-5)
    assert (data["J_regressor"] >= 0).all()
    np.testing.assert_allclose(data["J_regressor"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(data["J_regressor"] @ data["v_template"], skeleton()[0], atol=1e-4)
    comps = data["hands_components"]
    np.testing.assert_allclose(comps @ comps.T, np.eye(45), atol=1e-4)


def test_builder_reproduces_the_shipped_file():
    built = build_asset()
    shipped = np.load(ASSET_PATH)
    for key in shipped.files:
        if shipped[key].dtype.kind in "fi":
            np.testing.assert_allclose(built[key], shipped[key], atol=1e-6, err_msg=key)
        else:
            assert (built[key] == shipped[key]).all(), key


def test_bending_a_finger_moves_that_finger_only(hand):
    rest = run(hand).joints[0]
    comps = torch.zeros(1, 15, 3, dtype=torch.float64)
    comps[0, FINGER_CHAINS["index"][0] - 1, 0] = 1.0  # flex the index MCP by 1 rad
    bent = run(hand, from_local_components(comps).float()).joints[0]
    index_tip, pinky_tip = 17, 20
    assert (bent[index_tip] - rest[index_tip]).norm() > 0.04
    assert (bent[pinky_tip] - rest[pinky_tip]).norm() < 1e-6
    assert bent[index_tip, 1] < rest[index_tip, 1] - 0.03  # curls towards the palm (-y)


def test_betas_change_the_size(hand):
    betas = torch.zeros(1, 10)
    betas[0, 0] = 2.0
    small, big = run(hand).joints[0], run(hand, betas=betas).joints[0]
    ratio = (big[18] - big[0]).norm() / (small[18] - small[0]).norm()
    assert 1.05 < ratio < 1.2
    betas = torch.zeros(1, 10)
    betas[0, 2] = 2.0  # longer fingers, same palm
    longer = run(hand, betas=betas).joints[0]
    assert (longer[18] - longer[4]).norm() > (small[18] - small[4]).norm() + 0.005
    assert (longer[4] - longer[0]).norm() == pytest.approx((small[4] - small[0]).norm().item(), abs=0.002)


def test_joint_limit_loss():
    lower, upper = joint_limits()
    inside = from_local_components(torch.from_numpy((lower + upper) / 2)[None])
    assert joint_limit_loss(inside).item() == pytest.approx(0.0, abs=1e-10)
    comps = torch.from_numpy((lower + upper) / 2)[None].clone()
    comps[0, 1, 0] = upper[1, 0] + 0.5  # index PIP over-flexed by 0.5 rad
    pose = from_local_components(comps).requires_grad_(True)
    loss = joint_limit_loss(pose)
    assert loss.item() == pytest.approx(0.25, rel=1e-4)
    loss.backward()
    step = from_local_components(comps) - 0.1 * pose.grad
    assert joint_limit_loss(step).item() < loss.item()


def test_bad_model_files(tmp_path):
    with pytest.raises(DataError, match="MANO_RIGHT.pkl: MANO model file not found"):
        build("hand_model", {"type": "mano", "model_path": str(tmp_path / "MANO_RIGHT.pkl")})
    np.savez(tmp_path / "hand.npz", v_template=np.zeros((3, 3)))
    with pytest.raises(DataError, match="must contain 'RIGHT'"):
        build("hand_model", {"type": "mano", "model_path": str(tmp_path / "hand.npz")})
    np.savez(tmp_path / "MY_RIGHT.npz", v_template=np.zeros((3, 3)))
    with pytest.raises(DataError, match="MY_RIGHT.npz: not a MANO model \\(missing shapedirs"):
        build("hand_model", {"type": "mano", "model_path": str(tmp_path / "MY_RIGHT.npz")})
    with open(tmp_path / "MANO_RIGHT.pkl", "wb") as f:
        f.write(b"\x80\x02cchumpy.ch\nCh\nq\x00.")  # a pickle that needs chumpy
    with pytest.raises(DataError, match="install chumpy"):
        build("hand_model", {"type": "mano", "model_path": str(tmp_path / "MANO_RIGHT.pkl")})


def test_a_real_format_copy_loads_through_the_pkl_path(tmp_path):
    """The same arrays saved as MANO_RIGHT.pkl (MANO's own container) give the same hand."""
    data = dict(np.load(ASSET_PATH))
    with open(tmp_path / "MANO_RIGHT.pkl", "wb") as f:
        pickle.dump(data, f)
    real = build(
        "hand_model",
        {
            "type": "mano",
            "model_path": str(tmp_path / "MANO_RIGHT.pkl"),
            "tip_vertex_ids": data["tip_vertex_ids"].tolist(),
        },
    )
    builtin = build("hand_model", {"type": "mano"})
    assert torch.allclose(run(real).joints, run(builtin).joints, atol=1e-6)
