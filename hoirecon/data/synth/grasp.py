"""Grasp synthesis: the hand's palm put against an object, fingers closed within the joint limits.

One attempt, all in the hand frame (MANO's model frame; the palm faces ``PALM_NORMAL``):

1. a random direction from the object's centre picks a point on its surface (sphere tracing the
   object's SDF from outside) and the surface normal there;
2. the object is rotated so that normal faces the palm, spun by a random angle about it, and moved
   towards the palm until the open hand just touches it (at most ``touch_mm`` of penetration);
3. every finger curls (its three joints together, within their limits, in ``curl_steps`` steps)
   until one of its vertices comes within ``contact_mm`` of the surface (a finger that never does
   stops where it came closest);
4. the grasp is kept when nothing penetrates deeper than ``max_penetration_mm`` and the palm, the
   thumb and at least ``min_fingers`` other fingers touch; otherwise the next attempt is made.

Penetration is measured with the object's own SDF at the hand's vertices. Deterministic per seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import roma
import torch

from hoirecon.data.synth.objects import SynthObject
from hoirecon.geometry.transforms import invert_transform, make_transform, transform_points
from hoirecon.hand.joints import FINGER_CHAINS, PALM_NORMAL, from_local_components, joint_limits


@dataclass
class GraspConfig:
    attempts: int = 32
    curl_steps: int = 24
    #: A vertex this close to the surface touches it.
    contact_mm: float = 3.0
    #: How far the open palm may sink into the object when it is placed.
    touch_mm: float = 1.5
    #: Reject grasps with a vertex deeper than this inside the object.
    max_penetration_mm: float = 4.0
    #: Fingers other than the thumb that must touch.
    min_fingers: int = 2
    #: Standard deviation of the hand's shape parameters.
    betas_std: float = 0.6


@dataclass
class Grasp:
    """hand_pose (45,), betas (10,), T_hand_from_obj (4, 4), all float32 numpy; quality figures."""

    hand_pose: np.ndarray
    betas: np.ndarray
    T_hand_from_obj: np.ndarray
    penetration_mm: float
    touching: list[str] = field(default_factory=list)
    plausible: bool = True
    attempt: int = 0

    def hand_joints(self, hand_model) -> torch.Tensor:
        """(21, 3) the grasping hand's joints in the hand frame."""
        zeros = torch.zeros(1, 3)
        pose, betas = torch.from_numpy(self.hand_pose)[None], torch.from_numpy(self.betas)[None]
        with torch.no_grad():
            return hand_model(pose, betas, zeros, zeros).joints[0]

    def hand_vertices(self, hand_model) -> torch.Tensor:
        """(V, 3) the grasping hand's vertices in the hand frame."""
        zeros = torch.zeros(1, 3)
        pose, betas = torch.from_numpy(self.hand_pose)[None], torch.from_numpy(self.betas)[None]
        with torch.no_grad():
            return hand_model(pose, betas, zeros, zeros).vertices[0]


def vertex_parts(hand_model) -> dict[str, torch.Tensor]:
    """Vertex indices of each finger and of the palm, from the skinning weights (largest weight wins)."""
    owner = hand_model.layer.lbs_weights.argmax(dim=1)
    parts = {name: torch.nonzero(torch.isin(owner, torch.tensor(chain)))[:, 0] for name, chain in FINGER_CHAINS.items()}
    parts["palm"] = torch.nonzero(owner == 0)[:, 0]
    return parts


