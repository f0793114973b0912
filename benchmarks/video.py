"""From a video alone against today's chain, on synthetic clips with ground truth (issue 17).

Each clip of the split (default: hoi4d-like, seed 1 of each category: 24 frames, 128 px, 120 degrees
of arc) is encoded as an mp4 and run through ``hoirecon data video`` with the ground-truth visible
object box of frame 0 as the user's box and the clip's field of view. Against the ground truth:

- ``detect_rate``: frames where MediaPipe finds the hand (on the video frames);
- ``init_mpjpe_mm`` / ``init_mpjpe_pa_mm``: the MediaPipe initialisation's joints, relative to the
  index MCP / after Procrustes alignment (the ``provided`` noisy initialisation beside it);
- ``mask_iou_hand`` / ``mask_iou_object``: the bootstrapped masks against the truth cropped the same way;
- ``f5_video`` / ``f5_gtmasks``: the fit of the video clip (configs/fit/video.yaml) and of the
  original clip with its GT masks and provided hands (configs/fit/demo.yaml), same step budget;
- ``f5_videohands``: the video clip with the true masks (cropped the same way) in place of the
  bootstrapped ones, fitted like the video clip: which of the two, hands or masks, costs the video
  chain its score;
- ``lm_error_palm``: MediaPipe's mean 2D landmark error on the video frames, in palm lengths (wrist to
  middle knuckle); its paper reports 0.134 on real images (Zhang et al. 2020, arXiv 2006.10214);
- ``f5_paperlm``: the chain given landmarks that good: the true joints with noise of that mean 2D error
  (and the same share of a 9 cm palm in 3D) on the frames MediaPipe found, through the ``mediapipe``
  initialiser's landmark fit and depth from the masks, with the true masks: what the chain does
  on footage where MediaPipe is as accurate as on real images.

Clips and runs go under ``--work`` and are reused (a killed run resumes). Needs the video extra.
Usage: benchmarks/video.py [--work DIR] [--threads N] [--steps N] [--clips mug1,bottle1] [--no-fits] [--forearm]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hoirecon.data.clip import HandParams
from hoirecon.data.formats.hoirecon import write_clip
from hoirecon.data.load import load_clip
from hoirecon.data.synth.clip import SynthClipConfig, make_clip
from hoirecon.data.synth.commands import split_configs
from hoirecon.data.video import crop_frames, write_video
from hoirecon.eval.geometry import mpjpe_mm
from hoirecon.geometry.camera import project
from hoirecon.geometry.transforms import transform_points
from hoirecon.hand.joints import INDEX_MCP
from hoirecon.hand.landmarks import MP_TO_HAND
from hoirecon.init.mediapipe import MediaPipeInitializer, depth_from_clip_masks, init_from_landmarks
from hoirecon.init.mediapipe_detect import Landmarks
from hoirecon.init.provided import init_from_params
from hoirecon.prepare import VideoOptions, read_crop, video_to_clip, write_crop
from hoirecon.registry import build

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"f5": "object/f@5mm[rigid]", "f10": "object/f@10mm[rigid]", "cd": "object/chamfer_cm2[rigid]"}
#: MediaPipe's mean 2D landmark error on real images, in palm sizes (its paper, arXiv 2006.10214)
PAPER_LANDMARK_ERROR = 0.134


def camera_joints(hand_model, hands, T_cam_from_hand) -> torch.Tensor:
    init = init_from_params(hands, T_cam_from_hand, hand_model)
    n = len(init.hand_pose)
    zeros = torch.zeros(n, 3)
    with torch.no_grad():
        out = hand_model(hand_pose=init.hand_pose, betas=init.betas.expand(n, -1), global_orient=zeros, transl=zeros)
        return transform_points(init.T_cam_from_hand, out.joints)


def crop_masks(masks: np.ndarray, crop) -> np.ndarray:
    """(N, H, W) bool masks of the original clip cut and resized as ``hoirecon data video`` cut its frames."""
    return crop_frames(np.repeat(masks[..., None].astype(np.uint8) * 255, 3, axis=-1), crop)[..., 0] > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([(x & y).sum() / max((x | y).sum(), 1) for x, y in zip(a, b)]))


def prepare(name: str, cfg: SynthClipConfig, work: Path) -> dict[str, float]:
    """The clip, its video and the video's clip; the initialisation and mask scores."""
    original, video, mine = work / name, work / f"{name}.mp4", work / f"{name}-video"
    if not original.exists():
        write_clip(make_clip(cfg), original)
    src = load_clip(original)
    if not video.exists():
        write_video(video, src.images, src.fps)
    ys, xs = np.nonzero(src.object_masks[0])
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    fov = float(np.degrees(2 * np.arctan(src.images.shape[2] / 2 / src.K[0, 0, 0])))
    scores_file = work / f"{name}-video.json"
    if scores_file.is_file() and mine.exists() and (work / f"{name}-landmarks.npz").is_file():
        return json.loads(scores_file.read_text())
    if mine.exists():
        shutil.rmtree(mine)
    clip, crop, landmarks = video_to_clip(
        video, mine, box, VideoOptions(category=cfg.category, fov_degrees=fov, size=128)
    )
    clip.gt = src.gt  # 3D ground truth: the crop changes K, not the camera frame
    write_clip(clip, mine, overwrite=True)
    write_crop(mine, crop, video)

    hand_model = build("hand_model", {"type": "mano"})
    gt = camera_joints(hand_model, src.gt.hands, src.gt.T_cam_from_hand)
    truth = true_landmarks(gt, clip.K)
    found = landmarks.found
    np.savez(work / f"{name}-landmarks.npz", found=found, pixels=crop.points(landmarks.pixels), **truth)
    errors = np.linalg.norm(crop.points(landmarks.pixels) - truth["true_pixels"], axis=-1)[found]  # (F, 21)
    palm = palm_lengths(truth["true_pixels"])[found]
    scores = {"detect_rate": float(found.mean()), "lm_error_palm": float(np.mean(errors / palm[:, None]))}
    for label, hands, T in (("init", clip.hands, clip.T_cam_from_hand), ("provided", src.hands, src.T_cam_from_hand)):
        joints = camera_joints(hand_model, hands, T)
        scores[f"{label}_mpjpe_mm"] = float(mpjpe_mm(joints, gt, root=INDEX_MCP, align="root").mean())
        scores[f"{label}_mpjpe_pa_mm"] = float(mpjpe_mm(joints, gt, root=INDEX_MCP, align="procrustes").mean())

    scores["mask_iou_hand"] = iou(clip.hand_masks, crop_masks(src.hand_masks, crop))
    scores["mask_iou_object"] = iou(clip.object_masks, crop_masks(src.object_masks, crop))
    scores_file.write_text(json.dumps(scores))
    return scores


