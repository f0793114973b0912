"""Rendering a hand and an object together with the soft rasteriser: visible masks, depth order, RGB.

Shared by synthetic clips (RGB + visible masks) and prior-training samples (the hand and the
object's amodal channels). Everything is in the camera frame, OpenCV axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hoirecon.render.raster import RasterOutput, RasterSettings, rasterize

SKIN = np.array([0.86, 0.64, 0.52])
LIGHT = np.array([-0.35, -0.6, -0.72])  # towards the light, camera frame (up-left, from the camera side)


def render_mesh(
    vertices_cam: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    size: tuple[int, int],
    attributes: torch.Tensor | None = None,
    settings: RasterSettings | None = None,
) -> RasterOutput:
    """Full-image render of (B, V, 3) camera-frame vertices; no gradients needed here."""
    with torch.no_grad():
        return rasterize(vertices_cam, faces, K, image_size=size, attributes=attributes, settings=settings)


@dataclass
class VisibleMasks:
    """(B, H, W) bool: which surface is in front at each pixel (hard, from the rasteriser's coverage)."""

    hand: torch.Tensor
    object: torch.Tensor


def visible_masks(hand: RasterOutput, obj: RasterOutput) -> VisibleMasks:
    hand_front = hand.covered & (~obj.covered | (hand.depth <= obj.depth))
    obj_front = obj.covered & ~hand_front
    return VisibleMasks(hand_front, obj_front)


def lambert(normal: torch.Tensor, colour: torch.Tensor, ambient: float = 0.35) -> torch.Tensor:
    """(..., 3) camera-frame normals and (..., 3) albedo -> (..., 3) shaded colour in [0, 1]."""
    light = torch.tensor(LIGHT / np.linalg.norm(LIGHT), dtype=normal.dtype)
    diffuse = (normal @ light).clamp(min=0)[..., None]
    return (colour * (ambient + (1 - ambient) * diffuse)).clamp(0, 1)


def noise_background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float textured background: smooth colour blotches, a few stripes and grain."""
    h, w = size
    # a muted base colour (a table, a wall) with blotches of lighter and darker shades of it
    base = rng.uniform(0.25, 0.75, 3)
    base = 0.6 * base + 0.4 * base.mean()
    shades = rng.uniform(0.6, 1.3, (6, 6))[None] * base[:, None, None] + rng.normal(0, 0.05, (3, 6, 6))
    coarse = torch.tensor(shades[None].clip(0, 1), dtype=torch.float32)
    image = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    image = image.permute(1, 2, 0).numpy()
    v, u = np.mgrid[0:h, 0:w] / max(h, w)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(8, 30)
    stripes = 0.08 * np.sin(2 * np.pi * freq * (u * np.cos(angle) + v * np.sin(angle)))
    image = image + stripes[..., None] + rng.normal(0, 0.04, (h, w, 3))
    return image.clip(0, 1)


def object_albedo(points_obj: torch.Tensor, base: np.ndarray, pattern: np.ndarray) -> torch.Tensor:
    """(..., 3) albedo of the object from object-frame points: a base colour and a painted band pattern.

    ``pattern`` (4,): frequency (cycles per metre), direction angles (2), strength.
    """
    freq, theta, phi, strength = pattern
    direction = torch.tensor([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    wave = torch.sin(2 * np.pi * freq * (points_obj @ direction.to(points_obj.dtype)))
    base_t = torch.as_tensor(base, dtype=points_obj.dtype)
    return (base_t * (1 + strength * (wave[..., None] > 0.3).to(points_obj.dtype) * -0.5)).clamp(0, 1)


def compose_rgb(
    hand: RasterOutput,
    obj: RasterOutput,
    visible: VisibleMasks,
    background: np.ndarray,
    object_base: np.ndarray,
    object_pattern: np.ndarray,
    rng: np.random.Generator,
    skin: np.ndarray = SKIN,
) -> np.ndarray:
    """(B, H, W, 3) uint8 frames: background, then the shaded object, then the shaded hand, front-most wins.

    ``obj.attributes`` must hold object-frame points (for the painted pattern).
    """
    skin_t = torch.tensor(skin, dtype=torch.float32)
    hand_rgb = lambert(hand.normal, skin_t)
    obj_rgb = lambert(obj.normal, object_albedo(obj.attributes, object_base, object_pattern))
    image = torch.as_tensor(background, dtype=torch.float32).expand_as(hand_rgb).clone()
    # soft edges: each visible layer blends in by its soft silhouette
    obj_alpha = (obj.mask * (~visible.hand).float())[..., None]
    hand_alpha = (hand.mask * (~visible.object).float())[..., None]
    image = image * (1 - obj_alpha) + obj_rgb * obj_alpha
    image = image * (1 - hand_alpha) + hand_rgb * hand_alpha
    image = image + torch.tensor(rng.normal(0, 0.015, image.shape), dtype=torch.float32)  # sensor noise
    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
