"""Plotly figures built from the engine's reports (no ML here: only drawing what was measured)."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

ZERO_COLOUR = "#d9d9d9"  # exactly-zero groups: flat grey, outside the colour scale of live groups


def group_heatmap(group_norms: Sequence[Sequence[float]], task_names: Sequence[str]) -> go.Figure:
    """Task x block heatmap of LoRA group norms; exact zeros are grey and labelled "0"."""
    blocks = [f"block {i + 1}" for i in range(len(group_norms[0]) if group_norms else 0)]
    z_live = [[None if v == 0.0 else v for v in row] for row in group_norms]
    z_zero = [[0 if v == 0.0 else None for v in row] for row in group_norms]
    text = [["0" if v == 0.0 else f"{v:.2g}" for v in row] for row in group_norms]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=z_zero, x=blocks, y=list(task_names), colorscale=[[0, ZERO_COLOUR], [1, ZERO_COLOUR]],
        showscale=False, hovertemplate="%{y}, %{x}: exactly zero<extra></extra>"))
    fig.add_trace(go.Heatmap(
        z=z_live, x=blocks, y=list(task_names), colorscale="Viridis", zmin=0,
        customdata=group_norms, text=text, texttemplate="%{text}",
        colorbar={"title": "group norm"},
        hovertemplate="%{y}, %{x}: norm %{customdata:.6g}<extra></extra>"))
    fig.update_layout(title="LoRA group norms (grey = exactly zero: that block is untouched)",
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