def true_landmarks(joints: torch.Tensor, K: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 21) camera-frame joints -> MediaPipe-ordered true landmarks: pixels (N, 21, 2) under K
    (N, 3, 3) and world (N, 21, 3), centred metres."""
    ordered = joints[:, list(MP_TO_HAND)]
    pixels, _ = project(ordered, torch.as_tensor(K, dtype=ordered.dtype))
    world = ordered - ordered.mean(dim=1, keepdim=True)
    return {"true_pixels": pixels.numpy(), "true_world": world.numpy()}


def palm_lengths(pixels: np.ndarray) -> np.ndarray:
    """(N, 21, 2) MediaPipe-ordered landmarks -> (N,) wrist-to-middle-knuckle lengths."""
    return np.linalg.norm(pixels[:, 9] - pixels[:, 0], axis=-1)


def with_paper_landmarks(name: str, work: Path, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """``{name}-video-paperlm``: the true-masks video clip with hands fitted by the ``mediapipe``
    initialiser to the true landmarks plus noise of MediaPipe's published accuracy, on the frames
    MediaPipe found; and that initialisation's joint errors."""
    out = work / f"{name}-video-paperlm"
    scores_file = work / f"{name}-video-paperlm.json"
    if out.exists() and scores_file.is_file():
        return out, json.loads(scores_file.read_text())
    src, clip = load_clip(work / name), load_clip(with_true_masks(name, work))
    saved = np.load(work / f"{name}-landmarks.npz")
    found, pixels, world = saved["found"], saved["true_pixels"], saved["true_world"]
    rng = np.random.default_rng(seed)
    sigma = PAPER_LANDMARK_ERROR / np.sqrt(np.pi / 2)  # per coordinate, for that mean 2D error
    pixels = pixels + rng.normal(size=pixels.shape) * sigma * palm_lengths(pixels)[:, None, None]
    world = world + rng.normal(size=world.shape) * sigma * 0.09  # the same share of a 9 cm palm
    pixels[~found], world[~found] = np.nan, np.nan
    landmarks = Landmarks(pixels, world, np.where(found, 0.95, 0.0), found.copy())
    hand_model = build("hand_model", {"type": "mano"})
    cfg = MediaPipeInitializer.Config()
    init = depth_from_clip_masks(hand_model, init_from_landmarks(clip, hand_model, landmarks, cfg), clip)
    n = len(clip)
    clip.hands = HandParams(init.hand_pose.numpy(), init.betas.numpy(), np.zeros((n, 3)), np.zeros((n, 3)))
    clip.T_cam_from_hand = init.T_cam_from_hand.numpy()
    write_clip(clip, out, overwrite=True)
    gt = camera_joints(hand_model, src.gt.hands, src.gt.T_cam_from_hand)
    joints = camera_joints(hand_model, clip.hands, clip.T_cam_from_hand)
    scores = {
        "init_mpjpe_paperlm": float(mpjpe_mm(joints, gt, root=INDEX_MCP, align="root").mean()),
        "init_mpjpe_pa_paperlm": float(mpjpe_mm(joints, gt, root=INDEX_MCP, align="procrustes").mean()),
    }
    scores_file.write_text(json.dumps(scores))
    return out, scores


