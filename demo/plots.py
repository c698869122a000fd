"""Plotly figures built from the engine's reports (no ML here: only drawing what was measured)."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gslora_core.report import blocks_text

ZERO_COLOUR = "#d9d9d9"  # exactly-zero groups: flat grey, outside the colour scale of live groups


def scale_top(values: Iterable[float]) -> float:
    """The top of the group-norm colour scale: the largest norm rounded up to 1, 2, 2.5 or 5
    times a power of ten (at least 1). Callers pass every norm the visitor has seen, so the
    scale starts at 0 and stays the same between the live and the Results heatmap."""
    top = max([v for v in values if v == v] + [1.0])  # NaN-safe
    power = 10 ** math.floor(math.log10(top))
    return next(k * power for k in (1, 2, 2.5, 5, 10) if k * power >= top)


def group_heatmap(group_norms: Sequence[Sequence[float]], task_names: Sequence[str],
                  zmax: float | None = None) -> go.Figure:
    """Task x block heatmap of LoRA group norms (the norm of the weight change each task makes
    in each block); exact zeros are grey and labelled "0", and each row names the blocks its
    task used. The colour scale runs from 0 to ``zmax`` (default ``scale_top`` of the shown
    norms): nearly equal norms look nearly alike."""
    blocks = [f"block {i + 1}" for i in range(len(group_norms[0]) if group_norms else 0)]
    rows = [f"{name} · {blocks_text(norms)}" for name, norms in zip(task_names, group_norms)]
    z_live = [[None if v == 0.0 else v for v in row] for row in group_norms]
    z_zero = [[0 if v == 0.0 else None for v in row] for row in group_norms]
    text = [["0" if v == 0.0 else f"{v:.2g}" for v in row] for row in group_norms]
    top = zmax or scale_top(v for row in group_norms for v in row)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=z_zero, x=blocks, y=rows, colorscale=[[0, ZERO_COLOUR], [1, ZERO_COLOUR]],
        showscale=False, text=text, texttemplate="%{text}",
        hovertemplate="%{y}, %{x}: exactly zero (untouched)<extra></extra>"))
    fig.add_trace(go.Heatmap(
        z=z_live, x=blocks, y=rows, colorscale="Viridis", zmin=0, zmax=top,
        customdata=group_norms, text=text, texttemplate="%{text}",
        colorbar={"title": "‖ΔW‖", "tick0": 0},
        hovertemplate="%{y}, %{x}: ‖ΔW‖ %{customdata:.6g}<extra></extra>"))
    fig.update_layout(title=f"Weight change per task and block (colour 0 to {top:g}; "
                            "grey 0 = block untouched)",
                      xaxis_title="transformer block", yaxis_title="task",
                      height=max(260, 150 + 40 * len(rows)),
                      yaxis={"autorange": "reversed"}, margin={"t": 50, "l": 60, "r": 20, "b": 40})
    return fig


def loss_curves(curve: Sequence[dict]) -> go.Figure:
    """Retain / forget / "not recognized" losses per step; on the right axis the stopping rule
    moving (the share of the task's training pictures not yet forgotten, at each full check) and
    Acc_r / Acc_f on test pictures where they were measured. A released block is a dashed line,
    the step a gated task eased its BND a dotted one."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    curve = [p for p in curve if "step" in p]  # stage points ("measuring …") carry no step
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
        if "eased" in p:
            fig.add_vline(x=p["step"], line={"dash": "dot", "color": "#999"},
                          annotation_text=f"BND eased to {p['eased']:g}")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="share", range=[0, 1.05], secondary_y=True)
    fig.update_layout(title="Training curves", xaxis_title="step",
                      margin={"t": 50, "l": 60, "r": 20, "b": 40})
    return fig


