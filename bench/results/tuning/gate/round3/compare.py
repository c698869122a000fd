"""Pair two round-3 runs' validation draws: python compare.py RUN_A RUN_B [-v] (folders here)."""
import glob
import json
import statistics as st
import sys
from pathlib import Path

HERE = Path(__file__).parent
KEYS = ["steps", "blocks_used", "acc_f_after", "acc_r_change", "r_at_tau_change"]


def rows(run: str) -> dict:
    out = {}
    for f in sorted(glob.glob(str(HERE / run / "sizes_*.json"))):
        for r in json.load(open(f))["rows"]:
            out[(r["part"], r["gallery"], r["people"], r["draw"], r["task"])] = r
    return out


def main(a: dict, b: dict, verbose: bool) -> None:
    same = 0
    for k in sorted(set(a) & set(b)):
        ra, rb = a[k], b[k]
        gap = abs((ra.get("f_gap_low") or 0) - (rb.get("f_gap_low") or 0))
        diff = any(ra[x] != rb[x] for x in KEYS) or gap > 1e-4
        same += not diff
        if diff or verbose:
            print(k, " | ".join(f"{x} {ra.get(x)!s:.6}->{rb.get(x)!s:.6}"
                                for x in KEYS + ["f_gap_low", "seconds"]))
    print(f"{same}/{len(set(a) & set(b))} identical (steps, blocks, accuracies, lowest gap)")
    for label, r in (("A", a), ("B", b)):
        gaps = [v["f_gap_low"] for v in r.values() if v.get("f_gap_low") is not None]
        steps = [v["steps"] for v in r.values()]
        print(label, f"lowest gap mean {st.mean(gaps):.3f}, under 0.15: {sum(g < 0.15 for g in gaps)}"
              f", under 0.2: {sum(g < 0.2 for g in gaps)} of {len(gaps)}; steps mean "
              f"{st.mean(steps):.1f} max {max(steps)}")


if __name__ == "__main__":
    main(rows(sys.argv[1]), rows(sys.argv[2]), "-v" in sys.argv)
