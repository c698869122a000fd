"""Issue 33: one default recipe for every task size. How many blocks a task needs, whether its
people are gone (and come out "not recognized", not as someone else), what the others keep, and
what it costs, as the task grows; the same draws with the dense recipe (every block from the
start) beside it.

    python -m bench.sizes --out bench/results/                       # everything (~25 min)
    python -m bench.sizes --parts sample --galleries validation validation2 \\
        --label validation --out bench/results/                      # choosing a recipe
    python -m bench.sizes --quick --out /tmp/bench                   # smoke test (CI)

Parts:
  sample      forget k of a 20-person gallery at once, k = 2, 6, 10 (10, 30, 50 %), --draws
              draws each, default and dense; on the report galleries (the app's sample, and
              ``unseen``) or, with --galleries, the validation galleries a recipe is chosen on
  continual   4 tasks of 2 people on the sample gallery (the default), Acc_o after each
  lfw         LFW-100 (bench/lfw100.py): forget 1, 2, 5, 10, 20, 50 of 100 at once, the
              default: the "blocks used and Acc_f against task size" figure of the page

Each task starts from the gallery's snapshot as the app keeps it (the "before" of a task is the
state the previous one left), so ``seconds`` is what a visitor waits for. Every row records the
exact configuration; the summary gives means with 95 % t-intervals over draws.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from gslora_core.cli import knob_overrides
from gslora_core.config import PRESETS, ForgetConfig
from gslora_core.evaluation import snapshot
from gslora_core.forgetting import forget, plan_task
from gslora_core.openset import own_and_other

from .forgetting import write_figure
from .stats import interval

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SIZES = [2, 6, 10]
LFW_SIZES = [1, 2, 5, 10, 20, 50]
KEYS = ["acc_r_change", "acc_f_after", "h_mean", "blocks_used", "seconds", "train_seconds",
        "steps", "f_unknown", "f_other", "r_at_tau_change", "r_at_tau_gap"]


def recipes() -> dict[str, ForgetConfig]:
    """The default and its dense twin, timed fairly (no live evaluation)."""
    base = replace(PRESETS["fast"], eval_every=0)
    return {"default": base, "dense": replace(PRESETS["dense"], eval_every=0)}


def task_row(rep: dict) -> dict:
    """What one task did, from its report."""
    o = rep["open_set"]
    f, r = o["forgotten"]["after"], o["retained"]
    return {"forgotten": rep["forgotten"], "earlier": rep["earlier_forgotten"],
            "blocks_used": rep["blocks_used"], "zero_groups": rep["zero_groups"],
            "group_norms": rep["group_norms"][rep["task_names"].index(rep["task"])],
            "stop": rep["stop"]["reason"], "stop_text": rep["stop"]["text"],
            "steps": rep["stop"]["steps"],
            "acc_r_before": rep["acc_r_before"], "acc_r_after": rep["acc_r_after"],
            "acc_r_change": rep["acc_r_after"] - rep["acc_r_before"],
            "acc_f_before": rep["acc_f_before"], "acc_f_after": rep["acc_f_after"],
            "acc_o": rep["acc_o_after"], "h_mean": rep["h_mean"], "threshold": o["threshold"],
            "f_unknown": f["unknown"], "f_other": f["other"], "f_recognized": f["recognized"],
            "f_pictures": f["pictures"],
            "r_at_tau_before": r["before"]["recognized"], "r_at_tau": r["after"]["recognized"],
            "r_at_tau_change": r["after"]["recognized"] - r["before"]["recognized"],
            # retained recognized at the threshold, against Acc_r (the target: within 2 points)
            "r_at_tau_gap": r["after"]["recognized"] - rep["acc_r_after"],
            "seconds": rep["seconds"], "train_seconds": rep["train_seconds"],
            "before_seconds": rep["before_seconds"]}


def run_tasks(model, gallery, before, tasks: list[list[str]], cfg: ForgetConfig) -> list[dict]:
    """One recipe through a sequence of tasks on a copy of ``model``, each task's "before"
    the previous one's "after" (one task: a single step)."""
    model = copy.deepcopy(model)
    rows = []
    for t, names in enumerate(tasks, 1):
        t0 = time.perf_counter()
        rep, before = forget(model, gallery, plan_task(model, gallery, names),
                             replace(cfg, seed=cfg.seed + t - 1), before=before)
        wall = time.perf_counter() - t0
        row = {"task": t, "wall_seconds": wall, **task_row(rep),
               "f_gap_low": lowest_gap(before, gallery, rep["forgotten"])}
        rows.append(row)
        print(f"    task {t} ({len(names)} people): {row['stop']} after {row['steps']} steps, "
              f"blocks {row['blocks_used']}, Acc_f {row['acc_f_after']:.3f}, Acc_r "
              f"{row['acc_r_before']:.3f}->{row['acc_r_after']:.3f}, unknown "
              f"{row['f_unknown']:.2f} other {row['f_other']:.2f}, {wall:.1f} s", flush=True)
    return rows


