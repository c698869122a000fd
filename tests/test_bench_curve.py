"""bench.pretrain_curve: reading a run's history and the slope of its tail."""
from __future__ import annotations

import json

import pytest

from bench.pretrain_curve import curve, tail_slope


def test_curve_reads_scored_epochs_and_the_tail_slope_is_least_squares(tmp_path) -> None:
    rows = [{"epoch": 1, "loss": 1.0}]  # an epoch without validation is skipped
    rows += [{"epoch": e, "loss": 1.0 / e,
              "validation": {"score": 0.8 + 0.01 * e + (0.002 if e % 2 else -0.002),
                             "views": {"clean": 0.9}}} for e in range(2, 12)]
    (tmp_path / "run.json").write_text(json.dumps({"history": rows}))
    pts = curve(tmp_path / "run.json")
    assert [p["epoch"] for p in pts] == list(range(2, 12)) and pts[0]["clean"] == 0.9
    assert tail_slope(pts, last=6) == pytest.approx(0.01, abs=0.002)
    flat = [{"epoch": e, "score": 0.9} for e in range(5)]
    assert tail_slope(flat) == pytest.approx(0.0) and tail_slope(flat[:1]) == 0.0
