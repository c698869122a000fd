"""Issue 33's benchmark in quick mode, on the real sample gallery with the shipped recognizer:
the default needs one block for two people and stops when they are gone; the dense recipe
touches every block; a continual second task keeps the first task's people forgotten."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_quick_sizes_benchmark(tmp_path):
    import torch

    from bench.sizes import main

    main(["--quick", "--out", str(tmp_path), "--threads", str(torch.get_num_threads())])
    result = json.loads((tmp_path / "sizes_quick.json").read_text())
    rows = result["rows"]
    assert {(r["part"], r["recipe"], r["people"]) for r in rows} == {
        ("sample", "default", 2), ("sample", "dense", 2), ("sample", "default", 6),
        ("sample", "dense", 6), ("continual", "default", 2)}
    two = next(r for r in rows if (r["part"], r["recipe"], r["people"]) == ("sample", "default", 2))
    assert two["stop"] == "done" and two["blocks_used"] == 1 and two["acc_f_after"] == 0.0, two
    assert two["f_other"] == 0.0 and two["before_seconds"] == 0.0
    # Acc_f 0 is every held-back picture's best other person ahead of its own: the lowest gap > 0.
    assert two["f_gap_low"] > 0.0
    for r in rows:
        if r["recipe"] == "dense":
            assert r["blocks_used"] == 6 and r["zero_groups"] == 0, r
        assert r["config"]["schedule"] == "release"
    cont = [r for r in rows if r["part"] == "continual"]
    assert [r["task"] for r in cont] == [1, 2]
    assert cont[1]["earlier"] == cont[0]["forgotten"] and cont[1]["acc_o"] == 0.0
    assert "| sample | sample | default | 2 |" in (tmp_path / "sizes_quick.md").read_text()
    assert (tmp_path / "sizes_quick_plot.html").stat().st_size > 10_000
    # Default against dense, draw by draw (the H-Mean target's comparison).
    from bench.sizes import paired

    pairs = {(p["gallery"], p["people"]): p for p in paired([str(tmp_path / "sizes_quick.json")],
                                                            tmp_path)}
    assert set(pairs) == {("sample", 2), ("sample", 6)}
    dense = next(r for r in rows if (r["part"], r["recipe"], r["people"]) == ("sample", "dense", 2))
    diff = pairs[("sample", 2)]["h_mean_default_minus_dense"]
    assert diff["n"] == 1 and abs(diff["mean"] - (two["h_mean"] - dense["h_mean"])) < 1e-12
    assert "| sample | 2 | 1 |" in (tmp_path / "sizes_paired.md").read_text()


def test_the_lfw100_continual_part_draws_four_disjoint_tasks_of_ten_per_sequence():
    from bench.sizes import parser, task_plans

    a = parser().parse_args(["--parts", "lfw-continual", "--lfw-draws", "2", "--seed", "1"])
    plans = task_plans(a, ["default"])  # planned from LFW's folders: no recognizer is built
    assert [(p[0], p[1], p[3]) for p in plans] == [("lfw-continual", "lfw100", 0),
                                                   ("lfw-continual", "lfw100", 1)]
    for *_, tasks, _ in plans:
        names = [n for t in tasks for n in t]
        assert [len(t) for t in tasks] == [10] * 4 and len(set(names)) == 40
    assert plans[0][4] != plans[1][4]
