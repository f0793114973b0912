"""Synthetic hand-object clips with ground truth: a grasped object seen from a camera moving on an arc.

The grasp is rigid over the clip (the hand holds the object); the camera orbits the hand-object
centre by ``arc_degrees`` (how much of the object is ever seen: real clips see about one side),
with a little wobble in distance and height. Frames are rendered with the soft rasteriser: RGB with
shading, a painted object and a textured noisy background; visible hand and object masks; K. The
initial hands mimic an off-the-shelf estimator: the true articulation, shape and camera pose plus
a per-clip bias and per-frame jitter.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import roma
import torch

from hoirecon.data.clip import Clip, ClipGT, HandParams
from hoirecon.data.synth.grasp import Grasp, GraspConfig, GraspSynthesizer
from hoirecon.data.synth.objects import SynthObject
from hoirecon.data.synth.scene import compose_rgb, noise_background, render_mesh, visible_masks
from hoirecon.errors import DataError
from hoirecon.geometry.camera import look_at
from hoirecon.geometry.transforms import make_transform, transform_points
from hoirecon.registry import build
from hoirecon.sdf.mesh import simplified

OBJECT_COLOURS = np.array(
    [[0.80, 0.15, 0.12], [0.15, 0.35, 0.75], [0.90, 0.75, 0.20], [0.20, 0.60, 0.30], [0.85, 0.85, 0.85],
     [0.30, 0.30, 0.32], [0.60, 0.30, 0.65], [0.95, 0.50, 0.15]]
)  # fmt: skip


@dataclass
class InitNoise:
    """Errors of the initial hands, like an off-the-shelf estimator's: a bias per clip, jitter per frame."""

    pose_rad: float = 0.08
    betas: float = 0.3
    rotation_deg: float = 4.0
    #: Translation error in the camera frame (x, y, depth), metres.
    translation_m: list[float] = field(default_factory=lambda: [0.004, 0.004, 0.02])
    #: Share of each error that changes every frame (the rest is a bias shared by the clip).
    jitter: float = 0.3


@dataclass
class SynthClipConfig:
    category: str = "mug"
    seed: int = 0
    frames: int = 24
    resolution: int = 128
    #: Angle swept by the camera around the hand-object centre, degrees (360 = all sides).
    arc_degrees: float = 360.0
    distance: float = 0.45
    #: Focal length in units of the image width.
    focal: float = 1.6
    fps: float = 30.0
    #: Where the object comes from: "procedural" (the category's generator) or "library" (a real mesh
    #: of the category from the mesh library, ``hoirecon.data.synth.library``).
    objects: str = "procedural"
    #: Path of a mesh file (generator ``mesh``): the object is read from it instead (may be open).
    object_mesh: str = ""
    object_size: float = 0.0
    #: Render a forearm behind the wrist (in the images and the hand masks; not in the hand model),
    #: as real footage shows one: MediaPipe finds a hand with an arm more often (docs/data.md).
    forearm: bool = False
    noise: InitNoise = field(default_factory=InitNoise)
    grasp: GraspConfig = field(default_factory=GraspConfig)


def camera_path(
    centre: torch.Tensor, towards_object: torch.Tensor, cfg: SynthClipConfig, rng: np.random.Generator
) -> torch.Tensor:
    """(N, 4, 4) T_cam_from_hand of a camera orbiting ``centre`` over ``arc_degrees``.

    The arc's middle looks at the object from the object's side of the hand, tilted at random, so
    the object is seldom hidden behind the hand for the whole clip.
    """
    normalize = torch.nn.functional.normalize
    base = normalize(towards_object + torch.tensor(rng.normal(0, 0.6, 3), dtype=torch.float32), dim=0)
    up = normalize(torch.linalg.cross(base, torch.tensor(rng.normal(size=3), dtype=torch.float32)), dim=0)
    n = cfg.frames
    angles = torch.linspace(-0.5, 0.5, n) * math.radians(cfg.arc_degrees)
    wobble = torch.tensor(rng.uniform(0, 2 * math.pi, 2), dtype=torch.float32)
    phase = torch.linspace(0, 2 * math.pi, n)
    height = 0.12 * torch.sin(phase + wobble[0])  # radians of elevation change
    distance = cfg.distance + 0.02 * torch.sin(phase + wobble[1])
    eyes = []
    for a, e, d in zip(angles, height, distance):
        R_orbit = roma.rotvec_to_rotmat(up * a)
        direction = R_orbit @ base
        side = normalize(torch.linalg.cross(direction, up), dim=0)
        direction = roma.rotvec_to_rotmat(side * e) @ direction
        eyes.append(centre + direction * d)
    eyes = torch.stack(eyes)
    return look_at(eyes, centre.expand_as(eyes), -up.expand_as(eyes))


