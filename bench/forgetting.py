"""Issue 6: GS-LoRA against its baselines, on one gallery, recognizer, split and machine, in one run.

    python -m bench.forgetting --out bench/results/              # full run, sample gallery
    python -m bench.forgetting --quick --out /tmp/bench          # smoke test (CI): a few minutes

Methods (each starts from the same recognizer):
  untouched  the recognizer as it is (reference)
  gslora     GS-LoRA, the app's default preset ("fast": group lasso, then a refit of the
             chosen blocks)
  gslora++   GS-LoRA++: the "fewshot" preset (K = 4 pictures per identity + prototype term)
  lora       the same as gslora without group sparsity (alpha = 0): the ablation
  full       full fine-tuning with the same losses and schedule (every weight, no LoRA)
  retrain    enroll again from the backbone without the forgotten identities (the gold standard)

Protocols: ``single`` forgets 10 % of the identities once (the paper's 100-10), repeated on
``--repeats`` different draws; ``continual`` runs 4 tasks, each forgetting a new 10 %, reporting
after every task. Every method is measured by the same code (``measure``): Acc_r, Acc_f, Acc_o,
H-Mean, a membership-inference score, wall and training seconds (and their ratio to retrain in
the same run), trainable share, zero-group ratio and peak memory.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from gslora_core.config import PRESETS, ForgetConfig, TrainConfig
from gslora_core.data import Gallery, load_gallery
from gslora_core.forgetting import finetune_forget, forget
from gslora_core.metrics import embed_all, h_mean, mia_score
from gslora_core.model import Recognizer, count_parameters, load_recognizer
from gslora_core.report import task_norms
from gslora_core.training import from_backbone, train_recognizer

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["untouched", "gslora", "gslora++", "lora", "full", "retrain"]
# Full fine-tuning moves every weight: LoRA's lr (1e-2) would wreck the backbone. 1e-4 is the
# backbone's learning rate at enrollment (TrainConfig.from_backbone: 1e-3 x 0.1).
FULL_LR = 1e-4


class PeakMemory:
    """Peak resident memory (CPU, sampled every 5 ms) or peak CUDA allocation during a block."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.peak_mb = self.start_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2 ** 20

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start_mb = torch.cuda.memory_allocated() / 2 ** 20
        else:
            self.start_mb = self.peak_mb = self.rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self.peak_mb = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, self.rss_mb())


