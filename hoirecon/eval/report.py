"""Self-contained HTML reports (plotly.js embedded, so they open offline), for a run and for a comparison.

A run's ``report.html``: its metrics, the fitted object and the first frame's hand as interactive 3D
meshes (hand frame), the loss curves from its TensorBoard log and the preview image. A comparison's:
the results table, a bar chart per metric and quality against time.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
import trimesh

from hoirecon.utils.io import atomic_write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _page(title: str, body: list[str]) -> str:
    from plotly.offline import get_plotlyjs

    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _figure(fig, div_id: str) -> str:
    import plotly.io as pio

    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config={"responsive": True})


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f'<td class="num">{"-" if math.isnan(v) else f"{v:.4f}"}</td>'
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _mesh_trace(mesh: trimesh.Trimesh, name: str, colour: str, max_faces: int = 20000):
    import plotly.graph_objects as go

    if len(mesh.faces) > max_faces:
        from hoirecon.sdf.mesh import simplified

        v, f = simplified(mesh, max_faces)
        mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    return go.Mesh3d(
        x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
        color=colour, name=name, flatshading=False, showlegend=True,
        lighting={"ambient": 0.4, "diffuse": 0.7, "specular": 0.2},
    )  # fmt: skip


def loss_curves(tb_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Scalar series (steps, values) from a TensorBoard log folder; empty if there is none."""
    if not tb_dir.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: ([e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)])
        for tag in acc.Tags().get("scalars", [])
    }


def run_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from what the run left there."""
    import plotly.graph_objects as go

    run_dir = Path(run_dir)
    body = []
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        body += [
            "<h2>Metrics</h2>",
            _table(["metric [convention]", "value"], [[k, float(v)] for k, v in metrics.items()]),
        ]
    traces = []
    if (run_dir / "object_in_hand.obj").is_file():
        traces.append(_mesh_trace(trimesh.load(run_dir / "object_in_hand.obj", force="mesh"), "object", "#4a78d8"))
    hands = sorted((run_dir / "hands").glob("*.obj")) if (run_dir / "hands").is_dir() else []
    if hands:
        traces.append(_mesh_trace(trimesh.load(hands[0], force="mesh"), f"hand {hands[0].stem}", "#e0604a"))
    if traces:
        fig = go.Figure(traces)
        fig.update_layout(scene={"aspectmode": "data"}, height=520, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        body += ["<h2>Object and hand (hand frame, metres; drag to turn)</h2>", _figure(fig, "meshes")]
    curves = {tag: series for tag, series in loss_curves(run_dir / "tb").items() if tag.startswith("loss")}
    if curves:
        fig = go.Figure([go.Scatter(x=s, y=v, name=tag, mode="lines") for tag, (s, v) in sorted(curves.items())])
        fig.update_layout(height=420, yaxis_type="log", xaxis_title="step", margin={"t": 10})
        body += ["<h2>Losses (log scale; click a name to hide it)</h2>", _figure(fig, "losses")]
    if (run_dir / "preview.png").is_file():
        data = base64.b64encode((run_dir / "preview.png").read_bytes()).decode()
        body += [
            "<h2>Preview</h2><p>input | masks | render overlay | two novel views, one row per frame</p>",
            f'<img alt="preview" src="data:image/png;base64,{data}">',
        ]
    if (run_dir / "config.yaml").is_file():
        config = html.escape((run_dir / "config.yaml").read_text())
        body += [f"<h2>Config</h2><details><summary>config.yaml, as run</summary><pre>{config}</pre></details>"]
    return atomic_write_text(run_dir / "report.html", _page(f"hoirecon run {run_dir.name}", body))


def compare_report(out: Path, rows: list[dict], metrics: list[str]) -> Path:
    """Write ``out/report.html`` for a comparison's result rows."""
    import plotly.graph_objects as go

    from hoirecon.utils.stats import mean_finite

    body = ["<h2>Runs</h2>", _table(list(rows[0]) if rows else ["no finished runs"], [list(r.values()) for r in rows])]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for n, metric in enumerate(metrics):
        means = [mean_finite([r[metric] for r in rows if r["variant"] == v]) for v in variants]
        fig = go.Figure([go.Bar(x=variants, y=means, text=[f"{m:.3f}" for m in means])])
        fig.update_layout(height=320, title=metric, margin={"t": 40})
        body.append(_figure(fig, f"metric{n}"))
    if metrics:
        quality = metrics[1] if len(metrics) > 1 else metrics[0]
        traces = [
            go.Scatter(
                x=[r["minutes"] for r in rows if r["variant"] == v],
                y=[r[quality] for r in rows if r["variant"] == v],
                text=[r["clip"] for r in rows if r["variant"] == v],
                mode="markers",
                name=v,
            )  # fmt: skip
            for v in variants
        ]
        fig = go.Figure(traces)
        fig.update_layout(height=380, xaxis_title="minutes per run", yaxis_title=quality, margin={"t": 20})
        body += ["<h2>Quality against time (one point per run)</h2>", _figure(fig, "quality_time")]
    return atomic_write_text(out / "report.html", _page(f"hoirecon comparison {out.name}", body))
