"""Everything a fit optimises, as one plain ``nn.Module``: the object SDF, hands, poses and cameras.

Frames: the hand frame (MANO's model frame) is the world. Per frame ``T_cam_from_hand`` (learned
deltas on the initialiser's), ``T_hand_from_obj`` (one for the clip or per frame, identity at the
start) and ``K``. The object SDF lives in the object frame. No Lightning here: the system in
``hoirecon.systems.fit`` owns the optimisation loop; tests drive this module directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hoirecon.errors import DivergedError
from hoirecon.fit.params import HandDeltas, IntrinsicsDeltas, RigidDeltas
from hoirecon.geometry.camera import pixel_grid, pixel_rays, project, rays_hit_box
from hoirecon.geometry.transforms import invert_transform, transform_points
from hoirecon.hand.model import HandOutput
from hoirecon.init.base import HandInit
from hoirecon.priors.channels import hand_channels, object_channels, reference_depth
from hoirecon.priors.novel_view import box_corners, framed_novel_view
from hoirecon.render.raster import rasterize
from hoirecon.render.volume import VolumeOutput, camera_depth


@dataclass
class RayRender:
    """Per frame and sampled pixel (B, R): the hand's and the object's soft masks and camera depths."""

    hand_alpha: torch.Tensor
    hand_depth: torch.Tensor
    object_alpha: torch.Tensor
    object_depth: torch.Tensor
    #: The volume renderer's output over all B*R rays (gradients for the eikonal term).
    volume: VolumeOutput


@dataclass
class PriorView:
    """What the prior sees from one novel view: object channels (1, 5, R, R) with gradients, the hand
    condition (1, 7, R, R), and the camera, T_cam_from_hand (1, 4, 4) and K (1, 3, 3)."""

    target: torch.Tensor
    condition: torch.Tensor
    T_cam_from_hand: torch.Tensor
    K: torch.Tensor


#: Cells per side of the grid that finds the object's current solid (its box frames novel views).
OBJECT_BOX_CELLS = 24
#: Steps between refreshes of that box in a fit: its 24^3 network evaluations were an eighth of a
#: score-distillation step, and the solid moves little in 16 steps (the occupancy grid's refresh rate).
OBJECT_BOX_EVERY = 16


class FitScene(nn.Module):
    """The unknowns of one clip and how to render them."""

    def __init__(
        self,
        hand_model,
        sdf,
        renderer,
        estimator,
        init: HandInit,
        K: torch.Tensor,
        image_size: tuple[int, int],
        hand_from_obj_shared: bool = True,
    ):
        super().__init__()
        n = len(init.hand_pose)
        self.hand_model = hand_model
        self.sdf = sdf
        self.renderer = renderer
        self.estimator = estimator
        self.image_size = image_size
        self.hand = HandDeltas(init.hand_pose, init.betas)
        self.cameras = RigidDeltas(init.T_cam_from_hand)
        self.hand_from_obj = RigidDeltas(torch.eye(4).expand(n, 4, 4), shared=hand_from_obj_shared)
        self.intrinsics = IntrinsicsDeltas(torch.as_tensor(K, dtype=torch.float32))
        self.n_frames = n
        # the box framing novel views (lo, hi) and the step it was found at (-1: never): buffers, so
        # that a resumed fit frames its views as the uninterrupted one did
        self.register_buffer("view_box", torch.zeros(2, 3))
        self.register_buffer("view_box_step", torch.tensor(-1))
        self.register_load_state_dict_pre_hook(_older_checkpoints_have_no_view_box)

    def frame_index(self, *frames: int) -> torch.Tensor:
        """Frame indices (B,) on the scene's device."""
        return torch.tensor(frames, device=self.cameras.T_init.device)

    # -- state per frame ---------------------------------------------------------------------------

    def poses(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """K (B,3,3), T_cam_from_hand, T_hand_from_obj, T_cam_from_obj (B,4,4) for frame indices (B,)."""
        T_cam_from_hand = self.cameras(frames)
        T_hand_from_obj = self.hand_from_obj(frames)
        return {
            "K": self.intrinsics(frames),
            "T_cam_from_hand": T_cam_from_hand,
            "T_hand_from_obj": T_hand_from_obj,
            "T_cam_from_obj": T_cam_from_hand @ T_hand_from_obj,
        }

    def hands(self, frames: torch.Tensor) -> HandOutput:
        """Hand vertices and joints (B, V/21, 3) in the hand frame."""
        pose, betas = self.hand(frames)
        zeros = pose.new_zeros(len(frames), 3)
        return self.hand_model(pose, betas, zeros, zeros)

    # -- rendering ---------------------------------------------------------------------------------

    def object_rays(self, K: torch.Tensor, T_cam_from_obj: torch.Tensor, pixels: torch.Tensor, training: bool):
        """Volume-render the object at pixels (B, R, 2): opacity, camera depth (B, R), normals (B, R, 3)
        in the camera frame, and the raw output."""
        b, r = pixels.shape[:2]
        origins, directions = pixel_rays(K, T_cam_from_obj, pixels)
        origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
        if not (torch.isfinite(origins).all() and torch.isfinite(directions).all()):
            # a diverged camera or hand-object pose; sampling would fail far from the cause
            raise DivergedError(
                "the object's rays became non-finite: a camera or hand-object pose diverged",
                hint="try smaller optim.cameras.lr, optim.hand_from_obj.lr or optim.intrinsics.lr",
            )
        # the SDF's box [-bound, bound]^3 lies within its circumscribed sphere
        reach = float(self.sdf.bound) * 3**0.5
        centre_distance = origins.norm(dim=-1)
        near = (centre_distance - reach).clamp(min=1e-3)
        far = centre_distance + reach
        out = self.renderer(self.sdf, self.estimator, origins, directions, near, far, training)
        T_per_ray = T_cam_from_obj[:, None].expand(b, r, 4, 4).reshape(-1, 4, 4)
        depth = camera_depth(out.distance, directions, T_per_ray)
        normal = (T_per_ray[:, :3, :3] @ out.normal[..., None])[..., 0]
        return out.opacity.reshape(b, r), depth.reshape(b, r), normal.reshape(b, r, 3), out

    def render_rays(self, frames: torch.Tensor, pixels: torch.Tensor, training: bool = True) -> RayRender:
        """Render the hand (rasterised) and the object (volume-rendered) at pixels (B, R, 2) of frames (B,)."""
        poses = self.poses(frames)
        hand = self.hands(frames)
        raster = rasterize(
            hand.vertices, hand.faces, poses["K"], poses["T_cam_from_hand"], image_size=self.image_size, pixels=pixels
        )
        alpha, depth, _, volume = self.object_rays(poses["K"], poses["T_cam_from_obj"], pixels, training)
        return RayRender(raster.mask, raster.depth, alpha, depth, volume)

    def project_hand(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, V, 2) pixel positions of the hand's vertices."""
        poses = self.poses(frames)
        verts = transform_points(poses["T_cam_from_hand"], self.hands(frames).vertices)
        return project(verts, poses["K"])[0]

    def novel_view(
        self,
        frame: int,
        resolution: int,
        generator: torch.Generator,
        unseen_angle_deg: float = 0.0,
        step: int | None = None,
    ) -> PriorView:
        """The prior's inputs from a random view around the hand and the object: object channels
        (1, 5, R, R) with gradients, the hand condition (1, 7, R, R) without, and the view's camera
        (docs/fit.md, section "Prior hook"). The view is framed on the hand and the object's solid
        (``hoirecon.priors.novel_view``), as the prior's training views are on the true ones, and
        is at least ``unseen_angle_deg`` away from every input camera. The solid's box is found
        anew, or at a fit's ``step`` as found at most ``OBJECT_BOX_EVERY`` steps before."""
        frames = self.frame_index(frame)
        poses = self.poses(frames)
        like = poses["K"]  # views are drawn on the generator's device (the CPU), then moved
        with torch.no_grad():
            hand = self.hands(frames)
            lo, hi = self.object_box(like.dtype, like.device) if step is None else self.view_box_at(step)
            box_in_hand = transform_points(poses["T_hand_from_obj"][0], box_corners(lo, hi))
            points = torch.cat([hand.vertices[0], box_in_hand])
        avoid = None
        if unseen_angle_deg > 0:
            with torch.no_grad():
                cameras = self.cameras(torch.arange(self.n_frames, device=like.device))
                avoid = invert_transform(cameras)[:, :3, 3]  # input camera centres in the hand frame
        T_cam_from_hand, K = framed_novel_view(
            points, resolution, generator, avoid=avoid, min_angle_deg=unseen_angle_deg
        )
        T_cam_from_hand, K = T_cam_from_hand[None].to(like), K[None].to(like)
        with torch.no_grad():
            code = self.hand_model.vertex_code[None].to(like.dtype)
            h = rasterize(
                hand.vertices, hand.faces, K, T_cam_from_hand, image_size=(resolution, resolution), attributes=code
            )
            z_ref = reference_depth(h.mask, h.depth, T_cam_from_hand[:, 2, 3])
            condition = hand_channels(h.mask, h.normal, h.depth, h.attributes, z_ref)
        pixels = pixel_grid(resolution, resolution).to(like)[None]
        T_cam_from_obj = T_cam_from_hand @ poses["T_hand_from_obj"]
        # only rays that meet the solid's box (with a margin for the soft density) are rendered; the
        # others are background (half the pixels or more in a framed view)
        margin = 5 * float(self.renderer.density_scale()) + 2 * float(self.sdf.bound) / OBJECT_BOX_CELLS
        hit = rays_hit_box(K, T_cam_from_obj, pixels, lo - margin, hi + margin)[0]
        alpha, depth, normal = (pixels.new_zeros(resolution * resolution, *tail) for tail in ((), (), (3,)))
        if hit.any():
            index = hit.nonzero()[:, 0]
            a, d, n, _ = self.object_rays(K, T_cam_from_obj, pixels[:, hit], training=True)
            alpha, depth, normal = (
                alpha.index_copy(0, index, a[0]),
                depth.index_copy(0, index, d[0]),
                normal.index_copy(0, index, n[0]),
            )
        # the volume-rendered normal is opacity-weighted (its length ~ alpha); the channels want a
        # unit normal times the mask, as the training renders have
        normal = torch.nn.functional.normalize(normal, dim=-1)
        shape = (1, resolution, resolution)
        target = object_channels(alpha.reshape(shape), normal.reshape(*shape, 3), depth.reshape(shape), z_ref)
        return PriorView(target, condition, T_cam_from_hand, K)

    @torch.no_grad()
    def view_box_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``object_box`` as found at the last refresh, every ``OBJECT_BOX_EVERY`` steps."""
        found = int(self.view_box_step)
        if found < 0 or not 0 <= step - found < OBJECT_BOX_EVERY:
            self.view_box.copy_(torch.stack(self.object_box(self.view_box.dtype, self.view_box.device)))
            self.view_box_step.fill_(step)
        return self.view_box[0], self.view_box[1]

    @torch.no_grad()
    def object_box(
        self, dtype: torch.dtype, device: torch.device, cells: int = OBJECT_BOX_CELLS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) (3,) object-frame box of the object's current solid: the cells of a ``cells``^3
        grid over the SDF's box whose centres are inside (SDF < 0), each a whole cell (so the box is
        the solid's, not its cell centres'); the SDF's whole box if nothing is inside."""
        bound = float(self.sdf.bound)
        cell = 2 * bound / cells
        axis = (torch.arange(cells, dtype=dtype) + 0.5) * cell - bound
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3).to(device)
        inside = grid[self.sdf.sdf(grid).reshape(-1) < 0]
        if len(inside) == 0:
            return grid.new_full((3,), -bound), grid.new_full((3,), bound)
        return inside.min(0).values - cell / 2, inside.max(0).values + cell / 2

    @torch.no_grad()
    def render_frame(self, frame: int, chunk: int = 4096) -> dict[str, torch.Tensor]:
        """Full-image hand and object masks and depths (H, W) of one frame, for previews."""
        h, w = self.image_size
        frames = self.frame_index(frame)
        poses = self.poses(frames)
        hand = self.hands(frames)
        raster = rasterize(hand.vertices, hand.faces, poses["K"], poses["T_cam_from_hand"], image_size=(h, w))
        pixels = pixel_grid(h, w).to(poses["K"])[None]
        alphas, depths = [], []
        for start in range(0, h * w, chunk):
            a, d, _, _ = self.object_rays(poses["K"], poses["T_cam_from_obj"], pixels[:, start : start + chunk], False)
            alphas.append(a)
            depths.append(d)
        return {
            "hand_alpha": raster.mask[0],
            "hand_depth": raster.depth[0],
            "object_alpha": torch.cat(alphas, 1).reshape(h, w),
            "object_depth": torch.cat(depths, 1).reshape(h, w),
        }

    def hand_vertices_in_object(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) hand vertices in the object frame (for contact and penetration terms)."""
        T_obj_from_hand = invert_transform(self.hand_from_obj(frames))
        return transform_points(T_obj_from_hand, self.hands(frames).vertices)


def _older_checkpoints_have_no_view_box(module: FitScene, state_dict: dict, prefix: str, *args: object) -> None:
    # checkpoints from before the box was kept: find it anew at the first novel view
    state_dict.setdefault(prefix + "view_box", module.view_box.new_zeros(2, 3))
    state_dict.setdefault(prefix + "view_box_step", torch.tensor(-1))
