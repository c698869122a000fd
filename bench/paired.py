"""Paired differences between methods of a ``bench.forgetting`` results file.

Why: two methods measured on the same draws (same people forgotten, same split) differ by much
less than their own spreads; the interval of the *per-draw difference* is what says whether one
is better (issue 9: "judge met on the interval"). Every paired number the README quotes comes
from the file this writes, not from a one-off script.

    python -m bench.paired bench/results/forgetting_lfw100.json
    python -m bench.paired bench/results/forgetting_lfw100_tuned.json \
        --with bench/results/forgetting_lfw100.json      # retrain's rows from the first run

writes ``<results>_paired.json`` and ``.md`` beside the results file (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.forgetting import REFERENCE_PROTOCOL
from bench.stats import interval

# (metric, reference method): every other method is compared with the reference on this metric.
AGAINST = [("acc_r", "untouched"), ("h_mean", "retrain"), ("mia_member_rate", "retrain"),
           ("acc_f", "retrain")]
# Extra pairs of two named methods (metric, method, reference).
EXTRA = [("h_mean", "gslora++", "gslora-4shot"), ("acc_f", "gslora++", "gslora-4shot")]


def key_rows(rows: list[dict]) -> dict[tuple, dict]:
    """(protocol, method, draw, task) -> row."""
    return {(r["protocol"], r["method"], r["draw"], r["task"]): r for r in rows}


def pair(rows: dict[tuple, dict], protocol: str, task: int, metric: str, method: str,
         against: str) -> dict | None:
    """The interval of ``metric(method) - metric(against)`` over the draws both have."""
    ref_protocol = protocol if any(k[:2] == (protocol, against) for k in rows) \
        else REFERENCE_PROTOCOL.get(protocol, protocol)
    diffs, draws = [], []
    for (p, m, d, t), r in sorted(rows.items(), key=lambda kv: kv[0][2]):
        if (p, m, t) != (protocol, method, task) or r.get(metric) is None:
            continue
        ref = rows.get((ref_protocol, against, d, t))
        if ref is None or ref.get(metric) is None:
            continue
        diffs.append(float(r[metric]) - float(ref[metric]))
        draws.append(d)
    if not diffs:
        return None
    return {"protocol": protocol, "task": task, "metric": metric, "method": method,
            "against": against, "draws": draws, "differences": diffs, **interval(diffs)}


def paired(rows: list[dict]) -> list[dict]:
    """Every AGAINST and EXTRA comparison the rows allow, per protocol and task."""
    table = key_rows(rows)
    cells = sorted({(p, m, t) for p, m, _, t in table})
    out = []
    for protocol, method, task in cells:
        for metric, against in AGAINST:
            if method not in (against, "untouched", "retrain"):
                res = pair(table, protocol, task, metric, method, against)
                if res:
                    out.append(res)
    for metric, method, against in EXTRA:
        for protocol, m, task in cells:
            if m == method:
                res = pair(table, protocol, task, metric, method, against)
                if res:
                    out.append(res)
    return out


def markdown(results: list[dict], source: str) -> str:
    lines = [f"Paired differences (per draw, then mean and 95 % t-interval over draws), points; "
             f"from `{source}`:", "",
             "| protocol | task | metric | method − reference | draws | mean | 95 % interval |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lo, hi = 100 * r["low"], 100 * r["high"]
        iv = "–" if r["n"] < 2 else f"[{lo:+.1f}, {hi:+.1f}]"
        lines.append(f"| {r['protocol']} | {r['task']} | {r['metric']} | {r['method']} − "
                     f"{r['against']} | {r['n']} | {100 * r['mean']:+.1f} | {iv} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="a bench.forgetting results JSON (with its per-draw rows)")
    ap.add_argument("--with", dest="also", nargs="*", default=[],
                    help="other results files of the same draws whose methods the first lacks "
                         "(e.g. the first run's retrain for a tuned run)")
    ap.add_argument("--out", help="output stem (default: <results>_paired)")
    a = ap.parse_args(argv)
    src = Path(a.results)
    rows = json.loads(src.read_text())["rows"]
    have = {r["method"] for r in rows}
    for f in a.also:
        rows += [r for r in json.loads(Path(f).read_text())["rows"] if r["method"] not in have]
    results = paired(rows)
    stem = Path(a.out) if a.out else src.with_name(src.stem + "_paired")
    stem.with_suffix(".json").write_text(json.dumps(
        {"source": str(src), "with": a.also, "pairs": results}, indent=1))
    stem.with_suffix(".md").write_text(markdown(results, str(src)))
    print(markdown(results, str(src)))
    return results


if __name__ == "__main__":
    main()