def _perturb(
    T_cam_from_hand: torch.Tensor, pose: np.ndarray, betas: np.ndarray, noise: InitNoise, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy (N, 4, 4) cameras, (N, 45) articulations and (10,) shape."""
    n = len(T_cam_from_hand)

    def draw(scale: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
        bias = rng.normal(0, 1, shape[1:])
        return np.asarray(scale) * ((1 - noise.jitter) * bias + noise.jitter * rng.normal(0, 1, shape))

    R_err = roma.rotvec_to_rotmat(torch.tensor(draw(math.radians(noise.rotation_deg), (n, 3)), dtype=torch.float32))
    trans = torch.tensor(draw(np.asarray(noise.translation_m), (n, 3)), dtype=torch.float32)
    # rotate about the hand's position, not the camera's centre: the error an estimator makes
    hand_at = T_cam_from_hand[:, :3, 3]
    t_err = hand_at - (R_err @ hand_at[..., None])[..., 0] + trans
    T = make_transform(R_err, t_err) @ T_cam_from_hand
    pose_noisy = pose[None] + draw(noise.pose_rad, (n, 45))
    betas_noisy = betas + rng.normal(0, noise.betas, 10)
    return T.numpy(), pose_noisy.astype(np.float32), betas_noisy.astype(np.float32)


def forearm_mesh(joints: torch.Tensor, length: float = 0.15, rings: int = 8, segments: int = 24):
    """A tapered elliptic tube from inside the palm back past the wrist: (V, 3) vertices, (F, 3) faces.

    ``joints`` (21, 3) hand-frame joints of the hand model (0 the wrist, 4 the middle MCP, 1 and 7
    the index and pinky MCPs). The tube's cross-section is 5.6 x 4 cm at the wrist, 7 x 5.6 cm at
    its far (capped) end.
    """
    wrist, middle = joints[0].double(), joints[4].double()
    along = wrist - middle
    along = along / along.norm()
    side = joints[1].double() - joints[7].double()
    side = side - (side @ along) * along
    side = side / side.norm()
    up = torch.linalg.cross(along, side)
    t = torch.linspace(0, 1, rings, dtype=torch.float64)
    centres = wrist - 0.015 * along + (length * t)[:, None] * along  # starts 1.5 cm inside the palm
    width, thickness = 0.028 + 0.007 * t, 0.020 + 0.008 * t
    angle = torch.linspace(0, 2 * torch.pi, segments + 1, dtype=torch.float64)[:-1]
    ring = (
        centres[:, None]
        + (width[:, None] * torch.cos(angle))[..., None] * side
        + (thickness[:, None] * torch.sin(angle))[..., None] * up
    )
    vertices = torch.cat([ring.reshape(-1, 3), centres[-1:]])
    faces = []
    for r in range(rings - 1):
        for k in range(segments):
            a, b = r * segments + k, r * segments + (k + 1) % segments
            faces += [(a, a + segments, b), (b, a + segments, b + segments)]
    cap = len(vertices) - 1
    last = (rings - 1) * segments
    faces += [(last + k, cap, last + (k + 1) % segments) for k in range(segments)]
    return vertices.float(), torch.tensor(faces, dtype=torch.long)


def render_clip(
    obj: SynthObject,
    grasp: Grasp,
    hand_model,
    cfg: SynthClipConfig,
    rng: np.random.Generator,
) -> Clip:
    """Render the frames of a clip of ``obj`` held by ``grasp``."""
    n, res = cfg.frames, cfg.resolution
    hand_verts = grasp.hand_vertices(hand_model)
    T_hand_from_obj = torch.from_numpy(grasp.T_hand_from_obj)
    obj_verts, obj_faces = simplified(obj.mesh)
    obj_verts_hand = transform_points(T_hand_from_obj, obj_verts)
    centre = (hand_verts.mean(0) + obj_verts_hand.mean(0)) / 2
    T_cam_from_hand = camera_path(centre, obj_verts_hand.mean(0) - hand_verts.mean(0), cfg, rng)
    f, c = cfg.focal * res, (res - 1) / 2
    K = torch.tensor([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]).expand(n, 3, 3).contiguous()

    hand_faces = hand_model.faces
    if cfg.forearm:
        joints = grasp.hand_joints(hand_model)
        arm_verts, arm_faces = forearm_mesh(joints)
        hand_faces = torch.cat([hand_faces, arm_faces + len(hand_verts)])
        hand_verts = torch.cat([hand_verts, arm_verts])
    hand_cam = transform_points(T_cam_from_hand, hand_verts.expand(n, -1, -1))
    obj_cam = transform_points(T_cam_from_hand, obj_verts_hand.expand(n, -1, -1))
    hand_r = render_mesh(hand_cam, hand_faces, K, (res, res))
    obj_r = render_mesh(obj_cam, obj_faces, K, (res, res), attributes=obj_verts.expand(n, -1, -1))
    visible = visible_masks(hand_r, obj_r)
    background = noise_background((res, res), rng)
    base = OBJECT_COLOURS[rng.integers(len(OBJECT_COLOURS))] * rng.uniform(0.8, 1.1)
    pattern = np.array([rng.uniform(10, 40), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi), rng.uniform(0, 1)])
    skin = np.clip(np.array([0.86, 0.64, 0.52]) * rng.uniform(0.7, 1.1), 0, 1)
    images = compose_rgb(hand_r, obj_r, visible, background, base, pattern, rng, skin)

    T_init, pose_init, betas_init = _perturb(T_cam_from_hand, grasp.hand_pose, grasp.betas, cfg.noise, rng)
    zeros_n = np.zeros((n, 3), np.float32)
    T_hand_from_obj_n = np.repeat(grasp.T_hand_from_obj[None], n, 0).astype(np.float32)
    gt = ClipGT(
        object_vertices=np.asarray(obj.mesh.vertices, np.float32),
        object_faces=np.asarray(obj.mesh.faces, np.int64),
        T_cam_from_obj=(T_cam_from_hand @ T_hand_from_obj).numpy().astype(np.float32),
        T_hand_from_obj=T_hand_from_obj_n,
        T_cam_from_hand=T_cam_from_hand.numpy().astype(np.float32),
        hands=HandParams(np.repeat(grasp.hand_pose[None], n, 0), grasp.betas, zeros_n, zeros_n),
    )
    return Clip(
        path=Path("."),
        frame_names=[f"{i:06d}" for i in range(n)],
        images=images,
        hand_masks=visible.hand.numpy(),
        object_masks=visible.object.numpy(),
        K=K.numpy().astype(np.float32),
        category=obj.category,
        fps=cfg.fps,
        source=f"hoirecon synth clip --category {obj.category} --seed {cfg.seed}"
        + (f" (object: {obj.source})" if obj.source != "procedural" else ""),
        T_cam_from_hand=T_init.astype(np.float32),
        hands=HandParams(pose_init, betas_init, zeros_n, zeros_n),
        gt=gt,
    )


OBJECT_SOURCES = ("procedural", "library")


def make_object(cfg: SynthClipConfig) -> SynthObject:
    """The clip's object: read from ``object_mesh``, or drawn for its category and seed from ``objects``."""
    if cfg.object_mesh:
        spec = {"type": "mesh", "path": cfg.object_mesh, "size": cfg.object_size, "category": cfg.category}
    elif cfg.objects == "library":
        spec = {"type": "library", "category": cfg.category}
    elif cfg.objects == "procedural":
        spec = cfg.category
    else:
        raise DataError(f"objects: unknown object source '{cfg.objects}' (sources: {', '.join(OBJECT_SOURCES)})")
    return build("object_generator", spec).generate(cfg.seed)


def make_clip(cfg: SynthClipConfig, hand_model=None, obj: SynthObject | None = None) -> Clip:
    """Generate the object (unless given), grasp it and render the clip; the same config gives the same clip."""
    hand_model = hand_model or build("hand_model", "mano")
    obj = obj or make_object(cfg)
    grasp = GraspSynthesizer(hand_model, cfg.grasp).synthesize(obj, cfg.seed)
    rng = np.random.default_rng([cfg.seed, zlib.crc32(obj.category.encode())])
    return render_clip(obj, grasp, hand_model, cfg, rng)
