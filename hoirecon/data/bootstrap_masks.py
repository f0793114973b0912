"""Hand and object masks for a clip that has none, from classic vision (OpenCV's GrabCut, Farneback flow).

No learned segmenter ships offline in a CPU wheel, so these are a bootstrap, not a SAM/XMem/Cutie
(docs/data.md, "From a video", says where they fail):

- the hand: the initialised hand's rendered silhouette seeds GrabCut (inside: probably hand; eroded:
  surely hand; a band around it: probably background; further out: background), which snaps the
  outline to the image's colour edges;
- the object: GrabCut inside a box per frame: the user's box on the first frame, then that box
  lifted to a cube at the hand's depth that moves rigidly with the initialised hand (the object is
  hand-held); the previous frame's mask, carried along the dense optical flow, marks pixels that are
  surely object. Hand pixels are never object (the clip format's masks are disjoint).

Arrays: images (N, H, W, 3) uint8; masks (N, H, W) bool; box (x0, y0, x1, y1) pixels.
"""

from __future__ import annotations

import numpy as np

from hoirecon.hand.landmarks import MP_BONES, MP_PALM

#: The lines drawn between landmarks as surely hand: the bones and the knuckles' row across the palm.
SKELETON = MP_BONES + tuple(zip(MP_PALM[1:-1], MP_PALM[2:]))
#: GrabCut's iterations per frame.
ITERATIONS = 4
#: Object tracking: a carried mask at least this share of frame 0's sets the next box (grown by
#: GROW); a GrabCut result more than MAX_GROWTH times the carried mask is a flood into the background.
MIN_CARRIED, GROW, MAX_GROWTH = 0.3, 1.3, 2.0
#: GrabCut runs on frames upscaled to at least this short side: its edge term is tuned for camera-sized
#: images, and on a 128 px synthetic frame it labels everything background (a held mug: IoU 0 at 128 px,
#: 0.83 upscaled to 256).
WORK_SIDE = 256


