"""docs/video.png: what ``hoirecon data video`` made of synthetic videos, against the truth.

One row per frame shown: the video clip's frame; MediaPipe's landmarks on it; the initialised hand's
silhouette (from hands.npz) over it; the bootstrapped masks (hand red, object blue); the ground-truth
masks cropped the same way. Reads the clips that benchmarks/video.py left in ``--work``.
Usage: benchmarks/video_figure.py [--work DIR] [--clips mug1,kettle1] [--out docs/video.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import torch

from hoirecon.data.load import load_clip
from hoirecon.data.video import crop_frames
from hoirecon.hand.landmarks import MP_BONES
from hoirecon.init.base import HandInit
from hoirecon.init.mediapipe import hand_silhouettes
from hoirecon.init.mediapipe_detect import detect_hands
from hoirecon.prepare import read_crop
from hoirecon.registry import build

SCALE = 2  # pixels of the figure per clip pixel


def overlay(image: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    out = image.astype(np.float32)
    for mask, colour in masks:
        out[mask] = 0.45 * out[mask] + 0.55 * np.array(colour, np.float32)
    return out.astype(np.uint8)


def big(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)


def rows_of(work: Path, name: str, frames: list[int]) -> list[np.ndarray]:
    src, clip = load_clip(work / name), load_clip(work / f"{name}-video")
    landmarks = detect_hands(clip.images)
    hand_model = build("hand_model", {"type": "mano"})
    h = clip.hands
    init = HandInit(
        torch.tensor(h.hand_pose).float(), torch.tensor(h.betas).float(), torch.tensor(clip.T_cam_from_hand)
    )
    silhouettes = hand_silhouettes(hand_model, init, clip.K, clip.image_size)
    crop = read_crop(work / f"{name}-video")  # the truth, cropped like the video clip
    gt_hand = crop_frames(np.repeat(src.hand_masks[..., None].astype(np.uint8) * 255, 3, -1), crop)[..., 0] > 127
    gt_obj = crop_frames(np.repeat(src.object_masks[..., None].astype(np.uint8) * 255, 3, -1), crop)[..., 0] > 127
    rows = []
    for i in frames:
        image = clip.images[i]
        marks = big(image).copy()
        if landmarks.found[i]:
            px = (landmarks.pixels[i] * SCALE).round().astype(int)
            for a, b in MP_BONES:
                cv2.line(marks, tuple(px[a]), tuple(px[b]), (255, 255, 0), 1)
            for p in px:
                cv2.circle(marks, tuple(p), 2, (255, 0, 255), -1)
        else:
            cv2.putText(marks, "no hand", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        panels = [
            big(image),
            marks,
            big(overlay(image, [(silhouettes[i], (255, 230, 0))])),
            big(overlay(image, [(clip.hand_masks[i], (230, 40, 40)), (clip.object_masks[i], (40, 80, 230))])),
            big(overlay(image, [(gt_hand[i], (230, 40, 40)), (gt_obj[i], (40, 80, 230))])),
        ]
        label = f"{name} frame {i}"
        cv2.putText(panels[0], label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        rows.append(np.concatenate(panels, axis=1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/hoirecon-video-bench")
    parser.add_argument("--clips", default="mug1,bottle1,kettle1")
    parser.add_argument("--frames", default="0,12,23")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "video.png"))
    args = parser.parse_args()
    frames = [int(f) for f in args.frames.split(",")]
    rows = [row for name in args.clips.split(",") for row in rows_of(Path(args.work), name, frames)]
    header = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
    width = rows[0].shape[1] // 5
    for k, title in enumerate(["frame", "MediaPipe landmarks", "initial hand", "bootstrapped masks", "true masks"]):
        cv2.putText(header, title, (k * width + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1)
    iio.imwrite(args.out, np.concatenate([header, *rows], axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
