"""Plotly figures built from the engine's reports (no ML here: only drawing what was measured)."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gslora_core.report import blocks_text

ZERO_COLOUR = "#d9d9d9"  # exactly-zero groups: flat grey, outside the colour scale of live groups


def group_heatmap(group_norms: Sequence[Sequence[float]], task_names: Sequence[str]) -> go.Figure:
    """Task x block heatmap of LoRA group norms (the norm of the weight change each task makes
    in each block); exact zeros are grey and labelled "0", and each row names the blocks its
    task used."""
    blocks = [f"block {i + 1}" for i in range(len(group_norms[0]) if group_norms else 0)]
    rows = [f"{name} · blocks {blocks_text(norms)}" for name, norms in zip(task_names, group_norms)]
    z_live = [[None if v == 0.0 else v for v in row] for row in group_norms]
    z_zero = [[0 if v == 0.0 else None for v in row] for row in group_norms]
    text = [["0" if v == 0.0 else f"{v:.2g}" for v in row] for row in group_norms]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=z_zero, x=blocks, y=rows, colorscale=[[0, ZERO_COLOUR], [1, ZERO_COLOUR]],
        showscale=False, text=text, texttemplate="%{text}",
        hovertemplate="%{y}, %{x}: exactly zero (untouched)<extra></extra>"))
    fig.add_trace(go.Heatmap(
        z=z_live, x=blocks, y=rows, colorscale="Viridis", zmin=0,
        customdata=group_norms, text=text, texttemplate="%{text}",
        colorbar={"title": "‖ΔW‖"},
        hovertemplate="%{y}, %{x}: ‖ΔW‖ %{customdata:.6g}<extra></extra>"))
    fig.update_layout(title="Weight change per task and block (grey 0 = block untouched)",
                      xaxis_title="transformer block", yaxis_title="task",
                      yaxis={"autorange": "reversed"}, margin={"t": 50, "l": 60, "r": 20, "b": 40})
    return fig


def loss_curves(curve: Sequence[dict]) -> go.Figure:
    """Retain / forget / sparsity losses per step, and Acc_r / Acc_f where they were measured."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    steps = [p["step"] for p in curve]
    for key, name in (("retain", "retain loss"), ("forget", "forget loss (bounded)"),
                      ("sparsity", "group sparsity")):
        fig.add_trace(go.Scatter(x=steps, y=[p[key] for p in curve], name=name, mode="lines"),
                      secondary_y=False)
    evals = [p for p in curve if "acc_r" in p]
    for key, name in (("acc_r", "Acc_r"), ("acc_f", "Acc_f")):
        fig.add_trace(go.Scatter(x=[p["step"] for p in evals], y=[p[key] for p in evals],
                                 name=name, mode="lines+markers", line={"dash": "dot"}),
                      secondary_y=True)
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], secondary_y=True)
    fig.update_layout(title="Training curves", xaxis_title="step",
                      margin={"t": 50, "l": 60, "r": 20, "b": 40})
    return fig


def identity_bars(per_identity: Sequence[dict]) -> go.Figure:
    """Per-identity test accuracy before vs after; forgotten people are marked."""
    names = [("✂ " if r["role"] in ("forget", "earlier") else "") + r["identity"]
             for r in per_identity]
    fig = go.Figure([
        go.Bar(x=names, y=[r["before"] for r in per_identity], name="before"),
        go.Bar(x=names, y=[r["after"] for r in per_identity], name="after"),
    ])
    fig.update_layout(barmode="group", title="Test accuracy per identity (✂ = forgotten)",
                      yaxis={"range": [0, 1.05], "title": "accuracy"},
                      margin={"t": 50, "l": 60, "r": 20, "b": 120})
    return fig


def accuracy_bars(per_identity: Sequence[dict], title: str) -> go.Figure:
    """Test accuracy per identity of one recognizer (rows with "identity" and "accuracy")."""
    fig = go.Figure(go.Bar(x=[r["identity"] for r in per_identity],
                           y=[r["accuracy"] for r in per_identity],
                           marker_color=["#bbbbbb" if r.get("role") == "forgotten" else "#4c78a8"
                                         for r in per_identity]))
    fig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "test accuracy"},
                      margin={"t": 50, "l": 60, "r": 20, "b": 120})
    return fig