def refine_hand_masks(
    images: np.ndarray, silhouettes: np.ndarray, landmarks: np.ndarray | None = None, band: int = 3
) -> np.ndarray:
    """(N, H, W) hand masks: each rendered silhouette snapped to its frame by GrabCut.

    ``landmarks`` (N, 21, 2) pixels in MediaPipe's order (NaN where undetected): where a frame has
    them, its skeleton drawn as thin lines is what is surely hand (the detector's joints are closer
    to the truth than the fitted hand's outline); elsewhere the eroded silhouette is. ``band``
    (pixels) is how far the true outline may be from the silhouette's.
    """
    import cv2

    masks = []
    for i, (image, silhouette) in enumerate(zip(images, silhouettes)):
        sure = None
        if landmarks is not None and np.isfinite(landmarks[i]).all():
            sure = np.zeros(silhouette.shape, np.uint8)
            for parent, child in SKELETON:
                a, b = (tuple(int(round(c)) for c in landmarks[i, j]) for j in (parent, child))
                cv2.line(sure, a, b, 1, thickness=max(1, band // 2))
        masks.append(_grabcut_around(image, silhouette, band, None, sure))
    return np.stack(masks)


def boxes_moving_with_hand(
    box: tuple[float, float, float, float],
    T_cam_from_hand: np.ndarray,
    K: np.ndarray,
    hand_depth: float,
    grow: float = 1.1,
) -> np.ndarray:
    """(N, 4) per-frame boxes of a hand-held object from its box on frame 0 and the hand's motion.

    The box is lifted to a cube as deep as it is wide, centred half a width past ``hand_depth``
    (metres, the hand's mean depth on frame 0: a held object is mostly seen beyond the hand; on a
    synthetic mug this is within 1 cm of the truth, and at the hand's own depth the boxes lag the
    object by a third of its width). The cube moves rigidly with the hand (T_cam_from_hand (N, 4, 4),
    K (N, 3, 3)); each later frame's box bounds its projected corners, ``grow`` times larger.
    """
    x0, y0, x1, y1 = box
    corners_px = np.array([(x, y) for x in (x0, x1) for y in (y0, y1)], dtype=np.float64)
    rays = np.linalg.solve(K[0], np.c_[corners_px, np.ones(4)].T).T  # (4, 3), z = 1
    width = np.linalg.norm(rays[0] - rays[3]) * hand_depth / np.sqrt(2)
    depth = hand_depth + width / 2
    front, back = rays * (depth - width / 2), rays * (depth + width / 2)
    cube = np.concatenate([front, back])  # (8, 3) camera 0
    cube_hand = (cube - T_cam_from_hand[0, :3, 3]) @ T_cam_from_hand[0, :3, :3]  # T_hand_from_cam0
    cam = cube_hand @ T_cam_from_hand[:, :3, :3].transpose(0, 2, 1) + T_cam_from_hand[:, None, :3, 3]
    px = cam @ K.transpose(0, 2, 1)
    uv = px[..., :2] / np.maximum(px[..., 2:], 1e-6)
    low, high = uv.min(axis=1), uv.max(axis=1)
    centre, half = (low + high) / 2, (high - low) / 2 * grow
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    boxes[0] = box
    return boxes


def track_object_masks(images: np.ndarray, boxes: np.ndarray, hand_masks: np.ndarray, band: int = 3) -> np.ndarray:
    """(N, H, W) object masks: GrabCut inside each frame's box (N, 4), helped by the previous frame's mask.

    The previous mask, carried along the dense optical flow and eroded, marks pixels that are surely
    object; the box marks where the rest may be: ``boxes[i]`` (from the hand's motion) while the
    carried mask is small (the object behind the hand), else the carried mask's own box, grown.
    Hand pixels are never object; a result that floods the background falls back to the carried mask.
    """
    import cv2

    n, h, w = images.shape[:3]
    masks = np.zeros((n, h, w), dtype=bool)
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images]
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * band + 1, 4 * band + 1))
    for i in range(n):
        carried = None
        if i > 0 and masks[i - 1].any():
            # where each pixel of frame i was in frame i-1, and so whether it was object there
            flow = cv2.calcOpticalFlowFarneback(grey[i], grey[i - 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
            carried = cv2.remap(masks[i - 1].astype(np.uint8), u + flow[..., 0], v + flow[..., 1], cv2.INTER_NEAREST)
            carried = cv2.morphologyEx(carried, cv2.MORPH_CLOSE, kernel)  # bridge the gaps fingers cut
        box = boxes[i]
        if carried is not None and carried.sum() >= MIN_CARRIED * masks[0].sum():
            box = _grown_bbox(carried > 0, GROW)  # a mask still in view: its neighbourhood beats the hand's motion
        x0, y0, x1, y1 = (int(round(c)) for c in box)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        seed = np.full((h, w), cv2.GC_BGD, np.uint8)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            seed[y0:y1, x0:x1] = cv2.GC_PR_FGD
        elif i == 0:
            raise ValueError(f"the object box {tuple(boxes[0])} has no area inside the {w}x{h} image")
        if carried is not None:
            seed[carried > 0] = cv2.GC_PR_FGD
            seed[cv2.erode(carried, kernel) > 0] = cv2.GC_FGD
        mask = _grabcut(images[i], seed, hand_masks[i])
        if carried is not None and mask.sum() > MAX_GROWTH * max(carried.sum(), 1):
            mask = (carried > 0) & ~hand_masks[i]  # GrabCut flooded the background: keep the carried mask
        masks[i] = mask
    return masks


def _grown_bbox(mask: np.ndarray, grow: float) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * grow, (y1 - y0) / 2 * grow
    return cx - hw, cy - hh, cx + hw, cy + hh


def _grabcut_around(
    image: np.ndarray, guess: np.ndarray, band: int, exclude: np.ndarray | None, sure: np.ndarray | None = None
) -> np.ndarray:
    """GrabCut seeded by a rough mask: ``sure`` (default: the eroded guess) = surely in, the guess =
    probably in, a band around it = probably out, beyond = out."""
    import cv2

    guess = guess.astype(np.uint8)
    if not guess.any():
        return np.zeros(guess.shape, dtype=bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    seed = np.full(guess.shape, cv2.GC_BGD, np.uint8)
    seed[cv2.dilate(guess, kernel, iterations=3) > 0] = cv2.GC_PR_BGD
    seed[guess > 0] = cv2.GC_PR_FGD
    seed[(cv2.erode(guess, kernel) if sure is None else sure) > 0] = cv2.GC_FGD
    return _grabcut(image, seed, exclude)


def _grabcut(image: np.ndarray, seed: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Run GrabCut from a seed of GC_* labels; pixels in ``exclude`` are background. Largest component."""
    import cv2

    seed = seed.copy()
    if exclude is not None:
        seed[exclude] = cv2.GC_BGD
    foreground = (seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)
    if not foreground.any():
        return np.zeros(seed.shape, dtype=bool)
    if foreground.all() or not (seed == cv2.GC_BGD).any() and not (seed == cv2.GC_PR_BGD).any():
        return foreground  # GrabCut needs both sides to model
    background_model, foreground_model = np.zeros((1, 65)), np.zeros((1, 65))
    h, w = seed.shape
    scale = max(1.0, WORK_SIDE / min(h, w))
    work = np.ascontiguousarray(image[..., ::-1])  # OpenCV's BGR
    if scale > 1:
        size = (round(w * scale), round(h * scale))
        work = cv2.resize(work, size, interpolation=cv2.INTER_LINEAR)
        seed = cv2.resize(seed, size, interpolation=cv2.INTER_NEAREST)
    cv2.grabCut(work, seed, None, background_model, foreground_model, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    mask = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale > 1:
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if count <= 1:
        return mask > 0
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest
