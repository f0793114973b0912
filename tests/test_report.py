"""report.html: self-contained, and it renders in headless Chromium without console errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from hoirecon.eval.report import compare_report, run_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000", "--window-size=1000,1200",
]  # fmt: skip


def fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"object/f@10mm[rigid]": 0.9, "hand/mpjpe_mm[root]": 6.5}))
    trimesh.creation.icosphere(subdivisions=2, radius=0.04).export(folder / "object_in_hand.obj")
    (folder / "hands").mkdir()
    trimesh.creation.box((0.08, 0.02, 0.1)).export(folder / "hands" / "000000.obj")
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(folder / "preview.png")
    (folder / "config.yaml").write_text("trainer: {max_steps: 1500}\nclip: clips/<demo>\n")
    return folder


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[list[str], np.ndarray]:
    """Console errors and the screenshot of ``page``."""
    shot = tmp_path / f"{page.stem}.png"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if ":ERROR:" in line or "Uncaught" in line or "Error:" in line]
    return errors, np.asarray(Image.open(shot).convert("L"))


def test_run_report_is_self_contained(tmp_path):
    page = run_report(fake_run(tmp_path / "run"))
    text = page.read_text()
    assert "object/f@10mm[rigid]" in text and 'id="meshes"' in text and "data:image/png;base64," in text
    assert "<script src=" not in text  # plotly.js is inside: the page works offline
    assert "max_steps: 1500" in text and "clips/&lt;demo&gt;" in text  # the config as run, escaped
    assert len(text) > 1_000_000


def test_compare_report_lists_every_run(tmp_path):
    rows = [
        {"variant": "a", "clip": "m", "category": "mug", "minutes": 1.0, "f": 0.5},
        {"variant": "b", "clip": "m", "category": "mug", "minutes": 2.0, "f": 0.7},
    ]
    text = compare_report(tmp_path, rows, ["f"]).read_text()
    assert text.count("<tr>") == 3 and 'id="metric0"' in text and 'id="quality_time"' in text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_reports_render_in_headless_chromium(tmp_path):
    page = run_report(fake_run(tmp_path / "run"))
    errors, shot = open_in_chromium(page, tmp_path)
    assert errors == []
    assert shot.std() > 10  # something was drawn, not a blank page
    # the check can fail: a page with a script error is caught
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><p>x</p><script>notDefinedAnywhere();</script></body></html>")
    errors, _ = open_in_chromium(broken, tmp_path)
    assert errors and "notDefinedAnywhere" in errors[0]


def test_pillow_charts_draw_their_data(tmp_path):
    """Each chart draws something in every series' colour, and labels stay inside the image."""
    import numpy as np
    from PIL import Image

    from hoirecon.eval.plots import PALETTE, bar_chart, line_chart, scatter

    line = line_chart(
        {"a": [(0, 1.0), (10, 0.5), (20, 0.2)], "b": [(0, 0.3), (20, 0.1)]}, "t", "step", tmp_path / "l.png"
    )
    bars = bar_chart({"mlp": 0.6, "hashgrid": float("nan")}, "t", tmp_path / "b.png")
    points = scatter({"a-very-long-variant-name=1": (3.0, 0.5)}, "t", "min", "f", tmp_path / "s.png")
    for path, colours in ((line, PALETTE[:2]), (bars, PALETTE[:1]), (points, PALETTE[:1])):
        pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
        for colour in colours:
            assert (np.abs(pixels - np.array(colour)).sum(1) == 0).sum() > 20, (path.name, colour)
    # the scatter's label, written left of a point at the right edge, leaves the last columns white
    right = np.asarray(Image.open(points).convert("RGB"))[:, -3:]
    assert (right == 255).all()


def test_the_grasp_view_has_a_frame_slider_and_colours_penetrating_vertices(tmp_path):
    from hoirecon.eval.report import INSIDE_COLOUR, evenly_spaced, grasp_figure

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.04)
    outside = trimesh.creation.box((0.02, 0.02, 0.02))
    outside.apply_translation((0.1, 0, 0))
    sunk = trimesh.creation.box((0.02, 0.02, 0.02))
    sunk.apply_translation((0.04, 0, 0))  # 4 of its 8 corners inside the sphere
    fig = grasp_figure(sphere, [("000000", outside), ("000005", sunk)])
    obj, first, second = fig.data
    assert obj.opacity < 1 and first.visible is True and second.visible is False
    assert first.name == "hand 000000: 0 vertices inside" and INSIDE_COLOUR not in first.vertexcolor
    assert second.name.startswith("hand 000005: 4 vertices inside, ")
    # the deepest corner, (0.03, 0.01, 0.01), lies 40 - 1000 * sqrt(0.0011) = 6.8 mm inside the sphere;
    # the icosphere's flat faces sit up to 0.3 mm inside it
    depth_mm = float(re.search(r"([0-9.]+) mm deep$", second.name).group(1))
    assert 6.4 <= depth_mm <= 6.9
    assert list(second.vertexcolor).count(INSIDE_COLOUR) == 4
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["000000", "000005"] and steps[1].args[0]["visible"] == [True, False, True]
    assert evenly_spaced(list(range(10)), 4) == [0, 3, 6, 9] and evenly_spaced([1, 2], 4) == [1, 2]
    # and the page: the legend of the losses sits below their plot
    run = fake_run(tmp_path / "run")
    sunk.export(run / "hands" / "000005.obj")
    text = run_report(run).read_text()
    assert "hand 000005: 4 vertices inside" in text and '"sliders"' in text