def alpha_sweep(summary: Sequence[dict]) -> go.Figure | None:
    """Zero groups, Acc_r and Acc_f against alpha, from bench/sparsity.py's summary rows (means;
    bars = 95 % intervals over draws). None when the summary has no sweep."""
    pts = sorted((s for s in summary if s["part"] == "sweep"), key=lambda s: s["alpha"])
    if not pts:
        return None
    xs = [s["alpha"] for s in pts]

    def bars(key: str, k: float) -> dict:
        ivs = [s[key] for s in pts]
        return dict(type="data", symmetric=False,
                    array=[k * (iv["ci95"][1] - iv["mean"]) if iv["ci95"] else 0 for iv in ivs],
                    arrayminus=[k * (iv["mean"] - iv["ci95"][0]) if iv["ci95"] else 0 for iv in ivs])

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=xs, y=[s["zero_groups"]["mean"] for s in pts], name="blocks untouched (of 6)",
                marker_color=ZERO_COLOUR, error_y=bars("zero_groups", 1), width=0.04,
                secondary_y=True)
    for key, name, colour in (("acc_r_after", "Acc_r: everyone else, %", "#1f77b4"),
                              ("acc_f_after", "Acc_f: forgotten people, %", "#d62728")):
        fig.add_scatter(x=xs, y=[100 * s[key]["mean"] for s in pts], name=name,
                        mode="lines+markers", line={"color": colour}, error_y=bars(key, 100),
                        secondary_y=False)
    fig.update_yaxes(title_text="accuracy on held-back pictures, %", range=[-3, 103],
                     secondary_y=False)
    fig.update_yaxes(title_text="blocks untouched (exactly zero)", range=[0, 6.2],
                     secondary_y=True)
    fig.update_xaxes(title_text="α (0 = no group sparsity; 1 = at most the strongest block)")
    draws = pts[0]["zero_groups"]["n"]
    fig.update_layout(title=f"α against blocks untouched, Acc_r and Acc_f (sample gallery, "
                            f"forget 2 of 20, {draws} draws)", template="plotly_white",
                      legend={"orientation": "h", "y": -0.25},
                      margin={"t": 50, "l": 60, "r": 60, "b": 40})
    return fig


def embedding_map(data: dict) -> go.Figure:
    """Held-back pictures before and after forgetting on shared axes (fitted on the untouched
    model): one colour per person, forgotten people as large crosses; hover names the face."""
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=("Before any forgetting", "Now"), horizontal_spacing=0.04)
    points = data["points"]
    people = sorted({p["identity"] for p in points})
    palette = qualitative.D3
    for k, person in enumerate(people):
        for col, stage in ((1, "before"), (2, "after")):
            mine = [p for p in points if p["identity"] == person and p["stage"] == stage]
            gone = bool(mine and mine[0]["forgotten"])
            fig.add_scatter(
                x=[p["x"] for p in mine], y=[p["y"] for p in mine], mode="markers",
                name=("✂ " if gone else "") + person, legendgroup=person, showlegend=col == 1,
                marker={"color": palette[k % len(palette)], "size": 13 if gone else 7,
                        "symbol": "x" if gone else "circle", "line": {"width": 0},
                        "opacity": 1.0 if gone else 0.55},
                text=[f"{p['identity']}<br>{p['file']}" for p in mine],
                hovertemplate="%{text}<extra></extra>", row=1, col=col)
    share = sum(data.get("explained", [])) * 100
    fig.update_layout(title=f"Embeddings of held-back pictures (2 axes of the untouched model, "
                            f"{share:.0f} % of its variance); ✂ = forgotten",
                      template="plotly_white", height=460, margin={"t": 60, "l": 40, "r": 20, "b": 30})
    return fig
