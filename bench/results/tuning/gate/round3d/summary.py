"""Round 3d's runs beside round 3c's default: python summary.py [RUN ...] (folders under gate/).

Per run: tasks with Acc_f > 0, pictures still named, the lowest gap, steps, blocks, and which
tasks missed (set, people, draw): the misses move from task to task between variants."""
import glob
import json
import statistics as st
import sys
from pathlib import Path

GATE = Path(__file__).parent.parent
RUNS = ["round3c/bnd65", "round3d/head_lora", "round3d/jitter_judged", "round3d/jitter_trained",
        "round3d/relax70"]


def rows_of(run: str) -> list[tuple[str, dict]]:
    return [(Path(f).stem.removeprefix("sizes_"), r)
            for f in sorted(glob.glob(str(GATE / run / "sizes_*.json")))
            for r in json.load(open(f))["rows"]]


def line(run: str) -> str:
    rows = rows_of(run)
    if not rows:
        return f"{run}: no results"
    every = [r for _, r in rows]
    named = round(sum(r["f_recognized"] * r["f_pictures"] for r in every))
    misses = [f"{s} {r['people']}-{r['draw']}" for s, r in rows if r["acc_f_after"] > 0]
    return (f"{run}: tasks {len(every)} | Acc_f > 0 in {len(misses)} ({', '.join(misses)}) | "
            f"pictures named {named} of {sum(r['f_pictures'] for r in every)} | lowest gap min "
            f"{min(r['f_gap_low'] for r in every):.3f} mean {st.mean(r['f_gap_low'] for r in every):.3f}"
            f" | steps mean {st.mean(r['steps'] for r in every):.1f} max "
            f"{max(r['steps'] for r in every)} | blocks max {max(r['blocks_used'] for r in every)}"
            f" | Acc_r / kept at tau worst change {min(r['acc_r_change'] for r in every) * 100:.1f}"
            f" / {min(r['r_at_tau_change'] for r in every) * 100:.1f}")


for run in sys.argv[1:] or RUNS:
    print(line(run))