def identity_bars(per_identity: Sequence[dict], one: str = "person") -> go.Figure:
    """Per-person test accuracy before and after this task, as dots joined by a line (a bar of
    height 0 would not show): the people forgotten now first (red ✂), then those forgotten in
    earlier tasks (grey ✂), then everyone else. Readable from 2 to 100 people."""
    order = {"forgotten": 0, "earlier": 1}
    rows = sorted(per_identity, key=lambda r: (order.get(r["role"], 2), r["identity"]))
    names = [("✂ " if r["role"] in order else "") + r["identity"] for r in rows]
    fig = go.Figure()
    xs, ys = [], []
    for x, r in zip(names, rows):  # the change, as a line from before to after (one trace)
        xs += [x, x, None]
        ys += [r["before"], r["after"], None]
    fig.add_scatter(x=xs, y=ys, mode="lines", showlegend=False, hoverinfo="skip",
                    line={"color": "#c7c7c7", "width": 2})
    fig.add_scatter(x=names, y=[r["before"] for r in rows], mode="markers",
                    name="before this task", marker={"symbol": "circle-open", "size": 9,
                                                     "color": "#7f7f7f", "line": {"width": 2}})
    colour = {"forgotten": "#d62728", "earlier": "#9e9e9e"}
    fig.add_scatter(x=names, y=[r["after"] for r in rows], mode="markers",
                    name="after this task",
                    marker={"size": 9, "color": [colour.get(r["role"], "#1f77b4") for r in rows],
                            "symbol": ["x" if r["role"] in order else "circle" for r in rows]})
    many = len(rows) > 30
    # Title, key and legend on lines of their own, so none covers another at 1000 px.
    fig.update_layout(title={"text": f"Test accuracy per {one}, before → after this task<br>"
                                     "<sup>✂ red = forgotten now, ✂ grey = forgotten earlier"
                                     "</sup>", "x": 0.01, "xanchor": "left"},
                      yaxis={"range": [-0.05, 1.05], "title": "test accuracy",
                             "tickformat": ".0%"},
                      xaxis={"tickangle": -60, "tickfont": {"size": 9 if many else 11}},
                      template="plotly_white", height=440 if many else 400,
                      legend={"orientation": "h", "y": 1.01, "x": 0, "xanchor": "left",
                              "yanchor": "bottom"},
                      margin={"t": 110, "l": 60, "r": 20, "b": 130 if many else 110})
    return fig


def training_curve(points: Sequence[dict]) -> go.Figure:
    """An enrolment's (or retrain's) loss per step while it trains."""
    pts = [p for p in points if "step" in p and p.get("loss") is not None]
    fig = go.Figure(go.Scatter(x=[p["step"] for p in pts], y=[p["loss"] for p in pts],
                               mode="lines", name="training loss", line={"color": "#1f77b4"}))
    total = pts[-1]["steps"] if pts else None
    fig.update_layout(title="Training the recognizer: loss per step", xaxis_title="step",
                      yaxis_title="loss", template="plotly_white", height=360,
                      xaxis={"range": [0, total]} if total else {},
                      margin={"t": 50, "l": 60, "r": 20, "b": 40})
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


def _default_sizes(summary: Sequence[dict]) -> tuple[str, list[dict]] | None:
    """(gallery's name, the default recipe's summary rows by task size) of LFW-100, or else of
    the sample gallery; None when neither has any."""
    for part, name in (("lfw", "LFW-100"), ("sample", "the sample gallery")):
        pts = sorted((s for s in summary if s["part"] == part and s["recipe"] == "default"
                      and s.get("gallery") in ("lfw100", "sample")), key=lambda s: s["people"])
        if pts:
            return name, pts
    return None


def _spread(pts: Sequence[dict], rows: Sequence[dict], key: str, k: float) -> dict:
    """Error bars from each size's mean down to its lowest draw and up to its highest
    (``rows``: the per-draw rows; none: no bar), scaled by ``k``."""
    lows, highs = [], []
    for s in pts:
        vals = [float(r[key]) for r in rows if r["part"] == s["part"]
                and r["gallery"] == s["gallery"] and r["recipe"] == "default"
                and r["people"] == s["people"] and r.get("task", 1) == s.get("task", 1)]
        vals = vals or [s[key]["mean"]]
        lows.append(k * (s[key]["mean"] - min(vals)))
        highs.append(k * (max(vals) - s[key]["mean"]))
    return dict(type="data", symmetric=False, array=highs, arrayminus=lows)


