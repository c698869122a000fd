"""The forgetting benchmark's quick mode (a smoke test of bench/forgetting.py on the real sample
gallery): every protocol's methods run, and the numbers obey what each method is."""
from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow


def test_quick_benchmark_runs_every_protocol_and_the_numbers_make_sense(tmp_path):
    import torch

    from bench.forgetting import FULL_LR, PROTOCOL_METHODS, main

    main(["--quick", "--out", str(tmp_path), "--threads", str(torch.get_num_threads())])
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
            assert r["zero_group_ratio"] > 0  # the default leaves blocks untouched
            assert r["stop"] in ("done", "step cap") and r["blocks_used"] >= 1
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


def test_paired_differences_are_per_draw_and_borrow_the_single_step_reference(tmp_path) -> None:
    """bench.paired: the difference of two methods is taken draw by draw (not of their means),
    and few-shot methods are compared with the single-step draws' untouched and retrain rows."""
    import json

    from bench.paired import main as paired_main

    def row(protocol, method, draw, acc_r, h):
        return {"protocol": protocol, "method": method, "draw": draw, "task": 1, "acc_r": acc_r,
                "h_mean": h, "acc_f": 0.0, "mia_member_rate": 0.0}

    rows = [row("single", "untouched", d, 0.90 + d / 100, 0.0) for d in range(3)]
    rows += [row("single", "retrain", d, 0.95, 0.90 + d / 100) for d in range(3)]
    # gslora is 1 point below untouched in every draw, though its own values spread by 2 points.
    rows += [row("single", "gslora", d, 0.89 + d / 100, 0.80) for d in range(3)]
    rows += [row("fewshot", "gslora-4shot", d, 0.90, 0.85) for d in range(3)]
    rows += [row("fewshot", "gslora++", d, 0.90, 0.85 + (d + 1) / 100) for d in range(3)]
    src = tmp_path / "res.json"
    src.write_text(json.dumps({"rows": rows}))
    out = {(r["protocol"], r["metric"], r["method"], r["against"]): r for r in paired_main([str(src)])}
    acc = out[("single", "acc_r", "gslora", "untouched")]
    assert acc["n"] == 3 and abs(acc["mean"] + 0.01) < 1e-9 and abs(acc["std"]) < 1e-9
    h = out[("single", "h_mean", "gslora", "retrain")]
    assert abs(h["mean"] + 0.11) < 1e-9 and h["low"] < h["mean"] < h["high"]
    few = out[("fewshot", "h_mean", "gslora-4shot", "retrain")]
    assert few["draws"] == [0, 1, 2] and abs(few["mean"] + 0.06) < 1e-9
    pp = out[("fewshot", "h_mean", "gslora++", "gslora-4shot")]
    assert abs(pp["mean"] - 0.02) < 1e-9
    assert ("single", "acc_r", "untouched", "untouched") not in out
    written = json.loads((tmp_path / "res_paired.json").read_text())
    assert len(written["pairs"]) == len(out)
    assert "gslora − untouched" in (tmp_path / "res_paired.md").read_text()


def test_time_ratios_borrow_retrain_from_the_single_step_draw() -> None:
    """A few-shot task's speed is against retrain on the same draw's single step (its people);
    untouched and retrain rows get no ratio, and a draw without retrain gets none."""
    from bench.forgetting import add_time_ratios

    def row(protocol, method, draw, seconds, train):
        return {"protocol": protocol, "method": method, "draw": draw, "task": 1,
                "seconds": seconds, "train_seconds": train}

    rows = [row("single", "retrain", 0, 100.0, 90.0), row("single", "gslora", 0, 20.0, 9.0),
            row("fewshot", "gslora++", 0, 10.0, 3.0), row("fewshot", "gslora++", 1, 10.0, 3.0),
            row("single", "untouched", 0, 0.0, 0.0)]
    add_time_ratios(rows)
    assert [r["speedup_vs_retrain"] for r in rows] == [None, 5.0, 10.0, None, None]
    assert rows[2]["train_speedup_vs_retrain"] == 30.0
