"""The issue-6 benchmark's quick mode (a smoke test of bench/forgetting.py on the real sample
gallery): every method runs through both protocols and the numbers obey what each method is."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_quick_benchmark_runs_every_method_and_the_numbers_make_sense(tmp_path):
    from bench.forgetting import METHODS, main

    main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "forgetting_quick.json").read_text())
    assert (tmp_path / "forgetting_quick.md").read_text().count("| single |") == len(METHODS)
    assert (tmp_path / "forgetting_quick_plot.html").stat().st_size > 10_000
    rows = {(r["protocol"], r["method"], r["task"]): r for r in result["rows"]}
    assert set(rows) == {(p, m, t) for m in METHODS
                         for p, t in (("single", 1), ("continual", 1), ("continual", 2))}
    for (_protocol, method, task), r in rows.items():
        assert r["peak_mb"] > 0 and r["seconds"] >= 0
        if method == "untouched":  # the reference changes nothing
            assert r["acc_f"] == r["acc_f_before"] and r["drop"] == 0 and r["h_mean"] == 0
            assert r["speedup_vs_retrain"] is None
        if method == "retrain":  # no class for the forgotten: they cannot be recognized
            assert r["acc_f"] == 0 and r["speedup_vs_retrain"] == 1 and r["trainable_share"] == 1
            assert task == 1 or r["acc_o"] == 0
        if method in ("gslora", "gslora++", "lora"):
            assert r["acc_f"] < r["acc_f_before"]
            assert 0 < r["trainable_share"] < 0.05 and r["zero_group_ratio"] is not None
        if method == "full":
            assert r["trainable_share"] == 1
    assert rows[("single", "lora", 1)]["zero_group_ratio"] == 0  # no sparsity term, no zeros
    assert result["meta"]["quick"] and result["meta"]["identities"] == 20
