"""Statistics every benchmark reports with: mean and 95 % Student-t interval over draws.

One function, so every table in bench/results is computed the same way (the quantile from
``scipy.stats.t``, at the draws' own degrees of freedom, not a table that falls back to 1.96)."""
from __future__ import annotations

import math
import statistics

from scipy import stats


def interval(values: list[float], level: float = 0.95) -> dict:
    """Mean, standard deviation and the ``level`` t-interval of the mean over draws (one value:
    no interval, low and high are NaN)."""
    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = (float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n) if n > 1
            else math.nan)
    return {"mean": mean, "std": sd, "low": mean - half, "high": mean + half, "n": n}