@torch.no_grad()
def predict_names(model: Recognizer, images: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """Top-1 identity name per picture and its cosine score (any recognizer, any classes)."""
    emb = embed_all(model, images)
    cos = model.head.cosine(emb.to(model.device)).cpu()
    score, idx = cos.max(1)
    return [model.class_names[i] for i in idx.tolist()], score


def _acc(pred: list[str], truth: list[str], names: set[str]) -> float | None:
    pairs = [(p, t) for p, t in zip(pred, truth) if t in names]
    return sum(p == t for p, t in pairs) / len(pairs) if pairs else None


def measure(model: Recognizer, gallery: Gallery, forget_now: list[str],
            earlier: list[str], seed: int = 0) -> dict:
    """Acc_r / Acc_f / Acc_o by identity name, so a retrained model without the forgotten
    classes is measured exactly like the others; and a label-free membership-inference score.

    The attack tells the forgotten people's training pictures from their held-back ones by the
    recognizer's top cosine score (a confidence attack: it needs no class for them, so it
    applies to retrain too); 0.5 means it cannot tell them apart."""
    truth = [gallery.names[i] for i in gallery.test_y.tolist()]
    pred, test_score = predict_names(model, gallery.test_x)
    gone = set(forget_now) | set(earlier)
    retained = set(gallery.names) - gone
    f_lab = torch.tensor([gallery.names.index(n) for n in forget_now])
    _, train_score = predict_names(model, gallery.train_x[torch.isin(gallery.train_y, f_lab)])
    test_f = test_score[torch.isin(gallery.test_y, f_lab)]
    return {"acc_r": _acc(pred, truth, retained), "acc_f": _acc(pred, truth, set(forget_now)),
            "acc_o": _acc(pred, truth, set(earlier)),
            "mia": mia_score(1 - train_score, 1 - test_f, seed=seed)}


def run_gslora(cfg: ForgetConfig) -> Callable:
    def run(model, gallery, names, ctx) -> tuple[Recognizer, dict]:
        rep = forget(model, gallery, names, cfg)
        return model, {"train_seconds": rep["train_seconds"],
                       "trainable_share": rep["trainable_share"],
                       "zero_group_ratio": rep["zero_group_ratio"], "group_norms": task_norms(rep)}
    return run


def run_full(cfg: ForgetConfig) -> Callable:
    def run(model, gallery, names, ctx) -> tuple[Recognizer, dict]:
        rep = finetune_forget(model, gallery, names, cfg)
        return model, {"train_seconds": rep["train_seconds"],
                       "trainable_share": rep["trainable_share"], "zero_group_ratio": None}
    return run


def run_retrain(train_cfg: TrainConfig) -> Callable:
    """Enroll from the backbone on every identity not forgotten so far (the app's own recipe)."""
    def run(model, gallery, names, ctx) -> tuple[Recognizer, dict]:
        keep = [n for n in model.class_names if n not in set(names)]
        sub = load_gallery(ctx["gallery_dir"], model.cfg.img_size, model.data_config, names=keep)
        new = from_backbone(ctx["backbone"], sub, model.data_config)
        rep = train_recognizer(new, sub, train_cfg)
        return new, {"train_seconds": rep["train_seconds"], "trainable_share": 1.0,
                     "zero_group_ratio": None}
    return run


def run_untouched(model, gallery, names, ctx) -> tuple[Recognizer, dict]:
    return model, {"train_seconds": 0.0, "trainable_share": 0.0, "zero_group_ratio": None}


def methods(quick: bool, only: list[str] | None, steps: int | None = None,
            batch_size: int | None = None) -> dict[str, Callable]:
    """``steps`` / ``batch_size`` replace the default preset's schedule (gslora, lora, full)."""
    scale = 3 if quick else 1  # quick mode: a third of the schedules (a smoke test)

    def shorter(cfg: ForgetConfig) -> ForgetConfig:  # no running evaluations: timed fairly
        return replace(cfg, steps=max(5, cfg.steps // scale), eval_every=0)
    fast, few = (shorter(PRESETS[k]) for k in ("fast", "fewshot"))
    fast = fast.with_overrides(steps=steps, batch_size=batch_size)
    enroll = TrainConfig.from_backbone()
    enroll = replace(enroll, epochs=max(2, enroll.epochs // scale))
    table = {"untouched": run_untouched, "gslora": run_gslora(fast),
             "gslora++": run_gslora(few),
             "lora": run_gslora(replace(fast, alpha=0.0)),
             "full": run_full(replace(fast, lr=FULL_LR)), "retrain": run_retrain(enroll)}
    return {k: v for k, v in table.items() if not only or k in only}


def forget_sets(names: list[str], share: float, count: int, seed: int) -> list[list[str]]:
    """``count`` disjoint draws of ``share`` of the identities (at least one each)."""
    k = max(1, round(share * len(names)))
    if k * count >= len(names):
        raise ValueError(f"{count} draws of {k} identities leave no one to retain")
    order = sorted(names)
    random.Random(seed).shuffle(order)
    return [sorted(order[i * k:(i + 1) * k]) for i in range(count)]


def run_sequence(method: str, fn: Callable, base: Recognizer, gallery: Gallery,
                 tasks: list[list[str]], ctx: dict) -> list[dict]:
    """One method through a sequence of tasks (one task = the single-step protocol)."""
    model = copy.deepcopy(base)
    total = count_parameters(base)
    rows, earlier = [], []
    for t, names in enumerate(tasks, 1):
        before = measure(model, gallery, names, earlier)
        t0 = time.perf_counter()
        with PeakMemory(model.device) as mem:
            model, info = fn(model, gallery, names, ctx)
        seconds = time.perf_counter() - t0
        after = measure(model, gallery, names, earlier)
        drop = (before["acc_f"] or 0.0) - (after["acc_f"] or 0.0)
        row = {"method": method, "task": t, "forgotten": names, "earlier": list(earlier),
               "acc_r_before": before["acc_r"], "acc_f_before": before["acc_f"],
               "mia_before": before["mia"], **after, "drop": drop,
               "h_mean": h_mean(after["acc_r"] or 0.0, drop), "seconds": seconds,
               **info, "total_params": total, "peak_mb": mem.peak_mb,
               "peak_extra_mb": mem.peak_mb - mem.start_mb}
        rows.append(row)
        print(f"  {method:9s} task {t}: Acc_r {row['acc_r']:.3f} Acc_f {row['acc_f']:.3f} "
              f"H {row['h_mean']:.3f} {seconds:.1f} s", flush=True)
        earlier += names
    return rows


def add_time_ratios(rows: list[dict]) -> None:
    """Each row's seconds as a share of retrain's on the same task and draw (same run)."""
    ref = {(r["protocol"], r["draw"], r["task"]): r for r in rows if r["method"] == "retrain"}
    for r in rows:
        rt = ref.get((r["protocol"], r["draw"], r["task"]))
        work = rt is not None and r["method"] != "untouched"  # untouched does nothing
        r["speedup_vs_retrain"] = rt["seconds"] / r["seconds"] if work else None
        r["train_speedup_vs_retrain"] = rt["train_seconds"] / r["train_seconds"] if work else None


def summarise(rows: list[dict]) -> list[dict]:
    """Mean over draws per (protocol, method, task)."""
    keys = ["acc_r", "acc_f", "acc_o", "h_mean", "mia", "mia_before", "seconds", "train_seconds",
            "speedup_vs_retrain", "train_speedup_vs_retrain", "trainable_share",
            "zero_group_ratio", "peak_mb", "peak_extra_mb", "acc_r_before", "acc_f_before"]
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["method"], r["task"]), []).append(r)
    for (protocol, method, task), rs in groups.items():
        mean = {}
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) is not None]
            mean[k] = statistics.fmean(vals) if vals else None
        out.append({"protocol": protocol, "method": method, "task": task, "draws": len(rs), **mean})
    return out


def fmt(v: float | None, pct: bool = True, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


def markdown(summary: list[dict], meta: dict) -> str:
    """The README table: single step, then the continual tasks."""
    head = ("| protocol | method | Acc_r | Acc_f | Acc_o | H-Mean | MIA | seconds | × faster "
            "than retrain | trainable | zero groups | peak MB |\n" + "|---" * 12 + "|")
    lines = [head]
    for s in summary:
        proto = "single" if s["protocol"] == "single" else f"continual T{s['task']}"
        lines.append(
            f"| {proto} | {s['method']} | {fmt(s['acc_r'])} | {fmt(s['acc_f'])} | "
            f"{fmt(s['acc_o'])} | {fmt(s['h_mean'])} | {fmt(s['mia'], False, 2)} | "
            f"{fmt(s['seconds'], False)} | {fmt(s['speedup_vs_retrain'], False)} | "
            f"{fmt(s['trainable_share'])} % | {fmt(s['zero_group_ratio'], True, 0)}"
            f"{'' if s['zero_group_ratio'] is None else ' %'} | {fmt(s['peak_mb'], False, 0)} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], rows: list[dict], out: Path, name: str) -> list[Path]:
    """Acc_r against Acc_f per method, single step (left: mean over draws, bars = min to max)
    and continual (right: one point per task). Most methods forget completely (Acc_f = 0), so
    each method is drawn a little to the side of the others (by at most 2.5 points of Acc_f) to
    keep them visible. Written as HTML (self-contained) and, where Chromium and playwright are
    installed, as PNG."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("Single step (10 % of the people)",
                                        "Continual (4 tasks; labels T1-T4)"))
    colours = dict(zip(METHODS, ["#7f7f7f", "#d62728", "#ff7f0e", "#1f77b4", "#9467bd",
                                 "#2ca02c"]))
    for i, m in enumerate(METHODS):
        dx, c = (i - (len(METHODS) - 1) / 2) * 0.8, colours[m]
        single = [r for r in rows if r["method"] == m and r["protocol"] == "single"]
        mean = [s for s in summary if s["method"] == m and s["protocol"] == "single"]
        if mean:
            ys = [100 * r["acc_r"] for r in single]
            y = 100 * mean[0]["acc_r"]
            fig.add_scatter(x=[100 * mean[0]["acc_f"] + dx], y=[y], mode="markers", name=m,
                            legendgroup=m, marker=dict(color=c, size=14, symbol="diamond",
                                                       line=dict(color="black", width=1)),
                            error_y=dict(type="data", symmetric=False, array=[max(ys) - y],
                                         arrayminus=[y - min(ys)], color=c),
                            hovertemplate=f"{m}<br>Acc_f %{{x:.1f}}<br>Acc_r %{{y:.1f}}",
                            row=1, col=1)
        cont = sorted((s for s in summary if s["method"] == m and s["protocol"] == "continual"),
                      key=lambda s: s["task"])
        if cont:
            fig.add_scatter(x=[100 * s["acc_f"] + dx for s in cont],
                            y=[100 * s["acc_r"] for s in cont], mode="markers+text",
                            text=[f"T{s['task']}" for s in cont], textposition="middle right",
                            textfont=dict(size=9, color=c), name=m, legendgroup=m,
                            showlegend=not mean, marker=dict(color=c, size=9),
                            hovertemplate=f"{m}<br>Acc_f %{{x:.1f}}<br>Acc_r %{{y:.1f}}",
                            row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="Acc_f: forgotten people, % (lower is better)",
                         range=[-6, 104], row=1, col=col)
    fig.update_yaxes(title_text="Acc_r: everyone else, % (higher is better)", row=1, col=1)
    fig.update_layout(title=f"Forgetting on the sample gallery: Acc_r vs Acc_f per method "
                            f"({meta_title(rows)})", template="plotly_white", width=1100,
                      height=560, legend=dict(orientation="h", y=-0.18))
    return write_figure(fig, out / f"{name}_plot", 1100, 560)


def write_figure(fig, stem: Path, width: int, height: int) -> list[Path]:
    """``<stem>.html`` (self-contained) and, where Chromium and playwright are installed, a
    ``<stem>.png`` screenshot of it at ``width`` x ``height``."""
    html, png = stem.with_suffix(".html"), stem.with_suffix(".png")
    fig.write_html(html, include_plotlyjs=True)
    written = [html]
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".main-svg", timeout=30000)
            page.screenshot(path=str(png))
            browser.close()
        written.append(png)
    except Exception as err:  # optional: the HTML is the plot, the PNG a convenience
        print(f"no PNG ({type(err).__name__}: {err}); the HTML has the plot", flush=True)
    return written


def meta_title(rows: list[dict]) -> str:
    draws = len({r["draw"] for r in rows if r["protocol"] == "single"})
    tasks = max((r["task"] for r in rows if r["protocol"] == "continual"), default=0)
    return f"single step: {draws} draw{'s' if draws != 1 else ''}, continual: {tasks} tasks"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gallery", default=str(ROOT / "assets" / "sample_gallery"))
    ap.add_argument("--recognizer", default=str(ROOT / "checkpoints" / "sample_recognizer.safetensors"))
    ap.add_argument("--backbone", default=str(ROOT / "checkpoints" / "backbone.safetensors"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 draw, shorter schedules, "
                    "2 continual tasks")
    ap.add_argument("--repeats", type=int, default=3, help="single-step draws (full mode)")
    ap.add_argument("--tasks", type=int, default=4, help="continual tasks (full mode)")
    ap.add_argument("--share", type=float, default=0.1, help="share of identities per task")
    ap.add_argument("--methods", nargs="*", choices=METHODS, default=None)
    ap.add_argument("--protocols", nargs="*", choices=["single", "continual"],
                    default=["single", "continual"])
    ap.add_argument("--steps", type=int, help="gslora/lora/full steps (default: the preset's)")
    ap.add_argument("--batch-size", type=int, help="gslora/lora/full batch per side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replot", metavar="JSON", help="only redraw the plot of a saved result")
    a = ap.parse_args(argv)
    if a.replot:
        saved = json.loads(Path(a.replot).read_text())
        plot(saved["summary"], saved["rows"], Path(a.replot).parent, Path(a.replot).stem)
        return saved
    torch.set_num_threads(a.threads)
    repeats, n_tasks = (1, 2) if a.quick else (a.repeats, a.tasks)
    base = load_recognizer(a.recognizer)
    if base.tasks:
        raise SystemExit("give a recognizer without forgetting tasks")
    gallery = load_gallery(a.gallery, base.cfg.img_size, base.data_config, names=base.class_names)
    ctx = {"gallery_dir": a.gallery, "backbone": load_recognizer(a.backbone)}
    table = methods(a.quick, a.methods, a.steps, a.batch_size)
    t_start = time.perf_counter()
    rows: list[dict] = []
    plans = []
    if "single" in a.protocols:
        draws = forget_sets(base.class_names, a.share, repeats, a.seed)
        plans += [("single", d, [names]) for d, names in enumerate(draws)]
    if "continual" in a.protocols:
        plans.append(("continual", 0, forget_sets(base.class_names, a.share, n_tasks,
                                                  a.seed + 1000)))
    for protocol, draw, tasks in plans:
        print(f"{protocol} draw {draw}: {tasks}", flush=True)
        for m, fn in table.items():
            for row in run_sequence(m, fn, base, gallery, tasks, ctx):
                rows.append({"protocol": protocol, "draw": draw, **row})
    add_time_ratios(rows)
    summary = summarise(rows)
    meta = {"date": time.strftime("%Y-%m-%d"), "quick": a.quick,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
            "gallery": a.gallery, "recognizer": a.recognizer, "identities": len(base.class_names),
            "train_pictures": len(gallery.train_y), "test_pictures": len(gallery.test_y),
            "share_per_task": a.share, "single_draws": repeats, "continual_tasks": n_tasks,
            "full_finetune_lr": FULL_LR, "configs": {
                "gslora": PRESETS["fast"].with_overrides(steps=a.steps,
                                                         batch_size=a.batch_size).to_dict(),
                "gslora++": PRESETS["fewshot"].to_dict(),
                "retrain": TrainConfig.from_backbone().to_dict()},
            "seconds_total": time.perf_counter() - t_start,
            "command": "python -m bench.forgetting " + " ".join(argv if argv is not None else
                                                                 __import__("sys").argv[1:])}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "forgetting_quick" if a.quick else "forgetting"
    if a.steps or a.batch_size:  # another schedule: its own files, the default's stay
        name += f"_{a.steps or PRESETS['fast'].steps}x{a.batch_size or PRESETS['fast'].batch_size}"
    result = {"meta": meta, "summary": summary, "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(summary, meta))
    files = plot(summary, rows, out, name)
    print(markdown(summary, meta))
    print(f"wrote {out / (name + '.json')} {[str(f) for f in files]} in "
          f"{meta['seconds_total']:.0f} s", flush=True)
    return result


if __name__ == "__main__":
    main()