def with_true_masks(name: str, work: Path) -> Path:
    """``{name}-video-truemasks``: the video clip (MediaPipe hands, its crop and K) with the
    ground-truth masks cropped the same way instead of the bootstrapped ones."""
    out = work / f"{name}-video-truemasks"
    if out.exists():
        return out
    src, clip = load_clip(work / name), load_clip(work / f"{name}-video")
    crop = read_crop(work / f"{name}-video")
    clip.hand_masks, clip.object_masks = crop_masks(src.hand_masks, crop), crop_masks(src.object_masks, crop)
    write_clip(clip, out)
    return out


def fit(clip: Path, run: Path, config: Path, steps: int, threads: int, extra: tuple[str, ...] = ()) -> dict[str, float]:
    from hoirecon.api import fit_clip

    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
    else:
        resume = run if (run / "checkpoints" / "last.ckpt").is_file() else None
        keys = {} if resume else {"clip": str(clip), "run_dir": str(run)}
        overrides = [f"trainer.threads={threads}", f"trainer.max_steps={steps}", *extra]
        metrics = fit_clip(None if resume else config, resume=resume, overrides=overrides, **keys).metrics
    # a fit whose SDF has no surface in its box scores no object: F-scores 0, chamfer undefined
    out = {k: float(metrics.get(v, float("nan") if k == "cd" else 0.0)) for k, v in KEYS.items()}
    out["mpjpe"] = float(metrics.get("hand/mpjpe_mm[procrustes]", float("nan")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/hoirecon-video-bench", help="clips and runs (reused)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each fit")
    parser.add_argument("--steps", type=int, default=1500, help="fit steps (the demo's 1500)")
    parser.add_argument("--preset", default="hoi4d-like", help="split preset")
    parser.add_argument("--clips", help="comma list of the split's clips (default: seed 1 of each category)")
    parser.add_argument("--no-fits", action="store_true", help="only detection, initialisation and masks")
    parser.add_argument("--forearm", action="store_true", help="render the clips with a forearm (synth forearm=True)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    configs = split_configs(args.preset, SynthClipConfig(forearm=args.forearm))
    names = args.clips.split(",") if args.clips else [n for n in configs if n.endswith("1")]
    rows = {}
    for name in names:
        start = time.perf_counter()
        rows[name] = prepare(name, configs[name], work)
        if not args.no_fits:
            video = fit(
                work / f"{name}-video",
                work / f"run-{name}-video",
                ROOT / "configs/fit/video.yaml",
                args.steps,
                args.threads,
            )
            gtm = fit(work / name, work / f"run-{name}", ROOT / "configs/fit/demo.yaml", args.steps, args.threads)
            hands_only = fit(
                with_true_masks(name, work),
                work / f"run-{name}-video-truemasks",
                ROOT / "configs/fit/video.yaml",
                args.steps,
                args.threads,
            )
            paper_clip, paper_init = with_paper_landmarks(name, work)
            paper = fit(
                paper_clip,
                work / f"run-{name}-video-paperlm",
                ROOT / "configs/fit/video.yaml",
                args.steps,
                args.threads,
                ("initializer.type=provided",),  # the hands fitted to those landmarks, not MediaPipe's
            )
            rows[name].update(
                {f"{k}_video": v for k, v in video.items()}
                | {f"{k}_gtmasks": v for k, v in gtm.items()}
                | {f"{k}_videohands": v for k, v in hands_only.items()}
                | {f"{k}_paperlm": v for k, v in paper.items()}
                | paper_init
            )
        shown = json.dumps({k: round(v, 3) for k, v in rows[name].items()})
        print(f"  {name}: {shown} ({time.perf_counter() - start:.0f} s)", flush=True)

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    arm = " with a forearm" if args.forearm else ""
    print(
        f"\n{args.preset} clips{arm} from their mp4 alone; fits {args.steps} steps, {args.threads} threads, load {load}"
    )
    columns = [
        "detect_rate",
        "lm_error_palm",
        "init_mpjpe_mm",
        "init_mpjpe_pa_mm",
        "provided_mpjpe_mm",
        "mask_iou_hand",
        "mask_iou_object",
    ]
    if not args.no_fits:
        columns += ["init_mpjpe_pa_paperlm", "f5_video", "f5_videohands", "f5_paperlm", "f5_gtmasks"]
        columns += ["f10_video", "f10_videohands", "f10_paperlm", "f10_gtmasks"]
        columns += ["mpjpe_video", "mpjpe_videohands", "mpjpe_paperlm", "mpjpe_gtmasks"]
    short = {
        c: c.replace("init_mpjpe", "init")
        .replace("provided_mpjpe", "provided")
        .replace("mask_iou_", "iou ")
        .replace("lm_error_palm", "lm err")
        for c in columns
    }
    width = {c: max(len(short[c]) + 2, 9) for c in columns}
    print(f"{'clip':<10}" + "".join(f"{short[c]:>{width[c]}}" for c in columns))
    for name, r in rows.items():
        print(f"{name:<10}" + "".join(f"{r[c]:>{width[c]}.3f}" for c in columns))
    mean = {c: float(np.nanmean([r[c] for r in rows.values()])) for c in columns}
    print(f"{'mean':<10}" + "".join(f"{mean[c]:>{width[c]}.3f}" for c in columns))
    result = {
        "detect_rate": round(mean["detect_rate"], 4),
        "lm_error_palm": round(mean["lm_error_palm"], 4),
        "init_mpjpe_mm": round(mean["init_mpjpe_mm"], 2),
        "init_mpjpe_pa_mm": round(mean["init_mpjpe_pa_mm"], 2),
        "provided_mpjpe_mm": round(mean["provided_mpjpe_mm"], 2),
        "mask_iou_hand": round(mean["mask_iou_hand"], 4),
        "mask_iou_object": round(mean["mask_iou_object"], 4),
    }
    if not args.no_fits:
        keys = ("f5_video", "f5_gtmasks", "f10_video", "f10_gtmasks", "f5_videohands", "f10_videohands")
        keys += ("f5_paperlm", "f10_paperlm", "init_mpjpe_pa_paperlm")
        result |= {k: round(mean[k], 4) for k in keys}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