def lowest_gap(snap, gallery, names: list[str]) -> float | None:
    """Of the forgotten people's held-back pictures, the lowest best-other minus own cosine:
    how near the closest one is to being named as itself again (below 0, it is: top-1 Acc_f
    counts it). Acc_f is 0 on validation draws even where the test draws miss by one picture,
    so a recipe's push is chosen on this margin instead."""
    classes = torch.tensor([gallery.names.index(n) for n in names])
    mask = torch.isin(gallery.test_y, classes)
    if not bool(mask.any()):
        return None
    own, other = own_and_other(snap.test_cos[mask], gallery.test_y[mask])
    return float((other - own).min())


def draws_of(names: list[str], k: int, count: int, seed: int) -> list[list[str]]:
    """``count`` seeded draws of ``k`` people (each draw on its own)."""
    return [sorted(random.Random(seed * 1000 + k * 10 + d).sample(names, k)) for d in range(count)]


def load_gallery_named(name: str):
    if name == "lfw100":
        from .lfw100 import load
        model, gallery, _ = load()
    else:
        from .galleries import load
        model, gallery, _ = load(name)
    return model, gallery


def summarise(rows: list[dict]) -> list[dict]:
    """Per (part, gallery, recipe, people): each key's interval over draws, and the worst
    draw of the targets judged per draw."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["part"], r["gallery"], r["recipe"], r["people"], r["task"]),
                          []).append(r)
    out = []
    for (part, gallery, recipe, people, task), rs in groups.items():
        out.append({"part": part, "gallery": gallery, "recipe": recipe, "people": people,
                    "task": task, "draws": len(rs),
                    "max_acc_f": max(r["acc_f_after"] for r in rs),
                    "max_acc_o": max((r["acc_o"] for r in rs if r["acc_o"] is not None),
                                     default=None),
                    "min_zero_groups": min(r["zero_groups"] for r in rs),
                    "done": sum(r["stop"] == "done" for r in rs),
                    **{k: interval([float(r[k]) for r in rs]) for k in KEYS}})
    return out


def fmt(st: dict, k: float = 100, digits: int = 1) -> str:
    text = f"{k * st['mean']:.{digits}f}"
    if st["n"] > 1 and st["high"] == st["high"]:  # not NaN
        text += f" [{k * st['low']:.{digits}f}, {k * st['high']:.{digits}f}]"
    return text


def markdown(rows: list[dict], summary: list[dict]) -> str:
    lines = ["Mean [95 % t-interval] over draws; Acc_f (max) and zero groups (min) are the worst "
             "draw.", "",
             "| part | gallery | recipe | people | task | draws | blocks used | zero groups (min) "
             "| Acc_f (max) | Acc_r change | retained at τ − Acc_r | forgotten: not recognized "
             "| taken for another | Acc_o (max) | H-Mean | steps | seconds | done |",
             "|---" * 18 + "|"]
    for s in summary:
        acc_o = "–" if s["max_acc_o"] is None else f"{100 * s['max_acc_o']:.1f}"
        lines.append(
            f"| {s['part']} | {s['gallery']} | {s['recipe']} | {s['people']} | {s['task']} "
            f"| {s['draws']} | {fmt(s['blocks_used'], 1)} | {s['min_zero_groups']} "
            f"| {fmt(s['acc_f_after'])} ({100 * s['max_acc_f']:.1f}) | {fmt(s['acc_r_change'])} "
            f"| {fmt(s['r_at_tau_gap'])} | {fmt(s['f_unknown'])} | {fmt(s['f_other'])} "
            f"| {acc_o} | {fmt(s['h_mean'])} | {fmt(s['steps'], 1, 0)} "
            f"| {fmt(s['seconds'], 1, 2)} | {s['done']}/{s['draws']} |")
    lines += ["", "Per draw:", "",
              "| part | gallery | recipe | people | draw | task | blocks | stop | steps | Acc_f "
              "| Acc_r before → after | not recognized / other | retained at τ | seconds |",
              "|---" * 14 + "|"]
    for r in rows:
        lines.append(
            f"| {r['part']} | {r['gallery']} | {r['recipe']} | {r['people']} | {r['draw']} "
            f"| {r['task']} | {r['blocks_used']} | {r['stop']} | {r['steps']} "
            f"| {100 * r['acc_f_after']:.1f} | {100 * r['acc_r_before']:.1f} → "
            f"{100 * r['acc_r_after']:.1f} | {100 * r['f_unknown']:.0f} / "
            f"{100 * r['f_other']:.0f} | {100 * r['r_at_tau']:.1f} | {r['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], rows: list[dict], out: Path, name: str) -> list[Path]:
    """The page's figure: blocks used and Acc_f against task size (HTML, and PNG where
    Chromium is)."""
    from demo.plots import task_size_figure

    fig = task_size_figure(summary, rows)
    return write_figure(fig, out / f"{name}_plot", 1000, 520) if fig is not None else []


def paired(files: list[str], out: Path) -> list[dict]:
    """Default against dense on the same draws (single-step rows of two result files, matched
    by gallery, size and draw): per (gallery, size) the interval of the per-draw differences."""
    rows = [r for f in files for r in json.loads(Path(f).read_text())["rows"]
            if r["task"] == 1 and r["part"] in ("sample", "lfw")]
    by = {(r["gallery"], r["people"], r["draw"], r["recipe"]): r for r in rows}
    result = []
    for gallery, people in sorted({(r["gallery"], r["people"]) for r in rows}):
        draws = sorted(d for g, k, d, rec in by if (g, k, rec) == (gallery, people, "dense")
                       and (g, k, d, "default") in by)
        if not draws:
            continue
        pair = [(by[(gallery, people, d, "default")], by[(gallery, people, d, "dense")])
                for d in draws]
        result.append({"gallery": gallery, "people": people, "draws": draws, **{
            f"{k}_default_minus_dense": interval([float(a[k]) - float(b[k]) for a, b in pair])
            for k in ("h_mean", "acc_r_after", "acc_f_after", "seconds")}})
    lines = ["Default − dense on the same draws (mean [95 % t-interval] of per-draw differences):",
             "", "| gallery | people | draws | H-Mean | Acc_r | Acc_f | seconds |", "|---" * 7 + "|"]
    for p in result:
        lines.append(f"| {p['gallery']} | {p['people']} | {len(p['draws'])} "
                     f"| {fmt(p['h_mean_default_minus_dense'])} "
                     f"| {fmt(p['acc_r_after_default_minus_dense'])} "
                     f"| {fmt(p['acc_f_after_default_minus_dense'])} "
                     f"| {fmt(p['seconds_default_minus_dense'], 1, 2)} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sizes_paired.json").write_text(json.dumps({"files": files, "pairs": result},
                                                      indent=1) + "\n")
    (out / "sizes_paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: the sample gallery, 1 draw of 2 and 6 people, 2 "
                         "continual tasks, no LFW-100")
    ap.add_argument("--parts", nargs="*", choices=["sample", "continual", "lfw", "lfw-continual"],
                    default=["sample", "continual", "lfw"])
    ap.add_argument("--galleries", nargs="*", default=["sample", "unseen"],
                    help="20-person galleries of the sample part (bench/galleries.py)")
    ap.add_argument("--draws", type=int, default=5, help="draws per size (sample part)")
    ap.add_argument("--sizes", nargs="*", type=int, default=SAMPLE_SIZES,
                    help="people forgotten at once (sample part)")
    ap.add_argument("--lfw-draws", type=int, default=2, help="draws per size (lfw part)")
    ap.add_argument("--lfw-sizes", nargs="*", type=int, default=LFW_SIZES,
                    help="people forgotten at once (lfw part)")
    ap.add_argument("--recipes", nargs="*", default=["default", "dense"])
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="change both recipes, e.g. --set keep=50 (choosing on validation)")
    ap.add_argument("--label", default="", help="results name suffix")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scored-on", choices=["test", "val"], default="test",
                    help="val: score on the galleries' validation pictures (LFW-100 has them),"
                         " where a recipe is chosen; test: report")
    ap.add_argument("--pair", nargs="+", metavar="JSON",
                    help="only compare default and dense on the same draws in these result files")
    return ap


def task_plans(a: argparse.Namespace, recipe_names: list[str]) -> list[tuple]:
    """(part, gallery, people, draw, tasks, recipes) for every part asked, the draws seeded."""
    plans: list[tuple] = []
    if "sample" in a.parts:
        sizes = [2, 6] if a.quick else a.sizes
        plans += [("sample", g, k, d, [names], recipe_names)
                  for g in a.galleries for k in sizes
                  for d, names in enumerate(draws_of(load_names(g), k, a.draws, a.seed))]
    if "continual" in a.parts:
        names = load_names("sample")
        order = random.Random(a.seed + 7).sample(names, 8 if not a.quick else 4)
        tasks = [sorted(order[i:i + 2]) for i in range(0, len(order), 2)]
        plans.append(("continual", "sample", 2, 0, tasks, ["default"]))
    if "lfw-continual" in a.parts:  # the paper's 4 x 10 on LFW-100, one sequence per draw
        names = load_names("lfw100")
        for d in range(a.lfw_draws):
            order = random.Random(a.seed * 1000 + 400 + d).sample(names, 40)
            plans.append(("lfw-continual", "lfw100", 10, d,
                          [sorted(order[i:i + 10]) for i in range(0, 40, 10)], ["default"]))
    if "lfw" in a.parts:
        names = load_names("lfw100")
        plans += [("lfw", "lfw100", k, d, [ns], ["default"]) for k in a.lfw_sizes
                  for d, ns in enumerate(draws_of(names, k, a.lfw_draws, a.seed))]
    return plans


def run_plans(plans: list[tuple], table: dict[str, ForgetConfig],
              scored_on: str = "test") -> list[dict]:
    """Every plan's tasks with each of its recipes, from the gallery's kept snapshot (one
    gallery in memory at a time), scored on its ``scored_on`` pictures."""
    rows: list[dict] = []
    loaded: dict = {}
    for part, gname, k, d, tasks, which in plans:
        if gname not in loaded:
            loaded.clear()
            model, gallery = load_gallery_named(gname)
            gallery = gallery.scored_on(scored_on)
            loaded[gname] = (model, gallery, snapshot(model, gallery))
        model, gallery, before = loaded[gname]
        for recipe in which:
            print(f"{part} {gname} {recipe}: draw {d}, {tasks}", flush=True)
            for row in run_tasks(model, gallery, before, tasks, table[recipe]):
                rows.append({"part": part, "gallery": gname, "recipe": recipe, "people": k,
                             "draw": d, "config": table[recipe].to_dict(), **row})
    return rows


def write_result(a: argparse.Namespace, result: dict) -> None:
    """The result's JSON, its Markdown tables and its plot."""
    rows, summary, meta = result["rows"], result["summary"], result["meta"]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = ("sizes_quick" if a.quick else "sizes") + (f"_{a.label}" if a.label else "")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(rows, summary))
    files = plot(summary, rows, out, name)
    print(markdown(rows, summary).split("\n\nPer draw")[0])
    print(f"wrote {out / (name + '.json')} {[str(f) for f in files]} in "
          f"{meta['seconds_total']:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> dict:
    a = parser().parse_args(argv)
    if a.pair:
        return {"pairs": paired(a.pair, Path(a.out))}
    torch.set_num_threads(a.threads)
    if a.quick:
        a.galleries, a.draws, a.parts = ["sample"], 1, ["sample", "continual"]
    changes = knob_overrides(a.set)
    table = {k: replace(v, **changes) for k, v in recipes().items() if k in a.recipes}
    t_start = time.perf_counter()
    rows = run_plans(task_plans(a, list(table)), table, a.scored_on)
    meta = {"date": time.strftime("%Y-%m-%d"), "quick": a.quick,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"{'CUDA' if torch.cuda.is_available() else 'CPU'}",
            "scored_on": a.scored_on, "seconds_total": time.perf_counter() - t_start,
            "configs": {k: v.to_dict() for k, v in table.items()},
            "command": "python -m bench.sizes " + " ".join(argv if argv is not None
                                                           else sys.argv[1:])}
    result = {"meta": meta, "summary": summarise(rows), "rows": rows}
    write_result(a, result)
    return result


def load_names(gallery: str) -> list[str]:
    """The people of a bench gallery, without loading its pictures (the recognizer's classes)."""
    from gslora_core.model import read_metadata

    if gallery == "lfw100":  # planning needs no recognizer (building it takes minutes)
        from .lfw100 import people
        return people()
    from .galleries import gallery_files
    _, ckpt = gallery_files(gallery)
    return list(read_metadata(ckpt)["class_names"])


if __name__ == "__main__":
    main()
