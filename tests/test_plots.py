"""The app's figures draw exactly what the engine measured."""
from __future__ import annotations

from demo.plots import (
    embedding_map,
    group_heatmap,
    identity_bars,
    loss_curves,
    person_style,
    scale_top,
    task_size_figure,
)


def test_heatmap_shows_exact_zeros_apart_with_exact_hover_values() -> None:
    norms = [[0.0, 1.25, 3e-7], [0.5, 0.0, 0.0]]
    fig = group_heatmap(norms, ["task1", "task2"])
    zeros, live = fig.data
    assert [list(r) for r in zeros.z] == [[0, None, None], [None, 0, 0]]
    assert [list(r) for r in live.z] == [[None, 1.25, 3e-7], [0.5, None, None]]
    assert [list(r) for r in live.customdata] == norms  # hover gives the exact norm
    assert list(fig.data[1].x) == ["block 1", "block 2", "block 3"]


def test_heatmap_colour_scale_starts_at_zero_and_can_be_shared() -> None:
    # 4.0 and 4.6 are nearly equal: on a scale from 0 they sit close (not at its two ends).
    live = group_heatmap([[0.0, 4.0, 4.6]], ["task1"]).data[1]
    assert live.zmin == 0 and live.zmax == 5
    assert (4.6 - 4.0) / live.zmax < 0.15
    # The live and the Results heatmap get the same top when the caller passes it.
    assert group_heatmap([[0.0, 0.3, 0.2]], ["this task"], zmax=5).data[1].zmax == 5
    assert [scale_top(v) for v in ([0.3], [4.6], [18.4], [1.0], [2.2], [0.0])] == \
        [1, 5, 20, 1, 2.5, 1]


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
    # Stage points (no step) are not drawn.
    assert list(loss_curves([{"stage": "preparing"}] + curve).data[0].x) == [5, 10, 20]
    # A released block and an eased BND are marked where they happened, in words.
    curve[0]["eased"] = 65.0
    marks = {(a.x, a.text) for a in loss_curves(curve).layout.annotations}
    assert marks == {(5, "BND eased to 65"), (20, "block 5 released")}


def test_per_person_dots_show_forgotten_people_at_zero_first() -> None:
    fig = identity_bars([{"identity": "Ben", "role": "retained", "before": 0.75, "after": 0.75},
                         {"identity": "Cy", "role": "earlier", "before": 0.0, "after": 0.0},
                         {"identity": "Ana", "role": "forgotten", "before": 1.0, "after": 0.0}])
    lines, before, after = fig.data
    assert list(after.x) == ["✂ Ana", "✂ Cy", "Ben"]  # forgotten now, earlier, the rest
    assert list(before.y) == [1.0, 0.0, 0.75] and list(after.y) == [0.0, 0.0, 0.75]
    assert after.marker.symbol[0] == "x" and after.marker.color[0] != after.marker.color[2]
    assert before.name == "before this task"
    assert list(lines.x) == ["✂ Ana", "✂ Ana", None, "✂ Cy", "✂ Cy", None, "Ben", "Ben", None]


def test_embedding_map_gives_each_of_100_people_a_style_of_their_own() -> None:
    assert len({person_style(k) for k in range(192)}) == 192
    points = [{"identity": f"P{k:03d}", "stage": stage, "x": k, "y": 0.0, "file": "f",
               "forgotten": k == 50} for k in range(100) for stage in ("before", "after")]
    fig = embedding_map({"points": points, "explained": [0.2, 0.1]})
    shown = [t for t in fig.data if t.showlegend]
    assert len(shown) == 100 and shown[0].name == "✂ P050"  # forgotten first in the legend
    styles = {(t.marker.color, t.marker.symbol) for t in shown}
    assert len(styles) == 100


def test_task_size_bars_span_the_draws() -> None:
    def iv(mean: float) -> dict:
        return {"mean": mean, "low": -100.0, "high": 100.0, "n": 2}
    summary = [{"part": "lfw", "gallery": "lfw100", "recipe": "default", "people": 50,
                "task": 1, "draws": 2, "blocks_used": iv(2.5), "acc_f_after": iv(0.0),
                "f_unknown": iv(0.99)}]
    rows = [{"part": "lfw", "gallery": "lfw100", "recipe": "default", "people": 50, "task": 1,
             "blocks_used": b, "acc_f_after": 0.0, "f_unknown": u}
            for b, u in ((2, 0.98), (3, 1.0))]
    fig = task_size_figure(summary, rows)
    blocks = fig.data[0]
    assert list(blocks.error_y.array) == [0.5] and list(blocks.error_y.arrayminus) == [0.5]
    assert "lowest to highest draw" in fig.layout.title.text
    # the Acc_f and "not recognized" lines are drawn over the bars (a later, overlaying axis)
    assert blocks.yaxis == "y" and all(t.yaxis == "y2" for t in fig.data[1:])


def test_the_live_heatmap_ends_on_the_tasks_last_step_while_it_is_measured() -> None:
    """While the task's "after" is measured (a stage, no step), the live heatmap shows the
    last step's groups: the values the Results tab then shows, not an earlier poll's."""
    from types import SimpleNamespace

    from demo.jobs import Job
    from demo.views import live_view

    page = SimpleNamespace(forget_md="md", live_curves="curves", live_heatmap="heatmap")
    job = Job("forget", lambda progress, cancelled: None)
    job.points = [{"step": 1, "steps": 400, "loss": 1.0, "group_norms": [0.0, 6.8], "blocks": 1,
                   "zero_groups": 1, "seconds": 0.1},
                  {"step": 2, "steps": 400, "loss": 0.9, "group_norms": [0.0, 6.896],
                   "blocks": 1, "zero_groups": 1, "seconds": 0.2},
                  {"stage": "measuring the recognizer after the task"}]
    view = live_view(page, job, None, None)
    zeros, live = view["heatmap"].data
    assert list(live.z[-1]) == [None, 6.896] and "Measuring" in view["md"]


def test_the_live_status_says_a_released_block_and_an_eased_bnd() -> None:
    from types import SimpleNamespace

    from demo.jobs import Job
    from demo.views import live_view

    page = SimpleNamespace(forget_md="md", live_curves="curves", live_heatmap="heatmap")
    job = Job("forget", lambda progress, cancelled: None)
    step = {"steps": 400, "loss": 1.0, "group_norms": [0.0, 6.8], "zero_groups": 1,
            "seconds": 0.1}
    job.points = [{**step, "step": 80, "blocks": 1, "eased": 65.0},
                  {**step, "step": 160, "blocks": 2, "released": 0}]
    text = live_view(page, job, None, None)["md"]
    assert "blocks in use: 2 (released block 1) · BND eased to 65" in text
