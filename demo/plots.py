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
    """Retain / forget / "not recognized" losses per step; on the right axis the stopping rule
    moving (the share of the task's training pictures not yet forgotten, at each full check) and
    Acc_r / Acc_f on test pictures where they were measured. A released block is a dashed line."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    steps = [p["step"] for p in curve]
    for key, name, colour in (("retain", "retain loss", "#1f77b4"),
                              ("forget", "forget loss (bounded)", "#ff7f0e"),
                              ("unknown", "\"not recognized\" loss", "#bcbd22"),
                              ("sparsity", "group sparsity", "#7f7f7f")):
        ys = [p.get(key, 0.0) for p in curve]
        if key in ("unknown", "sparsity") and not any(ys):
            continue
        fig.add_trace(go.Scatter(x=steps, y=ys, name=name, mode="lines",
                                 line={"color": colour}), secondary_y=False)
    checks = [p for p in curve if p.get("full") and "pictures_left" in p]
    if checks:
        first = max(1, checks[0]["pictures_left"], max(p["pictures_left"] for p in checks))
        fig.add_trace(go.Scatter(x=[p["step"] for p in checks],
                                 y=[p["pictures_left"] / first for p in checks],
                                 name="training pictures not yet forgotten (share)",
                                 mode="lines+markers", line={"color": "#2ca02c", "width": 3}),
                      secondary_y=True)
    evals = [p for p in curve if "acc_r" in p]
    for key, name, colour in (("acc_r", "Acc_r (test)", "#17becf"),
                              ("acc_f", "Acc_f (test)", "#9467bd")):
        fig.add_trace(go.Scatter(x=[p["step"] for p in evals], y=[p[key] for p in evals],
                                 name=name, mode="lines+markers",
                                 line={"dash": "dot", "color": colour},
                                 marker={"symbol": "square" if key == "acc_f" else "circle"}),
                      secondary_y=True)
    for p in curve:
        if "released" in p:
            fig.add_vline(x=p["step"], line={"dash": "dash", "color": "#999"},
                          annotation_text=f"block {p['released'] + 1} released")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="share", range=[0, 1.05], secondary_y=True)
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


def task_size_figure(summary: Sequence[dict]) -> go.Figure | None:
    """Blocks used and Acc_f against the number of people forgotten at once, from
    bench/sizes.py's summary (the default recipe on LFW-100, or else on the sample gallery;
    means, bars = 95 % intervals over draws). None when the summary has no such rows."""
    where = {"lfw": "LFW-100", "sample": "the sample gallery"}
    parts = [p for p in where if any(s["part"] == p and s["recipe"] == "default"
                                     and s.get("gallery") in ("lfw100", "sample") for s in summary)]
    if not parts:
        return None
    gallery = where[parts[0]]
    pts = sorted((s for s in summary if s["part"] == parts[0] and s["recipe"] == "default"
                  and s.get("gallery") in ("lfw100", "sample")), key=lambda s: s["people"])
    xs = [str(s["people"]) for s in pts]

    def bars(key: str, k: float) -> dict:
        ivs = [s[key] for s in pts]
        ok = [iv["n"] > 1 and iv["high"] == iv["high"] for iv in ivs]
        return dict(type="data", symmetric=False,
                    array=[k * (iv["high"] - iv["mean"]) if o else 0 for iv, o in zip(ivs, ok)],
                    arrayminus=[k * (iv["mean"] - iv["low"]) if o else 0 for iv, o in zip(ivs, ok)])

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=xs, y=[s["blocks_used"]["mean"] for s in pts], name="blocks used (of 6)",
                marker_color="#9ecae1", error_y=bars("blocks_used", 1), secondary_y=True)
    for key, name, colour in (("acc_f_after", "Acc_f: forgotten people, %", "#d62728"),
                              ("f_unknown", "forgotten: answered \"not recognized\", %",
                               "#2ca02c")):
        fig.add_scatter(x=xs, y=[100 * s[key]["mean"] for s in pts], name=name,
                        mode="lines+markers", line={"color": colour}, error_y=bars(key, 100),
                        secondary_y=False)
    fig.update_yaxes(title_text="% of held-back pictures", range=[-3, 103], secondary_y=False)
    fig.update_yaxes(title_text="blocks used", range=[0, 6.2], secondary_y=True)
    fig.update_xaxes(title_text="people forgotten at once", type="category")
    fig.update_layout(title=f"One default for every size: blocks used and Acc_f against task "
                            f"size ({gallery}, {pts[0]['draws']} draws each)",
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
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
