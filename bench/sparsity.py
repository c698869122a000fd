"""Issue 13: does the group lasso select blocks? Zero groups, Acc_f, Acc_r, H-Mean and training
seconds of the default recipe and of the same recipe with alpha = 0, per draw, on several
galleries; the continual protocol; and a sweep of alpha.

    python -m bench.sparsity --out bench/results/                 # everything, ~19 min on 2 cores
    python -m bench.sparsity --quick --out /tmp/bench             # smoke test (CI)
    # an earlier engine's default on the same draws (e.g. the commit before issue 13):
    git worktree add /tmp/prev 4e3bfb9
    python -m bench.sparsity --engine /tmp/prev --label previous --parts single continual \
        --galleries sample --out bench/results/

Galleries (bench/galleries.py): ``sample`` (the app's, 20 unseen people, shipped recognizer),
``unseen`` (20 other people pretraining never saw, enrolled with ``enroll``'s recipe) and the
three validation galleries the recipe was chosen on (bench/galleries.py). Single step: forget
2 of 20 (10 %), ``--draws`` disjoint draws. Continual: 4 tasks of 2 people on the sample
gallery. Sweep: alpha values x 3 draws on the sample gallery. Every row records the exact
configuration that ran; the summary gives mean, standard deviation and a 95 % t-interval.
"""
from __future__ import annotations

import sys

if "--engine" in sys.argv:  # another checkout's engine, imported before ours is
    sys.path.insert(0, sys.argv[sys.argv.index("--engine") + 1])

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import fields, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import gslora_core  # noqa: E402
from gslora_core.config import PRESETS, ForgetConfig  # noqa: E402
from gslora_core.forgetting import forget  # noqa: E402

from .forgetting import forget_sets, write_figure  # noqa: E402
from .galleries import load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [0.0, 0.1, 0.25, 0.4, 0.5, 0.75, 1.0]
# Two-sided 95 % Student t quantiles by degrees of freedom (n - 1).
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def recipes(changes: dict | None = None) -> dict[str, ForgetConfig]:
    """The default preset (no running evaluations: timed fairly) and its alpha = 0 twin, with
    ``changes`` (``--set``) made to both. The quick mode keeps the whole schedule: a shorter one
    would test another recipe."""
    base = replace(PRESETS["fast"], eval_every=0, **(changes or {}))
    return {"default": base, "alpha0": replace(base, alpha=0.0)}


def parse_changes(items: list[str]) -> dict:
    """``["beta=0.3", "steps=40"]`` -> ``{"beta": 0.3, "steps": 40}``, typed as ForgetConfig's
    fields; an unknown name is refused. Typed here, not with gslora_core.cli's flag types: with
    ``--engine`` an earlier checkout's engine is imported, whose cli may have none."""
    defaults = {f.name: f.default for f in fields(ForgetConfig)}
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in defaults or not value:
            raise SystemExit(f"error: --set {item!r}: give NAME=VALUE with a ForgetConfig field")
        default = defaults[key]
        if isinstance(default, bool):
            out[key] = value.lower() in ("1", "true", "yes", "on")
        else:  # shots (default None) is an int
            out[key] = int(value) if default is None else type(default)(value)
    return out


def task_row(rep: dict) -> dict:
    """What one task did: who, which blocks, accuracy before/after, seconds."""
    norms = rep["group_norms"][rep["task_names"].index(rep["task"])]
    return {"forgotten": rep["forgotten"], "earlier": rep["earlier_forgotten"],
            "zero_groups": rep["zero_groups"], "groups": len(norms),
            # not report.blocks_used: --engine may import an engine from before it existed
            "blocks_used": [i + 1 for i, n in enumerate(norms) if n != 0.0],
            "group_norms": norms, "acc_r_before": rep["acc_r_before"],
            "acc_r_after": rep["acc_r_after"], "acc_f_before": rep["acc_f_before"],
            "acc_f_after": rep["acc_f_after"], "acc_o": rep["acc_o"], "h_mean": rep["h_mean"],
            "train_seconds": rep["train_seconds"], "seconds": rep["seconds"]}


def task_key(gallery: str, tasks: list[list[str]], cfg: ForgetConfig) -> str:
    """Identifies a run: gallery, who is forgotten in which order, and the exact configuration."""
    return json.dumps([gallery, tasks, cfg.to_dict()], sort_keys=True)


