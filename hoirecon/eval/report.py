"""Self-contained HTML reports (plotly.js embedded, so they open offline), for a run and for a comparison.

A run's ``report.html``: its metrics, the grasp in 3D (the fitted object see-through and the hand of a
frame chosen with a slider, penetrating hand vertices coloured; hand frame), the loss curves from its
TensorBoard log and the preview image. A comparison's:
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


HAND_COLOUR, INSIDE_COLOUR, OBJECT_COLOUR = "#e8b89a", "#d62728", "#4a78d8"


def evenly_spaced(items: list, most: int) -> list:
    """At most ``most`` of ``items``, evenly spaced, the first and the last included."""
    if len(items) <= most:
        return list(items)
    return [items[round(i * (len(items) - 1) / (most - 1))] for i in range(most)]


def inside_label(depth: np.ndarray) -> str:
    """(V,) depths of hand vertices inside the object (metres; <= 0 outside) -> "K vertices inside, X mm deep"."""
    inside = depth > 0
    return f"{int(inside.sum())} vertices inside" + (f", {1000 * depth.max():.1f} mm deep" if inside.any() else "")


def grasp_figure(obj: trimesh.Trimesh | None, hands: list[tuple[str, trimesh.Trimesh]]):
    """The object (see-through) and one hand mesh per frame, a slider choosing the frame; hand vertices
    inside the object (winding number, ``MeshSDF``) are coloured, and each frame's name says how many
    and how deep."""
    import plotly.graph_objects as go
    import torch

    from hoirecon.geometry.mesh_sdf import MeshSDF

    traces = []
    if obj is not None and len(obj.faces):
        trace = _mesh_trace(obj, "object", OBJECT_COLOUR)
        trace.update(opacity=0.45)
        traces.append(trace)
    sdf = MeshSDF(obj) if obj is not None and len(obj.faces) else None
    for i, (name, hand) in enumerate(hands):
        v, f = np.asarray(hand.vertices), np.asarray(hand.faces)
        depth = -sdf(torch.from_numpy(v)).numpy() if sdf is not None else np.zeros(len(v))
        inside = depth > 0
        label = f"hand {name}: {inside_label(depth)}"
        traces.append(
            go.Mesh3d(
                x=v[:, 0],
                y=v[:, 1],
                z=v[:, 2],
                i=f[:, 0],
                j=f[:, 1],
                k=f[:, 2],
                vertexcolor=np.where(inside, INSIDE_COLOUR, HAND_COLOUR),
                name=label,
                showlegend=True,
                visible=i == 0,
                lighting={"ambient": 0.5, "diffuse": 0.7, "specular": 0.1},
            )
        )
    fig = go.Figure(traces)
    n_object = len(traces) - len(hands)
    if len(hands) > 1:

        def shown(i: int) -> list[bool]:
            return [True] * n_object + [j == i for j in range(len(hands))]

        steps = [
            {"method": "restyle", "label": name, "args": [{"visible": shown(i)}]} for i, (name, _) in enumerate(hands)
        ]
        fig.update_layout(
            sliders=[{"active": 0, "steps": steps, "currentvalue": {"prefix": "frame "}, "pad": {"t": 10}}]
        )
    legend = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0}
    fig.update_layout(scene={"aspectmode": "data"}, height=560, margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend=legend)
    return fig


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
    object_path = run_dir / "object_in_hand.obj"
    obj = trimesh.load(object_path, force="mesh") if object_path.is_file() else None
    hands = sorted((run_dir / "hands").glob("*.obj")) if (run_dir / "hands").is_dir() else []
    if obj is not None or hands:
        fig = grasp_figure(obj, [(p.stem, trimesh.load(p, force="mesh")) for p in evenly_spaced(hands, 24)])
        body += [
            "<h2>The grasp (hand frame, metres; drag to turn, the slider picks the frame)</h2>"
            "<p>The object is see-through; hand vertices inside it are red.</p>",
            _figure(fig, "meshes"),
        ]
    curves = {tag: series for tag, series in loss_curves(run_dir / "tb").items() if tag.startswith("loss")}
    if curves:
        fig = go.Figure([go.Scatter(x=s, y=v, name=tag, mode="lines") for tag, (s, v) in sorted(curves.items())])
        # the legend below the plot: on it, it hid the curves' ends
        legend = {"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0}
        fig.update_layout(height=460, yaxis_type="log", xaxis_title="step", margin={"t": 10}, legend=legend)
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
    rows = [r for r in rows if not r.get("error")]  # failed runs: in the table above, not in the means
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