def surface_point(sdf, direction: torch.Tensor, radius: float, steps: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """First surface point (B, 3) met walking from ``radius * direction`` towards the origin, and the
    outward unit normal there (central differences of the SDF)."""
    p = direction * radius
    for _ in range(steps):
        d = sdf(p)
        p = p - direction * d.clamp(min=0)[:, None]
        if bool((d < 1e-5).all()):
            break
    h = 1e-4
    offsets = torch.eye(3, dtype=p.dtype) * h
    grad = torch.stack([sdf(p + offsets[k]) - sdf(p - offsets[k]) for k in range(3)], dim=-1)
    return p, torch.nn.functional.normalize(grad, dim=-1)


def first_true(test: Callable[[torch.Tensor], torch.Tensor], n: int, stride: int) -> int | None:
    """The first index in ``range(n)`` where ``test`` (indices (K,) -> bools (K,)) holds, or None, for a
    test that stays true once it holds (the object slid off the palm stays clear of it): every
    ``stride``-th index first, then the ones before the first that holds. About n / stride + stride
    tests instead of n (the grasp search's slide was most of its time)."""
    coarse = torch.arange(0, n, stride)
    if n - 1 not in coarse:
        coarse = torch.cat([coarse, torch.tensor([n - 1])])
    hits = torch.nonzero(test(coarse))[:, 0]
    if len(hits) == 0:
        return None
    k = int(hits[0])
    if k == 0:
        return 0
    fine = torch.arange(int(coarse[k - 1]) + 1, int(coarse[k]))
    fine_hits = torch.nonzero(test(fine))[:, 0] if len(fine) else fine
    return int(fine[fine_hits[0]]) if len(fine_hits) else int(coarse[k])


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(3, 3) rotation taking unit vector ``a`` to unit vector ``b`` (the shortest arc)."""
    axis = torch.linalg.cross(a, b)
    s, c = axis.norm(), torch.dot(a, b)
    if s < 1e-8:
        if c > 0:
            return torch.eye(3, dtype=a.dtype)
        other = torch.tensor([1.0, 0.0, 0.0], dtype=a.dtype) if abs(float(a[0])) < 0.9 else torch.tensor([0.0, 1, 0])
        axis = torch.nn.functional.normalize(torch.linalg.cross(a, other.to(a.dtype)), dim=0)
        return roma.rotvec_to_rotmat(axis * math.pi)
    return roma.rotvec_to_rotmat(axis / s * torch.atan2(s, c))


class GraspSynthesizer:
    """Makes grasps of objects with one hand model; reuse it across objects (it caches the hand's parts)."""

    def __init__(self, hand_model, cfg: GraspConfig | None = None):
        self.hand = hand_model
        self.cfg = cfg or GraspConfig()
        self.parts = vertex_parts(hand_model)
        self.fingers = list(FINGER_CHAINS)
        lower, upper = joint_limits()
        self.flex_max = torch.tensor(upper[:, 0], dtype=torch.float32)  # (15,)
        self.abd_range = torch.tensor(np.stack([lower[:, 1], upper[:, 1]], -1), dtype=torch.float32)
        self.palm_normal = torch.tensor(PALM_NORMAL, dtype=torch.float32)

    def _vertices(self, hand_pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros(len(hand_pose), 3)
        with torch.no_grad():
            return self.hand(hand_pose, betas.expand(len(hand_pose), -1), zeros, zeros).vertices

    def _pose(self, curl: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
        """(B, 5) curl in [0, 1] per finger (FINGER_CHAINS order) and (15,) abduction -> (B, 45)."""
        comps = torch.zeros(len(curl), 15, 3)
        for f, chain in enumerate(FINGER_CHAINS.values()):
            rows = [j - 1 for j in chain]
            comps[:, rows, 0] = curl[:, f : f + 1] * self.flex_max[rows]
        comps[:, :, 1] = spread
        return from_local_components(comps)

    def synthesize(self, obj: SynthObject, seed: int) -> Grasp:
        cfg = self.cfg
        rng = np.random.default_rng(seed)
        sdf = obj.sdf
        betas = torch.tensor(rng.normal(0, cfg.betas_std, 10), dtype=torch.float32)[None]
        radius = float(np.linalg.norm(obj.extent)) + 0.05
        best: Grasp | None = None
        rest = self._vertices(torch.zeros(1, 45), betas)[0]
        palm = rest[self.parts["palm"]]
        # the palm's centre on its surface: the palm vertices furthest along the palm normal, averaged
        depth = palm @ self.palm_normal
        palm_point = palm[depth >= torch.quantile(depth, 0.9)].mean(0)
        # from there towards the middle finger's base: small objects sit nearer the fingers
        knuckle = self.hand(torch.zeros(1, 45), betas, torch.zeros(1, 3), torch.zeros(1, 3)).joints[0, 4]
        towards_fingers = (knuckle - palm_point) - ((knuckle - palm_point) @ self.palm_normal) * self.palm_normal
        directions = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(cfg.attempts, 3))), dim=-1)
        points, normals = surface_point(sdf, directions.to(torch.float64), radius)
        points, normals = points.float(), normals.float()
        for attempt in range(cfg.attempts):
            spin = float(rng.uniform(0, 2 * math.pi))
            spread = torch.tensor(rng.uniform(0.0, 0.4, 15), dtype=torch.float32)
            spread = self.abd_range[:, 0] + spread * (self.abd_range[:, 1] - self.abd_range[:, 0])
            spread = spread * 0.5  # fingers only slightly apart
            contact = palm_point + float(rng.uniform(0.2, 0.9)) * towards_fingers
            grasp = self._attempt(sdf, points[attempt], normals[attempt], spin, spread, betas, rest, contact)
            grasp.attempt = attempt
            if grasp.plausible:
                return grasp
            rank = (len(grasp.touching), -grasp.penetration_mm)
            if best is None or rank > (len(best.touching), -best.penetration_mm):
                best = grasp
        assert best is not None
        return best

    def _object_sdf_at(self, sdf, T_hand_from_obj: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        """SDF (B, V) of the object at hand vertices (B, V, 3) given in the hand frame."""
        local = transform_points(invert_transform(T_hand_from_obj), verts)
        return sdf(local.reshape(-1, 3).double()).float().reshape(verts.shape[:-1])

    def _attempt(self, sdf, point, normal, spin, spread, betas, rest, palm_point) -> Grasp:
        cfg = self.cfg
        R = roma.rotvec_to_rotmat(-self.palm_normal * spin) @ rotation_between(normal, -self.palm_normal)
        # slide the object onto the open palm: the smallest gap with at most touch_mm of penetration
        gaps = torch.linspace(-0.01, 0.06, 141)
        t = palm_point[None] + gaps[:, None] * self.palm_normal[None] - (R @ point)[None]
        T_try = make_transform(R.expand(len(gaps), 3, 3), t)

        def clear(index: torch.Tensor) -> torch.Tensor:
            d = self._object_sdf_at(sdf, T_try[index], rest.expand(len(index), -1, -1))
            return d.min(dim=1).values >= -cfg.touch_mm / 1000

        first = first_true(clear, len(gaps), stride=10)
        if first is None:
            return Grasp(np.zeros(45, np.float32), betas[0].numpy(), np.eye(4, dtype=np.float32), 1e3, [], False)
        T = T_try[first]
        # close every finger together, then keep each finger's curl at its first contact
        levels = torch.linspace(0, 1, cfg.curl_steps)
        curls = levels[:, None].expand(-1, 5)
        verts = self._vertices(self._pose(curls, spread), betas)
        d = self._object_sdf_at(sdf, T, verts)  # (steps, V)
        final = torch.ones(5)
        for f, name in enumerate(self.fingers):
            near = d[:, self.parts[name]].min(dim=1).values
            hit = torch.nonzero(near < cfg.contact_mm / 1000)[:, 0]
            # a finger that never touches stops where it comes closest (relaxed, not a fist)
            final[f] = levels[hit[0]] if len(hit) else levels[near.argmin()]
        pose = self._pose(final[None], spread)
        verts = self._vertices(pose, betas)[0]
        d = self._object_sdf_at(sdf, T, verts[None])[0]
        penetration = float(max(0.0, -d.min())) * 1000
        touching = [name for name in ("palm", *self.fingers) if d[self.parts[name]].min() < cfg.contact_mm / 1000]
        others = [n for n in touching if n not in ("palm", "thumb")]
        plausible = (
            penetration <= cfg.max_penetration_mm
            and "palm" in touching
            and "thumb" in touching
            and len(others) >= cfg.min_fingers
        )
        return Grasp(pose[0].numpy(), betas[0].numpy(), T.numpy(), penetration, touching, plausible)
