"""Round 4: two validation runs paired task by task (folders under gate/, each with round 3c's
sets A1-E as ``sizes_<set>.json``): python compare.py [BASE] [NEW].

Prints, per run, the tail (tasks with Acc_f > 0, pictures still named, tasks whose lowest gap is
under 0.1 / 0.15), the kept people's worst change, steps, blocks and seconds; then, paired over
the tasks both ran, the lowest gap's change (mean with a bootstrap 95 % interval, and the
Wilcoxon signed-rank test), and how many tasks ran the same steps."""
import glob
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

GATE = Path(__file__).parent.parent
BASE, NEW = (sys.argv[1:3] if len(sys.argv) > 2 else ("round4/default65", "round4/fallback"))


def tasks(run: str) -> dict[tuple, dict]:
    """The run's rows by (set, part, gallery, people, draw, task in its sequence)."""
    out = {}
    for f in sorted(glob.glob(str(GATE / run / "sizes_*.json"))):
        name = Path(f).stem.removeprefix("sizes_")
        for r in json.load(open(f))["rows"]:
            out[(name, r["part"], r["gallery"], r["people"], r["draw"], r["task"])] = r
    return out


def describe(run: str, rows: list[dict]) -> str:
    gaps = np.array([r["f_gap_low"] for r in rows])
    secs = np.array([r["seconds"] for r in rows])
    named = round(sum(r["f_recognized"] * r["f_pictures"] for r in rows))
    return (f"{run}: {len(rows)} tasks | Acc_f > 0 in {sum(r['acc_f_after'] > 0 for r in rows)} "
            f"| pictures named {named} | lowest gap < 0.1 / 0.15 in {(gaps < 0.1).sum()} / "
            f"{(gaps < 0.15).sum()}, min {gaps.min():.3f} mean {gaps.mean():.3f} | Acc_r / kept "
            f"at tau worst change {min(r['acc_r_change'] for r in rows) * 100:.1f} / "
            f"{min(r['r_at_tau_change'] for r in rows) * 100:.1f} | steps mean "
            f"{np.mean([r['steps'] for r in rows]):.1f} max {max(r['steps'] for r in rows)} | "
            f"blocks max {max(r['blocks_used'] for r in rows)} | seconds mean {secs.mean():.2f} "
            f"max {secs.max():.2f}")


base, new = tasks(BASE), tasks(NEW)
both = sorted(set(base) & set(new))
print(describe(BASE, [base[k] for k in both]))
print(describe(NEW, [new[k] for k in both]))
d = np.array([new[k]["f_gap_low"] - base[k]["f_gap_low"] for k in both])
boot = np.random.default_rng(0).choice(d, (4000, len(d))).mean(1)
lo, hi = np.percentile(boot, [2.5, 97.5])
print(f"paired over {len(both)} tasks: lowest gap change {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}], "
      f"Wilcoxon p {stats.wilcoxon(d).pvalue:.1e}; same steps in "
      f"{sum(new[k]['steps'] == base[k]['steps'] for k in both)}; seconds ratio of the sums "
      f"{sum(new[k]['seconds'] for k in both) / sum(base[k]['seconds'] for k in both):.2f}")
