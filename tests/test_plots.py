"""The app's figures draw exactly what the engine measured."""
from __future__ import annotations

from demo.plots import group_heatmap, identity_bars, loss_curves


def test_heatmap_shows_exact_zeros_apart_with_exact_hover_values() -> None:
    norms = [[0.0, 1.25, 3e-7], [0.5, 0.0, 0.0]]
    fig = group_heatmap(norms, ["task1", "task2"])
    zeros, live = fig.data
    assert [list(r) for r in zeros.z] == [[0, None, None], [None, 0, 0]]
    assert [list(r) for r in live.z] == [[None, 1.25, 3e-7], [0.5, None, None]]
    assert [list(r) for r in live.customdata] == norms  # hover gives the exact norm
    assert list(fig.data[1].x) == ["block 1", "block 2", "block 3"]


def test_curves_and_bars_follow_the_report() -> None:
    curve = [{"step": 1, "retain": 1.0, "forget": 2.0, "sparsity": 3.0},
             {"step": 2, "retain": 0.5, "forget": 1.0, "sparsity": 2.0, "acc_r": 0.9, "acc_f": 0.1}]
    fig = loss_curves(curve)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["retain loss"].y) == [1.0, 0.5]
    assert list(by_name["Acc_f (test)"].x) == [2] and list(by_name["Acc_f (test)"].y) == [0.1]
    assert "group sparsity" in by_name  # drawn where it is not zero (the fixed schedule)
    # The stopping rule moving: the share of training pictures left at each full check.
    curve = [{"step": 5, "retain": 1.0, "forget": 2.0, "unknown": 1.0, "full": True,
              "pictures_left": 8},
             {"step": 10, "retain": 1.0, "forget": 2.0, "unknown": 0.5, "full": False,
              "pictures_left": 1},
             {"step": 20, "retain": 1.0, "forget": 2.0, "unknown": 0.0, "full": True,
              "pictures_left": 2, "released": 4}]
    by_name = {t.name: t for t in loss_curves(curve).data}
    left = by_name["training pictures not yet forgotten (share)"]
    assert list(left.x) == [5, 20] and list(left.y) == [1.0, 0.25]
    assert "group sparsity" not in by_name
    bars = identity_bars([{"identity": "Ana", "role": "forget", "before": 1.0, "after": 0.0},
                          {"identity": "Ben", "role": "retain", "before": 0.75, "after": 0.75}])
    assert list(bars.data[0].x) == ["✂ Ana", "Ben"] and list(bars.data[1].y) == [0.0, 0.75]
