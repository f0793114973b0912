"""Novel views for the prior: a uniformly random rotation, framed on the hand and the object.

Shared by the fit (its score-distillation views) and the prior data (its training views), so the
prior is trained on the views it later judges. A view looks at the centre of the hand-object
bounding box from the distance at which the box's bounding sphere fills ``fill`` of the image's
half-width, at a fixed focal length of ``FOCAL`` image widths: objects of every size get the same
share of the pixels (no kettle cut by the border, and a mug's handle gets pixels), and the hand's
size in the image is what tells the scale. docs/prior.md, "Views".
"""

from __future__ import annotations

import roma
import torch

from hoirecon.geometry.transforms import make_transform

#: Focal length of every novel view, in image widths.
FOCAL = 1.6
#: Share of the image's half-width the hand-object sphere's radius fills.
FILL = 0.8


def box_corners(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(8, 3) corners of the axis-aligned box [lo, hi] (3,): how an object enters the framing, both
    in training (its mesh's box) and in the fit (the box of its current solid)."""
    pick = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=torch.bool)
    return torch.where(pick, hi.expand(8, 3), lo.expand(8, 3))


def framing(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (3,) of the bounding box of ``points`` (N, 3) and the radius () of the sphere about it
    through the farthest point."""
    centre = (points.min(0).values + points.max(0).values) / 2
    return centre, (points - centre).norm(dim=-1).max()


def framed_novel_view(
    points: torch.Tensor,
    resolution: int,
    generator: torch.Generator | None = None,
    fill: float = FILL,
    R: torch.Tensor | None = None,
    avoid: torch.Tensor | None = None,
    min_angle_deg: float = 0.0,
    tries: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """T_cam_from_hand (4, 4) and K (3, 3) of a view of hand-frame ``points`` (N, 3): the hand's
    vertices and the corners of the object's box (``box_corners``). The rotation is uniformly random
    (or ``R``); the camera looks at the points' box centre from the distance at which their
    bounding sphere's radius is ``fill`` of the image's half-width.

    ``avoid`` (K, 3): hand-frame camera centres (the input views); the view's direction from the box
    centre is then at least ``min_angle_deg`` from each of theirs (of ``tries`` random rotations the
    first that is, else the one farthest from all of them)."""
    centre, radius = framing(points.detach().float().cpu())
    if R is None:
        R = _rotation_away_from(centre, avoid, min_angle_deg, tries, generator)
    R = R.float().cpu()
    focal = FOCAL * resolution
    distance = focal * radius / (fill * resolution / 2)
    t = torch.stack([torch.zeros(()), torch.zeros(()), distance]) - R @ centre
    return make_transform(R, t), _intrinsics(focal, resolution)


def view_direction(R: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit direction, in the hand frame, from the looked-at point to a camera of rotation R
    (..., 3, 3) (cam_from_hand): minus the optical axis."""
    return -R[..., 2, :]


def _rotation_away_from(
    centre: torch.Tensor, avoid: torch.Tensor | None, min_angle_deg: float, tries: int, generator
) -> torch.Tensor:
    if avoid is None or min_angle_deg <= 0 or len(avoid) == 0:
        return roma.random_rotmat(generator=generator)
    away = torch.nn.functional.normalize(avoid.detach().float().cpu() - centre, dim=-1)  # (K, 3)
    limit = torch.cos(torch.deg2rad(torch.tensor(float(min_angle_deg))))
    best, best_cos = None, 2.0
    for _ in range(tries):
        R = roma.random_rotmat(generator=generator)
        closest = (away @ view_direction(R)).max()  # cosine to the nearest input view
        if closest <= limit:
            return R
        if closest < best_cos:
            best, best_cos = R, float(closest)
    return best


def _intrinsics(focal: float, resolution: int) -> torch.Tensor:
    c = (resolution - 1) / 2
    return torch.tensor([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]])