def run_tasks(model, gallery, tasks: list[list[str]], cfg: ForgetConfig) -> list[dict]:
    """One recipe through a sequence of tasks on a copy of ``model`` (one task: single step)."""
    model = copy.deepcopy(model)
    rows = []
    for t, names in enumerate(tasks, 1):
        row = task_row(forget(model, gallery, names, replace(cfg, seed=cfg.seed + t - 1)))
        rows.append({"task": t, **row})
        print(f"    task {t} {names}: blocks {row['blocks_used']} Acc_f {row['acc_f_after']:.3f} "
              f"Acc_r {row['acc_r_before']:.3f}->{row['acc_r_after']:.3f} "
              f"{row['train_seconds']:.1f} s", flush=True)
    return rows


def interval(values: list[float]) -> dict:
    """Mean, standard deviation and a 95 % t-interval of the mean (None for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": len(values)}
    sd = statistics.stdev(values)
    half = T95.get(len(values) - 1, 1.96) * sd / len(values) ** 0.5
    return {"mean": mean, "std": sd, "ci95": [mean - half, mean + half], "n": len(values)}


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["part"], r["gallery"], r["recipe"], r.get("alpha")) for r in rows},
                  key=str)
    for part, gallery, recipe, alpha in keys:
        rs = [r for r in rows if (r["part"], r["gallery"], r["recipe"], r.get("alpha"))
              == (part, gallery, recipe, alpha)]
        out.append({"part": part, "gallery": gallery, "recipe": recipe, "alpha": alpha,
                    "min_zero_groups": min(r["zero_groups"] for r in rs),
                    "max_acc_f": max(r["acc_f_after"] for r in rs),
                    "max_acc_o": max((r["acc_o"] for r in rs if r["acc_o"] is not None),
                                     default=None),
                    **{k: interval([r[k] for r in rs]) for k in
                       ("zero_groups", "acc_f_after", "acc_r_after", "acc_r_before", "h_mean",
                        "train_seconds")},
                    "acc_r_change": interval([r["acc_r_after"] - r["acc_r_before"] for r in rs])})
    return out


def fmt(iv: dict, pct: bool = True, digits: int = 1) -> str:
    k = 100 if pct else 1
    if iv["ci95"] is None:
        return f"{k * iv['mean']:.{digits}f}"
    lo, hi = iv["ci95"]
    return f"{k * iv['mean']:.{digits}f} [{k * lo:.{digits}f}, {k * hi:.{digits}f}]"


def markdown(rows: list[dict], summary: list[dict]) -> str:
    lines = ["Per draw (single step) or task (continual):", "",
             "| part | gallery | recipe | task | forgotten | blocks used | zero groups | Acc_f | "
             "Acc_r before → after | H-Mean | Acc_o | training s |", "|---" * 12 + "|"]
    for r in rows:
        if r["part"] == "sweep":
            continue
        acc_o = "–" if r["acc_o"] is None else f"{100 * r['acc_o']:.1f}"
        lines.append(
            f"| {r['part']} | {r['gallery']} | {r['recipe']} "
            f"| {r['draw'] if r['part'] == 'single' else r['task']} "
            f"| {', '.join(r['forgotten'])} | {', '.join(map(str, r['blocks_used'])) or 'none'} "
            f"| {r['zero_groups']}/{r['groups']} | {100 * r['acc_f_after']:.1f} "
            f"| {100 * r['acc_r_before']:.1f} → {100 * r['acc_r_after']:.1f} "
            f"| {100 * r['h_mean']:.1f} | {acc_o} "
            f"| {r['train_seconds']:.1f} |")
    lines += ["", "Mean [95 % interval] over draws (or tasks):", "",
              "| part | gallery | recipe | alpha | zero groups (min) | Acc_f (max) | Acc_r change | "
              "H-Mean | training s |", "|---" * 9 + "|"]
    for s in summary:
        lines.append(
            f"| {s['part']} | {s['gallery']} | {s['recipe']} | {'' if s['alpha'] is None else s['alpha']} "
            f"| {fmt(s['zero_groups'], False)} ({s['min_zero_groups']}) "
            f"| {fmt(s['acc_f_after'])} ({100 * s['max_acc_f']:.1f}) "
            f"| {fmt(s['acc_r_change'])} | {fmt(s['h_mean'])} | {fmt(s['train_seconds'], False)} |")
    return "\n".join(lines) + "\n"


def plot_sweep(summary: list[dict], out: Path, name: str) -> list[Path]:
    """The alpha sweep (the page's "How it works" figure) as HTML and, where Chromium and
    playwright are installed, PNG."""
    from demo.plots import alpha_sweep

    fig = alpha_sweep(summary)  # None when the run had no sweep
    if fig is None:
        return []
    return write_figure(fig, out / f"{name}_alpha", 1000, 520)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 draw, sample gallery, 2 continual tasks (default "
                         "recipe only), 3 alpha values")
    ap.add_argument("--parts", nargs="*", choices=["single", "continual", "sweep"],
                    default=["single", "continual", "sweep"])
    ap.add_argument("--galleries", nargs="*", default=["sample", "unseen", "validation",
                                                       "validation2", "validation_unseen"])
    ap.add_argument("--draws", type=int, default=5, help="single-step draws per gallery")
    ap.add_argument("--sweep-draws", type=int, default=3)
    ap.add_argument("--label", default="", help="results name suffix, e.g. 'previous'")
    ap.add_argument("--engine", help="import gslora_core from this checkout instead (a git "
                    "worktree of an earlier commit): its own default preset runs")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="change the recipe (both the default and its alpha = 0 twin), e.g. "
                         "--set beta=0.3: to compare candidates on the validation galleries")
    ap.add_argument("--recipes", nargs="*", choices=["default", "alpha0"],
                    default=["default", "alpha0"], help="which of the two to run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    every = recipes(parse_changes(a.set))
    table = {k: v for k, v in every.items() if k in a.recipes}
    if a.engine:  # an earlier engine: only its default preset, as it was
        table = {"default": every["default"]}
    draws, sweep_draws, n_tasks = (1, 1, 2) if a.quick else (a.draws, a.sweep_draws, 4)
    galleries = ["sample"] if a.quick else a.galleries
    sweep = [0.0, 0.5, 1.0] if a.quick else SWEEP
    rows: list[dict] = []
    # The sweep's alpha 0.5 and 0 on the single step's first draws are the default and alpha0
    # tasks already run (forgetting is seeded): their rows are reused, not run twice.
    done: dict[str, list[dict]] = {}
    t_start = time.perf_counter()
    loaded = {}
    for name in dict.fromkeys(galleries + ["sample"]):
        loaded[name] = load(name)[:2]
    if "single" in a.parts:
        for gname in galleries:
            model, gallery = loaded[gname]
            for d, names in enumerate(forget_sets(model.class_names, 0.1, draws, a.seed)):
                for recipe, cfg in table.items():
                    print(f"single {gname} draw {d} {recipe}", flush=True)
                    got = done[task_key(gname, [names], cfg)] = run_tasks(model, gallery, [names], cfg)
                    for r in got:
                        rows.append({"part": "single", "gallery": gname, "recipe": recipe,
                                     "draw": d, **r, "config": cfg.to_dict()})
    if "continual" in a.parts:
        model, gallery = loaded["sample"]
        tasks = forget_sets(model.class_names, 0.1, n_tasks, a.seed + 1000)
        # The quick mode's continual part runs the default only: alpha0's dense tasks are the
        # slowest (19 s of training each) and its single-step row already shows it touches all.
        for recipe, cfg in {k: v for k, v in table.items()
                            if not a.quick or k == "default"}.items():
            print(f"continual {recipe}", flush=True)
            for r in run_tasks(model, gallery, tasks, cfg):
                rows.append({"part": "continual", "gallery": "sample", "recipe": recipe,
                             "draw": 0, **r, "config": cfg.to_dict()})
    if "sweep" in a.parts and not a.engine:
        model, gallery = loaded["sample"]
        for d, names in enumerate(forget_sets(model.class_names, 0.1, sweep_draws, a.seed)):
            for alpha in sweep:
                cfg = replace(every["default"], alpha=alpha)
                print(f"sweep alpha {alpha} draw {d}", flush=True)
                got = done.get(task_key("sample", [names], cfg)) or run_tasks(model, gallery, [names], cfg)
                for r in got:
                    rows.append({"part": "sweep", "gallery": "sample", "recipe": "default",
                                 "alpha": alpha, "draw": d, **r, "config": cfg.to_dict()})
    summary = summarise(rows)
    meta = {"date": time.strftime("%Y-%m-%d"), "quick": a.quick, "engine": str(
        Path(gslora_core.__file__).parent), "label": a.label or "current",
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
            "seconds_total": time.perf_counter() - t_start,
            "command": "python -m bench.sparsity " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "sparsity_quick" if a.quick else "sparsity"
    if a.label:
        name += f"_{a.label}"
    result = {"meta": meta, "summary": summary, "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(rows, summary))
    files = plot_sweep(summary, out, name)
    print(markdown(rows, summary))
    print(f"wrote {out / (name + '.json')} {[str(f) for f in files]} in "
          f"{meta['seconds_total']:.0f} s", flush=True)
    return result


if __name__ == "__main__":
    main()
