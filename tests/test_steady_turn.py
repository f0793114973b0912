"""The steady turn that replaces the hand rotations MediaPipe got wrong (hoirecon/init/steady_turn.py)."""

from __future__ import annotations

import math

import numpy as np
import roma
import torch

from hoirecon.data.clip import Clip
from hoirecon.init.base import HandInit
from hoirecon.init.mediapipe import MediaPipeInitializer, init_from_landmarks, with_steady_turn
from hoirecon.init.steady_turn import degrees_between, steady_turn, turned_about
from hoirecon.registry import build
from tests.test_video import K, exact_landmarks, hands


def turning(n: int, degrees_per_frame: float = 5.0, seed: int = 0) -> torch.Tensor:
    """(n, 3, 3) rotations turning steadily about one random axis."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(3, generator=g, dtype=torch.float64), dim=0)
    start = roma.random_rotmat(generator=g).double()
    t = torch.arange(n, dtype=torch.float64)
    return roma.rotvec_to_rotmat(axis * math.radians(degrees_per_frame) * t[:, None]) @ start


def test_a_steady_turn_is_found_through_wrong_and_missing_frames():
    truth = turning(20)
    seen = truth.clone()
    g = torch.Generator().manual_seed(1)
    wrong, missing = [2, 7, 8, 13, 19], [0, 10, 11]
    seen[wrong + missing] = roma.random_rotmat(8, generator=g).double()  # flipped readings, and no detection
    weights = torch.ones(20)
    weights[missing] = 0
    turn = steady_turn(seen, weights, inlier_degrees=25)
    assert degrees_between(turn.rotations, truth).max() < 0.5  # every frame, the missing ones too
    expected = torch.ones(20, dtype=torch.bool)
    expected[wrong + missing] = False
    assert torch.equal(turn.agrees, expected)
    assert turn.agreement == 12 / 17
    assert steady_turn(seen, torch.eye(20)[3], 25) is None  # one detected frame: no turn to find


def test_turned_about_keeps_the_centre_in_place():
    T = torch.eye(4).repeat(3, 1, 1)
    T[:, :3, 3] = torch.tensor([0.0, 0.1, 0.5])
    centre = torch.tensor([[0.02, 0.0, 0.01]] * 3)
    R = roma.random_rotmat(3, generator=torch.Generator().manual_seed(0))
    out = turned_about(T, R, centre)
    assert torch.allclose(out[:, :3, :3], R)
    before = (T[:, :3, :3] @ centre[..., None])[..., 0] + T[:, :3, 3]
    after = (out[:, :3, :3] @ centre[..., None])[..., 0] + out[:, :3, 3]
    assert torch.allclose(before, after, atol=1e-6)


def test_a_hand_with_no_steady_turn_keeps_its_rotations():
    hand_model = build("hand_model", {"type": "mano"})
    n = 10
    T = torch.eye(4).repeat(n, 1, 1)
    T[:, :3, :3] = roma.random_rotmat(n, generator=torch.Generator().manual_seed(2))  # every frame its own way
    T[:, 2, 3] = 0.5
    init = HandInit(torch.zeros(n, 45), torch.zeros(10), T)
    out = with_steady_turn(hand_model, init, torch.ones(n), 25.0, 0.5)
    assert torch.equal(out.T_cam_from_hand, T) and "no steady turn" in out.notes[-1]
    two = torch.zeros(n)
    two[[3, 6]] = 1  # two detected frames always agree with the turn through them: no evidence
    assert torch.equal(with_steady_turn(hand_model, init, two, 25.0, 0.5).T_cam_from_hand, T)


def test_steady_degrees_sets_how_undetected_end_frames_turn(tmp_path):
    """The last frame has no detection: interpolation holds the rotation of the one before, the
    steady turn carries on turning as the detected frames did (initializer.steady_degrees)."""
    hand_model = build("hand_model", {"type": "mano"})
    n = 8
    pose, betas, T = hands(n)  # a steady turn of 0.1 rad (5.7 degrees) a frame
    landmarks = exact_landmarks(hand_model, pose, betas, T)
    landmarks.pixels[-1] = np.nan
    landmarks.world[-1] = np.nan
    empty = np.zeros((n, 128, 128), bool)
    clip = Clip(tmp_path, [f"{i:06d}" for i in range(n)], np.zeros((n, 128, 128, 3), np.uint8), empty, empty,
                np.repeat(K[None], n, 0), "mug")  # fmt: skip
    errors = {}
    for degrees in (0.0, 25.0):
        cfg = MediaPipeInitializer.Config(steady_degrees=degrees)
        init = init_from_landmarks(clip, hand_model, landmarks, cfg)
        errors[degrees] = float(degrees_between(init.T_cam_from_hand[-1, :3, :3], T[-1, :3, :3]))
    assert errors[0.0] > 4.0 and errors[25.0] < 0.5 * errors[0.0]


def test_steady_min_agreement_sets_when_the_turn_is_refused():
    """initializer.steady_min_agreement: 12 of 17 detected frames agree (71% of the weight), so 0.5
    replaces the 8 others' rotations and 0.8 leaves every rotation as detected."""
    hand_model = build("hand_model", {"type": "mano"})
    truth = turning(20).float()
    seen = truth.clone()
    seen[[2, 7, 8, 13, 19, 0, 10, 11]] = roma.random_rotmat(8, generator=torch.Generator().manual_seed(1))
    weights = torch.ones(20)
    weights[[0, 10, 11]] = 0
    T = torch.eye(4).repeat(20, 1, 1)
    T[:, :3, :3] = seen
    T[:, 2, 3] = 0.5
    init = HandInit(torch.zeros(20, 45), torch.zeros(10), T)
    replaced = with_steady_turn(hand_model, init, weights, 25.0, 0.5).T_cam_from_hand
    kept = with_steady_turn(hand_model, init, weights, 25.0, 0.8).T_cam_from_hand
    assert degrees_between(replaced[:, :3, :3], truth).max() < 1.0
    assert torch.equal(kept, T)
