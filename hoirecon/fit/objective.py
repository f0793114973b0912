"""The fit's loss for one step (REFERENCE.md section 1), as a plain object over a ``FitScene``.

Each step draws two consecutive frames t, t+1 and pixels of each (object/hand/background shares
moving on a schedule), renders the hand and the object there, composites them in depth order and
compares with the masks; adds the hand-contour, eikonal, temporal and optional pose, contact and
penetration terms, and every ``guidance.every_n_steps`` after a warm-up the prior's score
distillation on a novel view. Every weight is a ``Schedule``; terms whose weight is 0 are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoirecon.config import Schedule
from hoirecon.fit import losses as L
from hoirecon.fit.rays import PixelSampler
from hoirecon.fit.scene import FitScene
from hoirecon.hand.joints import INDEX_MCP, TIP_NAMES, joint_limit_loss
from hoirecon.render.composite import composite_labels
from hoirecon.schema import GuidanceSection, LossSection, RaysSection

WEIGHTED_TERMS = (
    "mask",
    "hand_mask",
    "contour",
    "eikonal",
    "temporal",
    "joint_limits",
    "penetration",
    "contact",
    "sds",
)


class FitObjective:
    """``objective(scene, step, generator) -> {"loss": total, "<term>": weighted value, ...}``.

    hand_masks, object_masks: (N, H, W) bool; frame_weights (N,).
    """

    def __init__(
        self,
        hand_masks: torch.Tensor,
        object_masks: torch.Tensor,
        frame_weights: torch.Tensor,
        loss: LossSection,
        rays: RaysSection,
        guidance: GuidanceSection,
        max_steps: int,
        prior=None,  # noqa: ANN001
        categories: Sequence[str] = (),
    ):
        self.sampler = PixelSampler(hand_masks, object_masks)
        self.contours = [L.mask_contour(m) for m in hand_masks]
        self.frame_weights = frame_weights.float()
        self.weights = {name: Schedule.parse(getattr(loss, name), f"loss.{name}") for name in WEIGHTED_TERMS}
        self.temperature = loss.composite_temperature
        self.rays, self.guidance, self.max_steps = rays, guidance, max_steps
        self.prior, self.categories = prior, list(categories)
        self.image_scale = float(max(hand_masks.shape[1:]))

    def proportions(self, step: int) -> tuple[float, float, float]:
        f = min(step / max(self.max_steps, 1), 1.0)
        return tuple(a + (b - a) * f for a, b in zip(self.rays.proportions_start, self.rays.proportions_end))

    def __call__(self, scene: FitScene, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        n = scene.n_frames
        t = int(torch.randint(n - 1, (1,), generator=generator))
        frames = torch.tensor([t, t + 1])
        w = {name: schedule(step) for name, schedule in self.weights.items()}
        terms: dict[str, torch.Tensor] = {}

        per_frame = self.rays.n_rays // 2
        drawn = [self.sampler.sample(int(f), per_frame, self.proportions(step), generator) for f in frames]
        pixels = torch.stack([p for p, _ in drawn])
        labels = torch.stack([lab for _, lab in drawn])  # (2, R, 3) one-hot [hand, object, background]
        out = scene.render_rays(frames, pixels)

        ray_weights = self.frame_weights[frames][:, None].expand(-1, per_frame).reshape(-1)
        composite = composite_labels(
            out.hand_alpha, out.hand_depth, out.object_alpha, out.object_depth, self.temperature
        ).reshape(-1, 3)
        flat_labels = labels.reshape(-1, 3)
        terms["mask"] = w["mask"] * L.mask_loss(composite, flat_labels, ray_weights)
        if w["hand_mask"]:
            # the hand's own silhouette where no object pixel hides it (behind the object it is unknown)
            seen = flat_labels[:, 1] < 0.5
            diff = (out.hand_alpha.reshape(-1) - flat_labels[:, 0]).abs()
            terms["hand_mask"] = (
                w["hand_mask"] * (diff * seen * ray_weights).sum() / (seen * ray_weights).sum().clamp(min=1)
            )
        if w["contour"]:
            projected = scene.project_hand(frames)
            chamfers = []
            for i, f in enumerate(frames.tolist()):
                contour = self.contours[f]
                if len(contour) > self.rays.contour_points:
                    pick = torch.randint(len(contour), (self.rays.contour_points,), generator=generator)
                    contour = contour[pick]
                chamfers.append(L.contour_chamfer(contour, projected[i], self.image_scale) * self.frame_weights[f])
            terms["contour"] = w["contour"] * torch.stack(chamfers).mean()
        if w["eikonal"]:
            bound = float(scene.sdf.bound)
            uniform = (torch.rand(self.rays.eikonal_points, 3, generator=generator) * 2 - 1) * bound
            _, grad = scene.sdf.sdf_and_gradient(uniform)
            gradients = torch.cat([out.volume.gradients.reshape(-1, 3), grad])
            terms["eikonal"] = w["eikonal"] * L.eikonal_loss(gradients)
        hands = None
        if w["temporal"]:
            hands = scene.hands(frames)
            poses = scene.poses(frames)
            joints_cam = hands.joints @ poses["T_cam_from_hand"][:, :3, :3].transpose(-1, -2)
            joints_cam = joints_cam + poses["T_cam_from_hand"][:, None, :3, 3]
            terms["temporal"] = w["temporal"] * (
                L.temporal_loss(hands.joints, INDEX_MCP) + L.temporal_loss(joints_cam, INDEX_MCP)
            )
        if w["joint_limits"]:
            pose, _ = scene.hand(frames)
            terms["joint_limits"] = w["joint_limits"] * joint_limit_loss(pose).mean()
        if w["penetration"] or w["contact"]:
            verts = scene.hand_vertices_in_object(frames)
            sdf = scene.sdf.sdf(verts.reshape(-1, 3)).reshape(verts.shape[:2])
            if w["penetration"]:
                terms["penetration"] = w["penetration"] * torch.relu(-sdf).mean()
            if w["contact"]:
                # fingertips within 2 cm of the surface are pulled onto it
                tips = sdf[:, scene.hand_model.tip_vertex_ids]
                near = (tips.abs() < 0.02).float()
                terms["contact"] = w["contact"] * (tips.abs() * near).sum() / max(len(TIP_NAMES), 1)
        if self._guidance_due(step) and w["sds"]:
            target, condition = scene.novel_view(int(frames[0]), self.prior.resolution, generator)
            terms["sds"] = w["sds"] * self.prior.sds_loss(target, condition, self.categories, step)
        terms["loss"] = sum(terms.values())
        terms["beta"] = torch.as_tensor(scene.renderer.density_scale())
        return terms

    def _guidance_due(self, step: int) -> bool:
        if self.prior is None or not getattr(self.prior, "active", False):
            return False
        return step >= self.guidance.warmup_steps and step % max(self.guidance.every_n_steps, 1) == 0
