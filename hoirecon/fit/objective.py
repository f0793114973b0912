"""The fit's loss for one step (docs/fit.md, section "Losses"), as a plain module over a ``FitScene``.

Each step draws two consecutive frames t, t+1 and pixels of each (object/hand/background shares
moving on a schedule), renders the hand and the object there, composites them in depth order and
compares with the masks; adds the hand-contour, eikonal, temporal and optional pose, contact and
penetration terms, and every ``guidance.every_n_steps`` after a warm-up the prior's score
distillation on a novel view. Every weight is a ``Schedule``, evaluated in ``on_step`` (the fit calls
it before each step, as for every component that follows the step); terms whose weight is 0 are
skipped. The masks, frame weights and contours are buffers: the objective moves with ``.to()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hoirecon.config import Schedule
from hoirecon.contracts import Prior
from hoirecon.fit import losses
from hoirecon.fit.rays import PixelSampler
from hoirecon.fit.scene import FitScene
from hoirecon.hand.joints import INDEX_MCP, joint_limit_loss
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


class FitObjective(nn.Module):
    """``objective(scene, generator) -> {"loss": total, "<term>": weighted value, ...}`` at the step
    last given to ``on_step``.

    hand_masks, object_masks: (N, H, W) bool; frame_weights (N,). The prior is kept as a submodule
    when it is one (so it moves with the fit) but its weights stay out of ``state_dict``.
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
        prior: Prior | None = None,
        categories: Sequence[str] = (),
    ):
        super().__init__()
        self.sampler = PixelSampler(hand_masks, object_masks)
        contours = [losses.mask_contour(m) for m in hand_masks]
        self.register_buffer("contours", torch.cat(contours), persistent=False)  # (sum P_i, 2) pixels
        sizes = torch.tensor([len(c) for c in contours])
        self.register_buffer("contour_starts", torch.cumsum(sizes, 0) - sizes, persistent=False)  # (N,)
        self.register_buffer("contour_sizes", sizes, persistent=False)
        self.register_buffer("frame_weights", frame_weights.float(), persistent=False)
        self.schedules = {
            name: Schedule.parse(getattr(loss, name), f"loss.{name}", max_steps) for name in WEIGHTED_TERMS
        }
        self.penetration_moves = loss.penetration_moves
        self.temperature = loss.composite_temperature
        self.rays, self.guidance, self.max_steps = rays, guidance, max_steps
        self.prior, self.categories = prior, list(categories)
        self.image_scale = float(max(hand_masks.shape[1:]))
        self.register_state_dict_post_hook(_drop_prior_state)
        self.register_load_state_dict_pre_hook(_keep_prior_state)
        self.on_step(0, max_steps)

    def on_step(self, step: int, max_steps: int) -> None:
        """The weights and ray proportions of ``step``."""
        self.step = step
        self.weights = {name: schedule(step) for name, schedule in self.schedules.items()}

    def proportions(self, step: int) -> tuple[float, float, float]:
        f = min(step / max(self.max_steps, 1), 1.0)
        return tuple(a + (b - a) * f for a, b in zip(self.rays.proportions_start, self.rays.proportions_end))

    def contour(self, frame: int) -> torch.Tensor:
        """(P, 2) pixel positions of the hand mask's contour in ``frame``."""
        start, size = int(self.contour_starts[frame]), int(self.contour_sizes[frame])
        return self.contours[start : start + size]

    def forward(self, scene: FitScene, generator: torch.Generator) -> dict[str, torch.Tensor]:
        step, w = self.step, self.weights
        n = scene.n_frames
        device, dtype = self.frame_weights.device, self.frame_weights.dtype
        t = int(torch.randint(n - 1, (1,), generator=generator))
        frames = torch.tensor([t, t + 1], device=device)
        terms: dict[str, torch.Tensor] = {}

        per_frame = self.rays.n_rays // 2
        drawn = [self.sampler.sample(int(f), per_frame, self.proportions(step), generator, dtype) for f in frames]
        pixels = torch.stack([p for p, _ in drawn])
        labels = torch.stack([lab for _, lab in drawn])  # (2, R, 3) one-hot [hand, object, background]
        out = scene.render_rays(frames, pixels)

        ray_weights = self.frame_weights[frames][:, None].expand(-1, per_frame).reshape(-1)
        composite = composite_labels(
            out.hand_alpha, out.hand_depth, out.object_alpha, out.object_depth, self.temperature
        ).reshape(-1, 3)
        flat_labels = labels.reshape(-1, 3)
        terms["mask"] = w["mask"] * losses.mask_loss(composite, flat_labels, ray_weights)
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
                contour = self.contour(f)
                if len(contour) > self.rays.contour_points:
                    pick = torch.randint(len(contour), (self.rays.contour_points,), generator=generator)
                    contour = contour[pick.to(device)]
                chamfers.append(losses.contour_chamfer(contour, projected[i], self.image_scale) * self.frame_weights[f])
            terms["contour"] = w["contour"] * torch.stack(chamfers).mean()
        if w["eikonal"]:
            bound = float(scene.sdf.bound)
            uniform = (torch.rand(self.rays.eikonal_points, 3, generator=generator).to(device, dtype) * 2 - 1) * bound
            _, grad = scene.sdf.sdf_and_gradient(uniform)
            gradients = torch.cat([out.volume.gradients.reshape(-1, 3), grad])
            terms["eikonal"] = w["eikonal"] * losses.eikonal_loss(gradients)
        hands = None
        if w["temporal"]:
            hands = scene.hands(frames)
            poses = scene.poses(frames)
            joints_cam = hands.joints @ poses["T_cam_from_hand"][:, :3, :3].transpose(-1, -2)
            joints_cam = joints_cam + poses["T_cam_from_hand"][:, None, :3, 3]
            terms["temporal"] = w["temporal"] * (
                losses.temporal_loss(hands.joints, INDEX_MCP) + losses.temporal_loss(joints_cam, INDEX_MCP)
            )
        if w["joint_limits"]:
            pose, _ = scene.hand(frames)
            terms["joint_limits"] = w["joint_limits"] * joint_limit_loss(pose).mean()
        if w["penetration"] or w["contact"]:
            terms.update(grasp_terms(scene, frames, w["penetration"], w["contact"], self.penetration_moves))
        if self._guidance_due(step) and w["sds"] and self._beta_ready(scene, step):
            view = scene.novel_view(
                int(frames[0]), self.prior.resolution, generator, self.guidance.unseen_angle_deg, step
            )
            terms["sds"] = w["sds"] * self.prior.sds_loss(view.target, view.condition, self.categories, step)
        terms["loss"] = sum(terms.values())
        terms["beta"] = torch.as_tensor(scene.renderer.density_scale())
        return terms

    def _beta_ready(self, scene: FitScene, step: int) -> bool:
        return sharp_enough(self.guidance, step, self.max_steps, float(scene.renderer.density_scale()))

    def _guidance_due(self, step: int) -> bool:
        if self.prior is None or not getattr(self.prior, "active", False):
            return False
        return step >= self.guidance.warmup_steps and step % max(self.guidance.every_n_steps, 1) == 0


