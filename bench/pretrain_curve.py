"""Issue 15: the validation curve of pretraining runs, to read what more epochs would give.

Every ``pretrain --out X`` run keeps its history in ``X.json`` (per epoch: loss, and the
verification accuracy of the validation people on each view). This plots the mean over views
(what chooses checkpoints) and the clean view per epoch for one or more runs, with a
horizontal line for a reference score (the shipped backbone on the same views and pairs), and
writes the numbers beside the figure.

    python -m bench.pretrain_curve runs/backbone_v2/backbone.json runs/backbone_d8/backbone.json \
        --label "6 blocks" --label "8 blocks" --reference 0.912 \
        --reference-label "shipped (trained on these people)" --out bench/results/pretrain_curve
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .forgetting import write_figure


def curve(history_file: Path) -> list[dict]:
    """Per epoch: epoch, training loss, validation score (mean over views) and each view."""
    rows = json.loads(history_file.read_text())["history"]
    return [{"epoch": r["epoch"], "loss": r["loss"], "score": r["validation"]["score"],
             **r["validation"]["views"]} for r in rows if "validation" in r]


def tail_slope(points: list[dict], last: int = 6) -> float:
    """Least-squares change of the score per epoch over the last ``last`` epochs."""
    pts = points[-last:]
    if len(pts) < 2:
        return 0.0
    return float(np.polyfit([p["epoch"] for p in pts], [p["score"] for p in pts], 1)[0])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("histories", nargs="+", help="<out>.json files of pretrain runs")
    ap.add_argument("--label", action="append", default=[], help="one per history, in order")
    ap.add_argument("--reference", type=float, help="a reference validation score (drawn as a line)")
    ap.add_argument("--reference-label", default="reference", help="what the reference line is")
    ap.add_argument("--out", default="bench/results/pretrain_curve", help="file stem (.json/.html/.png)")
    a = ap.parse_args(argv)
    import plotly.colors
    import plotly.graph_objects as go

    labels = a.label + [Path(h).parent.name for h in a.histories[len(a.label):]]
    runs = {lab: curve(Path(h)) for lab, h in zip(labels, a.histories)}
    fig = go.Figure()
    palette = plotly.colors.qualitative.D3
    for i, (lab, pts) in enumerate(runs.items()):
        ep = [p["epoch"] for p in pts]
        colour = palette[i % len(palette)]
        fig.add_scatter(x=ep, y=[p["score"] for p in pts], mode="lines+markers",
                        line={"color": colour}, name=f"{lab}: mean over views")
        fig.add_scatter(x=ep, y=[p["clean"] for p in pts], mode="lines",
                        line={"dash": "dot", "color": colour}, name=f"{lab}: clean")
    if a.reference is not None:
        fig.add_hline(y=a.reference, line={"dash": "dash", "color": "grey"},
                      annotation_text=f"{a.reference_label} {a.reference:.3f}")
    fig.update_layout(title="Pretraining: validation-people verification per epoch",
                      xaxis_title="epoch", yaxis_title="verification accuracy", template="plotly_white")
    stem = Path(a.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    result = {"runs": {lab: {"history": h, "points": pts, "best": max(p["score"] for p in pts),
                             "slope_last6": tail_slope(pts)}
                       for (lab, pts), h in zip(runs.items(), a.histories)},
              "reference": a.reference}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    write_figure(fig, stem, 900, 500)
    for lab, r in result["runs"].items():
        print(f"{lab}: best {r['best']:.4f}, last {r['points'][-1]['score']:.4f}, "
              f"slope over the last 6 epochs {r['slope_last6'] * 100:+.2f} points/epoch")
    return result


if __name__ == "__main__":
    main()