def task_size_figure(summary: Sequence[dict], rows: Sequence[dict] = ()) -> go.Figure | None:
    """Blocks used and Acc_f against the number of people forgotten at once, from
    bench/sizes.py's summary (the default recipe on LFW-100, or else on the sample gallery).
    Means; with ``rows`` (the per-draw rows) the bars span the lowest to the highest draw,
    which stays readable with 2 draws (a 95 % t-interval from 2 draws is ±12.7 standard
    errors and would dwarf the plot). None when the summary has no such rows."""
    found = _default_sizes(summary)
    if found is None:
        return None
    gallery, pts = found
    xs = [str(s["people"]) for s in pts]
    # The bars sit on the primary axis so that the lines (secondary, drawn later) stay on top.
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=xs, y=[s["blocks_used"]["mean"] for s in pts], name="blocks used (of 6)",
                marker_color="#9ecae1", opacity=0.75, error_y=_spread(pts, rows, "blocks_used", 1),
                secondary_y=False)
    for key, name, colour in (("acc_f_after", "Acc_f: forgotten people, %", "#d62728"),
                              ("f_unknown", "forgotten: answered \"not recognized\", %",
                               "#2ca02c")):
        fig.add_scatter(x=xs, y=[100 * s[key]["mean"] for s in pts], name=name,
                        mode="lines+markers", line={"color": colour, "width": 3},
                        error_y=_spread(pts, rows, key, 100), secondary_y=True)
    # Ranges chosen so that 0 blocks and 0 % sit at the same height.
    fig.update_yaxes(title_text="blocks used", range=[-0.18, 6.2], secondary_y=False,
                     tickvals=list(range(7)))
    fig.update_yaxes(title_text="% of held-back pictures", range=[-3, 103], secondary_y=True,
                     showgrid=False, tickvals=[0, 20, 40, 60, 80, 100])
    fig.update_xaxes(title_text="people forgotten at once", type="category")
    span = "bars: lowest to highest draw" if rows else "bars: 95 % intervals"
    fig.update_layout(title={"text": "One default for every size: blocks used and Acc_f against "
                                     f"task size<br><sup>{gallery}, {pts[0]['draws']} draws each; "
                                     f"{span}</sup>", "x": 0.01, "xanchor": "left"},
                      template="plotly_white", legend=dict(orientation="h", y=-0.2),
                      margin={"t": 80})
    return fig


PALETTE = qualitative.Dark24  # 24 distinct colours ...
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "triangle-down", "pentagon", "star",
           "hexagon"]  # ... times 8 markers: 192 people before a pair repeats


def person_style(k: int) -> tuple[str, str]:
    """The colour and marker of the k-th person of a map: no two of the first 192 alike."""
    return PALETTE[k % len(PALETTE)], SYMBOLS[(k // len(PALETTE)) % len(SYMBOLS)]


def embedding_map(data: dict) -> go.Figure:
    """Held-back pictures before and after forgetting on shared axes (fitted on the untouched
    model): one colour per person, forgotten people as large crosses; hover names the face."""
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=("Before any forgetting", "Now"), horizontal_spacing=0.04)
    points = data["points"]
    gone = {p["identity"] for p in points if p["forgotten"]}
    people = sorted({p["identity"] for p in points}, key=lambda n: (n not in gone, n))
    for k, person in enumerate(people):
        colour, symbol = person_style(k)
        for col, stage in ((1, "before"), (2, "after")):
            mine = [p for p in points if p["identity"] == person and p["stage"] == stage]
            out = person in gone
            fig.add_scatter(
                x=[p["x"] for p in mine], y=[p["y"] for p in mine], mode="markers",
                name=("✂ " if out else "") + person, legendgroup=person, showlegend=col == 1,
                legendrank=k,
                marker={"color": colour, "size": 13 if out else 7,
                        "symbol": "x" if out else symbol, "line": {"width": 0},
                        "opacity": 1.0 if out else 0.6},
                text=[f"{p['identity']}<br>{p['file']}" for p in mine],
                hovertemplate="%{text}<extra></extra>", row=1, col=col)
    share = sum(data.get("explained", [])) * 100
    fig.update_layout(title={"text": "Embeddings of held-back pictures<br><sup>2 axes of the "
                                     f"untouched model, {share:.0f} % of its variance; ✂ = "
                                     "forgotten</sup>", "x": 0.01, "xanchor": "left"},
                      template="plotly_white", height=520 if len(people) > 30 else 460,
                      legend={"font": {"size": 10}, "title": "✂ forgotten first"},
                      margin={"t": 90, "l": 40, "r": 20, "b": 30})
    return fig