def grasp_terms(
    scene: FitScene, frames: torch.Tensor, penetration: float, contact: float, moves: str = "object"
) -> dict[str, torch.Tensor]:
    """The weighted penetration and contact terms of ``frames`` (docs/fit.md, "Hand and object");
    a term whose weight is 0 is left out. ``moves`` (``loss.penetration_moves``) is what gives way to
    penetration: the object (its SDF only), the hand (its parameters only) or both. Contact moves both:
    a fingertip near the surface and the surface near it are drawn together."""
    verts = scene.hand_vertices_in_object(frames)  # (B, V, 3) object frame
    terms = {}
    if penetration:
        points = verts.reshape(-1, 3)
        if moves == "hand":
            sdf, gradient = scene.sdf.sdf_and_gradient(points.detach(), create_graph=False)
            sdf = losses.sdf_moving_points_only(sdf, gradient, points)
        else:
            sdf = scene.sdf.sdf(points.detach() if moves == "object" else points)
        terms["penetration"] = penetration * losses.penetration_loss(sdf.reshape(verts.shape[:2]))
    if contact:
        tips = verts[:, scene.hand_model.tip_vertex_ids]  # (B, 5, 3)
        tip_sdf = scene.sdf.sdf(tips.reshape(-1, 3)).reshape(tips.shape[:2])
        terms["contact"] = contact * losses.contact_loss(tip_sdf)
    return terms


def sharp_enough(guidance: GuidanceSection, step: int, max_steps: int, beta: float) -> bool:
    """Whether the silhouettes are sharp enough for the prior at ``step``: beta (metres) at most
    ``guidance.max_beta``, or ``guidance.start_by`` of the fit done whatever beta is."""
    if guidance.max_beta <= 0 or step >= guidance.start_by * max_steps:
        return True
    return beta <= guidance.max_beta


# A prior's weights are frozen and shipped with it: they stay out of the fit's checkpoints, and a
# checkpoint loads without them (the objective's own prior fills them in).
def _drop_prior_state(module: FitObjective, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "prior.")]:
        del state_dict[key]


def _keep_prior_state(module: FitObjective, state_dict: dict, prefix: str, *args: object) -> None:
    if isinstance(module.prior, nn.Module):
        for key, value in module.prior.state_dict().items():
            state_dict.setdefault(f"{prefix}prior.{key}", value)
