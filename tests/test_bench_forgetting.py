"""The forgetting benchmark's quick mode (a smoke test of bench/forgetting.py on the real sample
gallery): every protocol's methods run, and the numbers obey what each method is."""
from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow


def test_quick_benchmark_runs_every_protocol_and_the_numbers_make_sense(tmp_path):
    from bench.forgetting import FULL_LR, PROTOCOL_METHODS, main

    main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "forgetting_quick.json").read_text())
    md = (tmp_path / "forgetting_quick.md").read_text()
    assert md.count("| single |") == len(PROTOCOL_METHODS["single"])
    assert (tmp_path / "forgetting_quick_plot.html").stat().st_size > 10_000
    rows = {(r["protocol"], r["method"], r["task"]): r for r in result["rows"]}
    expected = {("single", m, 1) for m in PROTOCOL_METHODS["single"]}
    expected |= {("fewshot", m, 1) for m in PROTOCOL_METHODS["fewshot"]}
    expected |= {("continual", m, t) for m in PROTOCOL_METHODS["continual"] for t in (1, 2)}
    assert set(rows) == expected
    for (_protocol, method, _task), r in rows.items():
        assert r["peak_mb"] > 0
        if method == "retrain":  # measured by name: no class for the forgotten, none recognized
            assert r["acc_f"] == 0
        if method.startswith("gslora"):
            assert r["acc_f"] < r["acc_f_before"]
            assert 0 < r["trainable_share"] < 0.05
            assert r["zero_group_ratio"] > 0  # the group lasso selects blocks
    # Every method is told who was forgotten before, full fine-tuning included (it keeps no
    # task history: before the fix its second task trained the first task's people as retained).
    first = rows[("continual", "gslora", 1)]["forgotten"]
    for m in ("gslora", "full", "retrain"):
        assert rows[("continual", m, 2)]["earlier_seen"] == first, m
    assert rows[("continual", "gslora", 2)]["acc_o"] <= 0.25
    # Intervals and the membership attack's power are in the summary.
    single = {s["method"]: s for s in result["summary"] if s["protocol"] == "single"}
    assert single["gslora"]["acc_r"]["n"] == 1 and math.isnan(single["gslora"]["acc_r"]["high"])
    assert 0.0 <= single["untouched"]["mia_power"]["mean"] <= 1.0
    # The file records the configurations that ran, not preset names.
    configs = result["meta"]["configs"]
    assert configs["gslora++"]["shots"] == 4 and configs["gslora++"]["prototype_weight"] > 0
    assert configs["gslora-4shot"]["prototype_weight"] == 0
    assert configs["full"]["lr"] == FULL_LR and configs["gslora-noreplay"]["replay_forgotten"] == 0
    assert result["meta"]["quick"] and result["meta"]["identities"] == 20
