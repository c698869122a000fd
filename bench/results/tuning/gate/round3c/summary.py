"""Round 3c's runs in one table: python summary.py RUN [RUN ...] (folders here)."""
import glob
import json
import statistics as st
import sys
from pathlib import Path

HERE = Path(__file__).parent


def line(label: str, rows: list[dict]) -> str:
    gaps = [r["f_gap_low"] for r in rows if r.get("f_gap_low") is not None]
    named = round(sum(r["f_recognized"] * r["f_pictures"] for r in rows))
    return (f"{label:4s} tasks {len(rows):3d} | Acc_f > 0 in {sum(r['acc_f_after'] > 0 for r in rows)}"
            f" | a picture named in {sum(r['f_recognized'] > 0 for r in rows)} ({named} pictures of "
            f"{sum(r['f_pictures'] for r in rows)}) | lowest gap min {min(gaps):.3f} mean "
            f"{st.mean(gaps):.3f} | steps mean {st.mean(r['steps'] for r in rows):.1f} max "
            f"{max(r['steps'] for r in rows)} | blocks max {max(r['blocks_used'] for r in rows)} | "
            f"seconds max {max(r['seconds'] for r in rows):.2f} | Acc_r / kept at tau worst change "
            f"{min(r['acc_r_change'] for r in rows) * 100:.1f} / "
            f"{min(r['r_at_tau_change'] for r in rows) * 100:.1f}")


for run in sys.argv[1:]:
    print(f"== {run}")
    every = []
    for f in sorted(glob.glob(str(HERE / run / "sizes_*.json"))):
        rows = json.load(open(f))["rows"]
        every += rows
        print(line(Path(f).stem.removeprefix("sizes_"), rows))
    print(line("all", every))
