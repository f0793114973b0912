"""Small PNG charts for comparisons, drawn with Pillow (no plotting library is needed here)."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

from hoirecon.utils.io import atomic_path

PALETTE = [(66, 110, 200), (220, 110, 50), (80, 160, 90), (180, 70, 160), (120, 120, 120), (200, 170, 40)]
W, H, MARGIN = 560, 320, 48


def _frame(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 10), title, fill="black")
    draw.line([(MARGIN, H - MARGIN), (W - 10, H - MARGIN)], fill="black")
    draw.line([(MARGIN, 30), (MARGIN, H - MARGIN)], fill="black")
    return image, draw


def _save(image: Image.Image, path: Path) -> Path:
    with atomic_path(path) as tmp:
        image.save(tmp)
    return Path(path)


def _to_pixel(x: float, y: float, x_top: float, y_top: float) -> tuple[float, float]:
    """Data coordinates (axes from 0 to x_top, y_top) -> image pixels inside the frame."""
    return MARGIN + (W - MARGIN - 20) * x / x_top, H - MARGIN - (H - MARGIN - 40) * y / y_top


def _axis_labels(draw: ImageDraw.ImageDraw, xlabel: str, x_top: str, y_top: str) -> None:
    """The x axis's name, both axes' zero and their top values."""
    draw.text((W // 2, H - 20), xlabel, fill="black")
    draw.text((MARGIN - 40, 36), y_top, fill="gray")
    draw.text((MARGIN - 30, H - MARGIN - 6), "0", fill="gray")
    draw.text((MARGIN, H - MARGIN + 6), "0", fill="gray")
    draw.text((W - 60, H - MARGIN + 6), x_top, fill="gray")


def bar_chart(values: dict[str, float], title: str, path: Path) -> Path:
    """One bar per label (NaN bars are left empty), value printed on top."""
    image, draw = _frame(title)
    finite = [v for v in values.values() if not math.isnan(v)]
    top = max(finite + [1e-9]) * 1.15
    n = max(len(values), 1)
    slot = (W - MARGIN - 20) / n
    for i, (label, value) in enumerate(values.items()):
        x0 = MARGIN + 10 + i * slot
        draw.text((x0, H - MARGIN + 6), label[:24], fill="black")
        if math.isnan(value):
            continue
        y = H - MARGIN - (H - MARGIN - 40) * value / top
        draw.rectangle([x0, y, x0 + slot * 0.6, H - MARGIN], fill=PALETTE[i % len(PALETTE)])
        draw.text((x0, y - 14), f"{value:.3f}", fill="black")
    return _save(image, path)


def scatter(points: dict[str, tuple[float, float]], title: str, xlabel: str, ylabel: str, path: Path) -> Path:
    """One labelled point per variant, e.g. quality against minutes."""
    image, draw = _frame(title)
    pts = {k: v for k, v in points.items() if not any(math.isnan(c) for c in v)}
    xs, ys = [p[0] for p in pts.values()] or [1.0], [p[1] for p in pts.values()] or [1.0]
    x_top, y_top = max(xs) * 1.2 or 1.0, max(ys) * 1.2 or 1.0
    for i, (label, (x, y)) in enumerate(pts.items()):
        px, py = _to_pixel(x, y, x_top, y_top)
        colour = PALETTE[i % len(PALETTE)]
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=colour)
        text = f"{label} ({x:.1f}, {y:.3f})"
        width = draw.textlength(text)
        left = px + 8 + width > W - 4  # past the right edge: write it on the left of the point
        draw.text((px - 8 - width if left else px + 8, py - 6), text, fill=colour)
    draw.text((MARGIN + 6, 32), ylabel, fill="black")
    _axis_labels(draw, xlabel, f"{x_top:.1f}", f"{y_top:.2f}")
    return _save(image, path)


def line_chart(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, path: Path) -> Path:
    """One polyline per series of (x, y) points (e.g. losses against steps); y from 0, legend top right."""
    image, draw = _frame(title)
    points = [p for pts in series.values() for p in pts if not any(math.isnan(c) for c in p)]
    x_top = max([p[0] for p in points] + [1e-9])
    y_top = max([p[1] for p in points] + [1e-9]) * 1.1
    for i, (label, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        xy = [_to_pixel(x, y, x_top, y_top) for x, y in pts if not (math.isnan(x) or math.isnan(y))]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        elif xy:
            draw.ellipse([xy[0][0] - 3, xy[0][1] - 3, xy[0][0] + 3, xy[0][1] + 3], fill=colour)
        draw.text((W - 200, 34 + 14 * i), label, fill=colour)
    _axis_labels(draw, xlabel, f"{x_top:.0f}", f"{y_top:.3g}")
    return _save(image, path)
