"""The benchmarks' one interval (bench/stats.py)."""
from __future__ import annotations

import math

import pytest

from bench.stats import interval


def test_t_interval_uses_the_draws_own_degrees_of_freedom() -> None:
    iv = interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert iv["mean"] == 2.0 and iv["std"] == 1.0 and iv["n"] == 3
    assert iv["high"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    # 11 draws: t(0.975, 10) = 2.2281; 41 draws: 2.0211, not the normal 1.96
    for n, t in ((11, 2.228139), (41, 2.021075)):
        values = [float(i % 2) for i in range(n)]
        iv = interval(values)
        assert (iv["high"] - iv["mean"]) * math.sqrt(n) / iv["std"] == pytest.approx(t, rel=1e-5)


def test_one_draw_has_no_interval() -> None:
    iv = interval([0.5])
    assert iv["mean"] == 0.5 and math.isnan(iv["low"]) and math.isnan(iv["high"])
