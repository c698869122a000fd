"""GS-LoRA against its baselines on the paper's protocols, with intervals (issues 6 and 14).

    python -m bench.forgetting --out bench/results/            # LFW-100, every protocol (~1 h)
    python -m bench.forgetting --gallery sample --out bench/results/   # the 20-person protocol
    python -m bench.forgetting --quick --out /tmp/bench        # smoke test (CI): a few minutes

Galleries: ``lfw100`` (bench/lfw100.py: the 100 LFW people with the most pictures, 40 at most
each, split per file into train / validation / test) and ``sample`` (assets/sample_gallery with
the shipped recognizer: 20 people, no validation pictures).

Methods (each starts from the same recognizer; every one is told who was forgotten before):
  untouched     the recognizer as it is (reference)
  gslora        GS-LoRA, the app's default recipe ("fast": blocks released from the top as the
                task needs them, stopped when its people are forgotten on their training
                pictures)
  lora          dense LoRA: every block from the first step (the "dense" preset), the ablation
  full          full fine-tuning with the same losses and stopping rule (every weight, no LoRA;
                a cap of FULL_STEPS steps: its steps cost a whole backward pass)
  retrain       enroll again from the backbone without the forgotten people (the gold standard),
                one training seed per draw
  gslora-4shot  gslora on K = 4 pictures per person (few-shot protocol)
  gslora++      the same plus the authors' prototype term (the "fewshot" preset)
  gslora-noreplay  gslora without replaying earlier-forgotten people (continual protocol)

Protocols: ``single`` forgets 10 % of the people once (100-10), on ``--draws`` draws;
``fewshot`` the same draws with 4 pictures a person; ``continual`` 4 tasks of 10 % each, on
``--sequences`` draws; ``cost`` times GS-LoRA against retrain at 20, 50 and 100 people.
``--select`` first chooses GS-LoRA++'s prototype weight and bound on the *validation* pictures
(draws of their own); everything reported is measured on the test pictures.

Every method is measured by the same code (``measure``): Acc_r, Acc_f, Acc_o, H-Mean, the
answers at each recognizer's own open-set threshold (forgotten people's held-back pictures
"not recognized" or taken for another person; retained people recognized), and a membership
attack with its power (gslora_core.privacy; its target is retrain's reading).
Means come with standard deviations and 95 % t-intervals over draws.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import random
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from gslora_core.config import PRESETS, ForgetConfig, TrainConfig
from gslora_core.data import Gallery, load_gallery_for
from gslora_core.evaluation import Roles, Snapshot, membership, snapshot
from gslora_core.forgetting import finetune_forget, forget, plan_task
from gslora_core.metrics import accuracy_by_name, h_mean
from gslora_core.model import Recognizer, count_parameters, load_recognizer
from gslora_core.openset import answer
from gslora_core.probes import retrain_without
from gslora_core.report import task_norms

from .galleries import backbone_path
from .stats import interval

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["untouched", "gslora", "lora", "full", "retrain", "gslora-4shot", "gslora++",
           "gslora-noreplay"]
PROTOCOL_METHODS = {
    "single": ["untouched", "gslora", "lora", "full", "retrain"],
    "fewshot": ["gslora-4shot", "gslora++"],
    "continual": ["untouched", "gslora", "gslora-noreplay", "full", "retrain"],
}
# Full fine-tuning moves every weight: LoRA's lr (1e-2) would wreck the backbone. 1e-4 is the
# backbone's learning rate at enrollment (TrainConfig.from_backbone: 1e-3 x 0.1).
FULL_LR = 1e-4
FULL_STEPS = 100
# The smoke test (--quick) runs full fine-tuning's code path, not its result: each of its steps
# is a whole backward pass (2 s on one core), a third of FULL_STEPS took 45-64 s a task.
QUICK_FULL_STEPS = 5
SHOTS = 4
# Few-shot tasks forget the single-step draws' people (the same draws): their untouched and
# retrain rows are the single-step ones, for the time ratios here and bench.paired's pairs.
REFERENCE_PROTOCOL = {"fewshot": "single"}
# GS-LoRA++ candidates (prototype_weight, bnd_pro) tried on validation by --select. The KL of a
# picture to its own 4-shot prototype is ~0.14 on LFW-100, to another class's ~0.8: bounds near 1.
PROTO_GRID = [(1.0, 0.5), (1.0, 1.0), (5.0, 0.5), (5.0, 1.0)]
# The authors' numbers (CASIA-Face100, their backbone): shape to compare with, not level.
ANCHORS = {
    "single": "GS-LoRA H 71.76 (Acc_r 70.81, Acc_f 0); GS-LoRA++ 72.04; FG-OrIU 72.52",
    "fewshot": "4-shot GS-LoRA H 63.61; GS-LoRA++ 69.47",
    "continual": "last task: GS-LoRA H 73.76, GS-LoRA++ 75.23, FG-OrIU 77.71; Acc_o <= 1.93",
}


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


# ------------------------------------------------------------------------------ measuring

@dataclass
class View:
    """One model's answers on the gallery, by name, so a retrained model without the forgotten
    classes is measured exactly like the others. ``snap`` is the engine's own snapshot (passed
    back to the next task as its "before": one pass over the gallery per task)."""

    snap: Snapshot
    test_pred: list[str]  # top-1 name per test picture
    s: float  # the model's head scale (the attack's softmax)
    answers: list[str | None]  # the open-set answer per test picture (None: not recognized)


def view_of(model: Recognizer, snap: Snapshot) -> View:
    tau = model.threshold.tau if model.threshold else float("-inf")
    return View(snap, [model.class_names[i] for i in snap.pred.tolist()], model.head.s,
                [model.class_names[i] if i >= 0 else None
                 for i in answer(snap.test_cos, tau).tolist()])


@torch.no_grad()
def observe(model: Recognizer, gallery: Gallery) -> View:
    return view_of(model, snapshot(model, gallery))


def measure(view: View, gallery: Gallery, forget_now: list[str], earlier: list[str],
            seed: int = 0) -> dict:
    """Acc_r / Acc_f / Acc_o by name, and the engine's membership attack: calibrated on the
    retained people (training pictures = members, test pictures = non-members), read on the
    forgotten-now people's training pictures. Label-free features: it applies to retrain too."""
    truth = [gallery.names[i] for i in gallery.test_y.tolist()]
    gone = set(forget_now) | set(earlier)
    roles = Roles(forgotten=gallery.indices_of(forget_now), earlier=gallery.indices_of(earlier),
                  retained=[c for c, n in enumerate(gallery.names) if n not in gone])
    m = membership(view.snap, gallery, roles, view.s, seed)

    def share(who: set[str], test) -> float | None:
        picked = [(a, t) for a, t in zip(view.answers, truth) if t in who]
        return sum(test(a, t) for a, t in picked) / len(picked) if picked else None

    kept = set(gallery.names) - gone
    return {"f_unknown": share(set(forget_now), lambda a, t: a is None),
            "f_other": share(set(forget_now), lambda a, t: a is not None and a != t),
            "r_at_tau": share(kept, lambda a, t: a == t),
            "acc_r": accuracy_by_name(view.test_pred, truth, kept),
            "acc_f": accuracy_by_name(view.test_pred, truth, set(forget_now)),
            "acc_o": accuracy_by_name(view.test_pred, truth, set(earlier)),
            "mia_member_rate": m["member_rate"],
            "mia_power": (m["power"] or {}).get("auc"), "mia_has_power": m["has_power"]}


# ------------------------------------------------------------------------------- methods

@dataclass
class Method:
    """A way to forget: ``run(model, gallery, names, earlier, ctx) -> (model, info)``."""

    name: str
    run: Callable[..., tuple[Recognizer, dict]]
    config: dict


def gslora(name: str, cfg: ForgetConfig) -> Method:
    def run(model, gallery, names, earlier, ctx):
        plan = plan_task(model, gallery, names, earlier)
        rep, after = forget(model, gallery, plan, replace(cfg, seed=ctx["seed"]),
                            before=ctx.get("before"))
        return model, {"after": after, "train_seconds": rep["train_seconds"],
                       "trainable_share": rep["trainable_share"],
                       "zero_group_ratio": rep["zero_group_ratio"], "group_norms": task_norms(rep),
                       "blocks_used": rep["blocks_used"], "stop": rep["stop"]["reason"],
                       "steps": rep["stop"]["steps"], "earlier_seen": rep["earlier_forgotten"]}
    return Method(name, run, {"engine": "forget", **cfg.to_dict()})


def full(cfg: ForgetConfig) -> Method:
    def run(model, gallery, names, earlier, ctx):
        plan = plan_task(model, gallery, names, earlier if earlier is not None else [])
        rep = finetune_forget(model, gallery, plan, replace(cfg, seed=ctx["seed"]),
                              before=ctx.get("before"))
        return model, {"train_seconds": rep["train_seconds"],
                       "trainable_share": rep["trainable_share"], "zero_group_ratio": None,
                       "stop": (rep["stop"] or {}).get("reason"),
                       "steps": (rep["stop"] or {}).get("steps"),
                       "earlier_seen": rep["earlier_forgotten"]}
    return Method("full", run, {"engine": "finetune_forget", **cfg.to_dict()})


def retrain(train_cfg: TrainConfig) -> Method:
    """Enroll from the backbone on every person not forgotten so far (the app's own recipe, on
    the same pictures in memory; a new training seed per draw)."""
    def run(model, gallery, names, earlier, ctx):
        new = retrain_without(ctx["backbone"], gallery, [*names, *earlier],
                              replace(train_cfg, seed=ctx["seed"]), ctx["data_config"])
        return new.model, {"train_seconds": new.train_seconds, "trainable_share": 1.0,
                           "zero_group_ratio": None, "earlier_seen": sorted(earlier)}
    return Method("retrain", run, {"engine": "probes.retrain_without", **train_cfg.to_dict()})


def untouched() -> Method:
    def run(model, gallery, names, earlier, ctx):
        return model, {"train_seconds": 0.0, "trainable_share": 0.0, "zero_group_ratio": None}
    return Method("untouched", run, {})


def methods(quick: bool, proto: tuple[float, float], steps: int | None = None,
            batch_size: int | None = None) -> dict[str, Method]:
    """Every method with the exact configuration it runs (recorded in the result file).
    ``steps`` / ``batch_size`` replace the default recipe's cap and batch."""
    scale = 3 if quick else 1  # quick mode: a third of the caps and enrollments (a smoke test)
    fast = replace(PRESETS["fast"], eval_every=0, steps=max(5, PRESETS["fast"].steps // scale))
    fast = fast.with_overrides(steps=steps, batch_size=batch_size)
    few = replace(fast, shots=SHOTS)
    fewshot = PRESETS["fewshot"]
    enroll = TrainConfig.from_backbone()
    enroll = replace(enroll, epochs=max(2, enroll.epochs // scale))
    table = [untouched(), gslora("gslora", fast),
             gslora("lora", replace(fast, start_blocks=PRESETS["dense"].start_blocks)),
             full(replace(fast, lr=FULL_LR, steps=QUICK_FULL_STEPS if quick else FULL_STEPS)),
             retrain(enroll),
             gslora("gslora-4shot", few),
             gslora("gslora++", replace(few, prototype_weight=proto[0], bnd_pro=proto[1],
                                        shots=fewshot.shots)),
             gslora("gslora-noreplay", replace(fast, replay_forgotten=0))]
    return {m.name: m for m in table}


def forget_sets(names: list[str], share: float, count: int, seed: int) -> list[list[str]]:
    """``count`` draws of ``share`` of the identities (at least one each): disjoint where they
    fit (10 % x 5 draws), else each drawn on its own (50 % x 3 draws of 100-50)."""
    k = max(1, round(share * len(names)))
    if k >= len(names):
        raise ValueError(f"forgetting {k} of {len(names)} identities leaves no one to retain")
    order = sorted(names)
    if k * count >= len(names):
        return [sorted(random.Random(seed + i).sample(order, k)) for i in range(count)]
    random.Random(seed).shuffle(order)
    return [sorted(order[i * k:(i + 1) * k]) for i in range(count)]


def run_sequence(method: Method, base: Recognizer, base_view: View, gallery: Gallery,
                 tasks: list[list[str]], ctx: dict) -> list[dict]:
    """One method through a sequence of tasks (one task = the single-step protocol). A task's
    "before" is the view after the previous task (the base's for the first)."""
    model = copy.deepcopy(base)
    total = count_parameters(base)
    rows: list[dict] = []
    earlier: list[str] = []
    view = base_view
    for t, names in enumerate(tasks, 1):
        before = measure(view, gallery, names, earlier, ctx["seed"])
        t0 = time.perf_counter()
        with PeakMemory(model.device) as mem:
            model, info = method.run(model, gallery, names, list(earlier),
                                     {**ctx, "before": view.snap})
        seconds = time.perf_counter() - t0
        after_snap = info.pop("after", None)
        if method.name != "untouched":
            view = view_of(model, after_snap) if after_snap else observe(model, gallery)
        after = measure(view, gallery, names, earlier, ctx["seed"])
        drop = (before["acc_f"] or 0.0) - (after["acc_f"] or 0.0)
        row = {"method": method.name, "task": t, "forgotten": names, "earlier": list(earlier),
               "acc_r_before": before["acc_r"], "acc_f_before": before["acc_f"],
               "mia_member_rate_before": before["mia_member_rate"],
               "mia_power_before": before["mia_power"], **after, "drop": drop,
               "h_mean": h_mean(after["acc_r"] or 0.0, drop), "seconds": seconds,
               **info, "total_params": total, "peak_mb": mem.peak_mb,
               "peak_extra_mb": mem.peak_mb - mem.start_mb}
        rows.append(row)
        print(f"  {method.name:15s} task {t}: Acc_r {row['acc_r']:.3f} Acc_f {row['acc_f']:.3f} "
              f"H {row['h_mean']:.3f} {seconds:.1f} s", flush=True)
        earlier += names
    return rows


# ----------------------------------------------------------------------------- statistics

KEYS = ["acc_r", "acc_f", "acc_o", "h_mean", "drop", "f_unknown", "f_other", "r_at_tau",
        "blocks_used", "steps", "mia_member_rate", "mia_power",
        "mia_member_rate_before", "mia_power_before", "seconds", "train_seconds",
        "speedup_vs_retrain", "train_speedup_vs_retrain", "trainable_share", "zero_group_ratio",
        "peak_mb", "acc_r_before", "acc_f_before"]


def add_time_ratios(rows: list[dict]) -> None:
    """Each row's seconds as a share of retrain's on the same task and draw (same run)."""
    ref = {(r["protocol"], r["draw"], r["task"]): r for r in rows if r["method"] == "retrain"}
    for r in rows:
        rt = (ref.get((r["protocol"], r["draw"], r["task"]))
              or ref.get((REFERENCE_PROTOCOL.get(r["protocol"]), r["draw"], r["task"])))
        work = rt is not None and r["method"] not in ("untouched", "retrain")
        r["speedup_vs_retrain"] = rt["seconds"] / r["seconds"] if work else None
        r["train_speedup_vs_retrain"] = rt["train_seconds"] / r["train_seconds"] if work else None


def summarise(rows: list[dict]) -> list[dict]:
    """Per (protocol, method, task): each key's interval over draws."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["method"], r["task"]), []).append(r)
    out = []
    for (protocol, method, task), rs in groups.items():
        stats = {}
        for k in KEYS:
            vals = [float(r[k]) for r in rs if r.get(k) is not None]
            stats[k] = interval(vals) if vals else None
        out.append({"protocol": protocol, "method": method, "task": task, "draws": len(rs),
                    **stats})
    return out


def fmt(st: dict | None, pct: bool = True, digits: int = 1, spread: bool = True) -> str:
    """"mean ± half-width of the 95 % interval" (or the mean alone)."""
    if st is None:
        return "–"
    k = 100 if pct else 1
    text = f"{k * st['mean']:.{digits}f}"
    if spread and st["n"] > 1 and not math.isnan(st["high"]):
        text += f" ± {k * (st['high'] - st['mean']):.{digits}f}"
    return text


def markdown(summary: list[dict], meta: dict) -> str:
    """The README tables: mean ± 95 % half-width over draws, per protocol."""
    head = ("| protocol | method | draws | Acc_r | Acc_f | Acc_o | H-Mean | forgotten: not "
            "recognized | taken for another | retained at τ | blocks used | MIA member rate "
            "(power AUC) | seconds | × faster than retrain | trainable | zero groups |\n"
            + "|---" * 16 + "|")
    lines = [head]
    for s in summary:
        proto = s["protocol"] if s["protocol"] != "continual" else f"continual T{s['task']}"
        mia = "–" if s["mia_member_rate"] is None else (
            f"{fmt(s['mia_member_rate'])} ({fmt(s['mia_power'], False, 2, False)})")
        lines.append(
            f"| {proto} | {s['method']} | {s['draws']} | {fmt(s['acc_r'])} | {fmt(s['acc_f'])} | "
            f"{fmt(s['acc_o'])} | {fmt(s['h_mean'])} | {fmt(s.get('f_unknown'))} | "
            f"{fmt(s.get('f_other'))} | {fmt(s.get('r_at_tau'))} | "
            f"{fmt(s.get('blocks_used'), False)} | {mia} | {fmt(s['seconds'], False)} | "
            f"{fmt(s['speedup_vs_retrain'], False, 1, False)} | "
            f"{fmt(s['trainable_share'], True, 1, False)} % | "
            f"{fmt(s['zero_group_ratio'], True, 0, False)}"
            f"{'' if s['zero_group_ratio'] is None else ' %'} |")
    text = "\n".join(lines) + "\n"
    if meta.get("cost"):
        text += ("\n| people | train pictures | GS-LoRA task s | retrain s | × faster "
                 "| GS-LoRA measuring first s | × faster | GS-LoRA training s | retrain training s "
                 "| × faster (training) |\n" + "|---" * 10 + "|\n")
        for c in meta["cost"]:
            cold = c.get("gslora_cold_seconds")  # absent in files made before it was timed
            cold_x = c.get("cold_speedup")
            text += (f"| {c['people']} | {c['train_pictures']} | {c['gslora_seconds']:.1f} | "
                     f"{c['retrain_seconds']:.1f} | {c['speedup']:.1f} | "
                     f"{'–' if cold is None else f'{cold:.1f}'} | "
                     f"{'–' if cold_x is None else f'{cold_x:.1f}'} | "
                     f"{c['gslora_train_seconds']:.1f} | {c['retrain_train_seconds']:.1f} | "
                     f"{c['train_speedup']:.1f} |\n")
    return text


# ------------------------------------------------------------------------------- plots

def plot(summary: list[dict], rows: list[dict], out: Path, name: str) -> list[Path]:
    """Acc_r against Acc_f per method: single step and few-shot (left: means, bars = 95 %
    interval of Acc_r) and continual (right: one point per task). Methods are drawn a little
    apart on the Acc_f axis (most forget completely). HTML, and PNG where Chromium is."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("One step: 10 % of the people",
                                        "Continual: 4 tasks of 10 % (T1-T4)"))
    palette = ["#7f7f7f", "#d62728", "#1f77b4", "#9467bd", "#2ca02c", "#ff7f0e", "#8c564b",
               "#e377c2", "#17becf"]
    colours = dict(zip(METHODS, palette))
    for i, m in enumerate(METHODS):
        dx, c = (i - (len(METHODS) - 1) / 2) * 0.7, colours[m]
        single = [s for s in summary if s["method"] == m and s["protocol"] in ("single", "fewshot")]
        for s in single:
            y, st = 100 * s["acc_r"]["mean"], s["acc_r"]
            half = 0.0 if st["n"] < 2 else 100 * (st["high"] - st["mean"])
            fig.add_scatter(x=[100 * s["acc_f"]["mean"] + dx], y=[y], mode="markers", name=m,
                            legendgroup=m, marker=dict(color=c, size=13, symbol="diamond",
                                                       line=dict(color="black", width=1)),
                            error_y=dict(type="data", array=[half], color=c),
                            customdata=[100 * s["acc_f"]["mean"]],  # x is drawn apart by dx
                            hovertemplate=f"{m}<br>Acc_f %{{customdata:.1f}}<br>Acc_r %{{y:.1f}}",
                            row=1, col=1)
        cont = sorted((s for s in summary if s["method"] == m and s["protocol"] == "continual"),
                      key=lambda s: s["task"])
        if cont:
            fig.add_scatter(x=[100 * s["acc_f"]["mean"] + dx for s in cont],
                            y=[100 * s["acc_r"]["mean"] for s in cont], mode="markers+text",
                            text=[f"T{s['task']}" for s in cont], textposition="middle right",
                            textfont=dict(size=9, color=c), name=m, legendgroup=m,
                            showlegend=not single, marker=dict(color=c, size=9),
                            customdata=[100 * s["acc_f"]["mean"] for s in cont],
                            hovertemplate=f"{m}<br>Acc_f %{{customdata:.1f}}<br>Acc_r %{{y:.1f}}",
                            row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="Acc_f: forgotten people, % (lower is better)",
                         range=[-6, 104], row=1, col=col)
    fig.update_yaxes(title_text="Acc_r: everyone else, % (higher is better)", row=1, col=1)
    fig.update_layout(title=f"Forgetting on {rows[0]['gallery'] if rows else '?'}: Acc_r vs "
                            "Acc_f (means, bars: 95 % interval; methods drawn up to 3 points "
                            "apart on Acc_f)",
                      template="plotly_white", width=1100, height=560,
                      legend=dict(orientation="h", y=-0.18))
    return write_figure(fig, out / f"{name}_plot", 1100, 560)


def plot_cost(cost: list[dict], out: Path, name: str) -> list[Path]:
    """GS-LoRA's task time against retrain's as the gallery grows (same machine, same run)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    x = [c["people"] for c in cost]
    for key, label, colour in (("gslora_seconds", "GS-LoRA task (wall)", "#d62728"),
                               ("gslora_cold_seconds", "GS-LoRA measuring first (wall)",
                                "#9467bd"),
                               ("retrain_seconds", "retrain (wall)", "#2ca02c"),
                               ("gslora_train_seconds", "GS-LoRA training only", "#ff9896"),
                               ("retrain_train_seconds", "retrain training only", "#98df8a")):
        if any(key not in c for c in cost):
            continue
        fig.add_scatter(x=x, y=[c[key] for c in cost], mode="lines+markers", name=label,
                        line=dict(color=colour, dash="dot" if key.endswith("_train_seconds") else "solid"))
    fig.update_layout(title="Cost as the gallery grows: seconds per forgetting task (2-core CPU)",
                      xaxis_title="people in the gallery", yaxis_title="seconds",
                      template="plotly_white", width=800, height=480)
    return write_figure(fig, out / f"{name}_cost", 800, 480)


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


# --------------------------------------------------------------------------------- runs

def on_validation(method: Method, base: Recognizer, gallery: Gallery, ctx: dict, draws: int,
                  seed: int) -> dict:
    """A candidate's single-step results on the *validation* pictures, on draws of their own
    (never the test draws): mean H-Mean, Acc_f, Acc_r and zero-group share over draws."""
    val = gallery.scored_on("val")
    if "val_view" not in ctx:  # one pass over the gallery for every candidate, not one each
        ctx["val_view"] = observe(base, val)
    view = ctx["val_view"]
    rows = []
    for d, names in enumerate(forget_sets(base.class_names, 0.1, draws, seed + 500)):
        rows += run_sequence(method, base, view, val, [names], {**ctx, "seed": d})
    return {k: interval([float(r[k]) for r in rows if r.get(k) is not None])
            for k in ("h_mean", "acc_f", "acc_r", "zero_group_ratio") if any(
                r.get(k) is not None for r in rows)}


def select_prototype(base: Recognizer, gallery: Gallery, ctx: dict, quick: bool,
                     draws: int, seed: int) -> tuple[tuple[float, float], list[dict]]:
    """Choose GS-LoRA++'s (prototype_weight, bnd_pro) by mean H-Mean on the validation pictures;
    ties go to the smaller weight."""
    tried = []
    for proto in PROTO_GRID:
        res = on_validation(methods(quick, proto)["gslora++"], base, gallery, ctx, draws, seed)
        tried.append({"prototype_weight": proto[0], "bnd_pro": proto[1],
                      "validation_h_mean": res["h_mean"], "validation": res})
    best = max(tried, key=lambda t: (round(t["validation_h_mean"]["mean"], 4),
                                     -t["prototype_weight"]))
    return (best["prototype_weight"], best["bnd_pro"]), tried


def cost_vs_size(gallery: Gallery, ctx: dict, table: dict[str, Method], sizes: list[int],
                 seed: int) -> list[dict]:
    """At each size: enroll a recognizer on that many people (random, seeded), forget 10 % of
    them with GS-LoRA, and retrain without them, timed in the same run. GS-LoRA is timed twice:
    from the enrolled recognizer with the states ``enroll`` keeps beside its checkpoint (its
    "before" costs the top block only: ``gslora_seconds``), and from the recognizer alone,
    measuring the gallery first (``gslora_cold_seconds``)."""
    out = []
    for n in sizes:
        names = sorted(random.Random(seed + n).sample(gallery.names, n))
        sub = gallery.subset(names)
        base = retrain_without(ctx["backbone"], sub, [], data_config=ctx["data_config"]).model
        enrolled = snapshot(base, sub)  # what ``enroll`` measures once and keeps
        gone = forget_sets(names, 0.1, 1, seed + n)[0]
        times = {}
        for m, before in (("gslora", enrolled), ("gslora_cold", None), ("retrain", None)):
            model = copy.deepcopy(base)
            t0 = time.perf_counter()
            _, info = table[m.removesuffix("_cold")].run(model, sub, gone, [],
                                                         {**ctx, "seed": 0, "before": before})
            times[m] = (time.perf_counter() - t0, info["train_seconds"])
        out.append({"people": n, "train_pictures": len(sub.train_y), "forgotten": gone,
                    "gslora_seconds": times["gslora"][0], "retrain_seconds": times["retrain"][0],
                    "gslora_cold_seconds": times["gslora_cold"][0],
                    "gslora_train_seconds": times["gslora"][1],
                    "retrain_train_seconds": times["retrain"][1],
                    "speedup": times["retrain"][0] / times["gslora"][0],
                    "cold_speedup": times["retrain"][0] / times["gslora_cold"][0],
                    "train_speedup": times["retrain"][1] / times["gslora"][1]})
        print(f"cost at {n} people: GS-LoRA {times['gslora'][0]:.1f} s from the kept states, "
              f"{times['gslora_cold'][0]:.1f} s measuring first, retrain "
              f"{times['retrain'][0]:.1f} s", flush=True)
    return out


def load_bench_gallery(name: str, recognizer: str | None) -> tuple[Recognizer, Gallery, str]:
    if name == "lfw100":
        from .lfw100 import load
        model, gallery, folder = load()
        return model, gallery, str(folder)
    path = recognizer or str(ROOT / "checkpoints" / "sample_recognizer.safetensors")
    folder = str(ROOT / "assets" / "sample_gallery")
    model = load_recognizer(path)
    return model, load_gallery_for(model, folder), folder


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gallery", choices=["lfw100", "sample"], default="lfw100")
    ap.add_argument("--recognizer", help="another recognizer for the sample gallery")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--quick", action="store_true", help="smoke test: the sample gallery, 1 "
                    "draw, shorter schedules, 2 continual tasks")
    ap.add_argument("--draws", type=int, default=5, help="single-step / few-shot draws")
    ap.add_argument("--sequences", type=int, default=3, help="continual draws")
    ap.add_argument("--tasks", type=int, default=4, help="continual tasks")
    ap.add_argument("--share", type=float, default=0.1, help="share of identities per task")
    ap.add_argument("--protocols", nargs="*", choices=["single", "fewshot", "continual", "cost"],
                    default=["single", "fewshot", "continual", "cost"])
    ap.add_argument("--methods", nargs="*", choices=METHODS, default=None)
    ap.add_argument("--select", action="store_true",
                    help="choose GS-LoRA++'s weight and bound on the validation pictures first")
    ap.add_argument("--label", default="", help="suffix of the result files' names")
    ap.add_argument("--proto", nargs=2, type=float, metavar=("WEIGHT", "BND_PRO"),
                    help="GS-LoRA++ prototype weight and bound (default: the fewshot preset's)")
    ap.add_argument("--steps", type=int, help="gslora/lora/full steps (default: the preset's)")
    ap.add_argument("--batch-size", type=int, help="gslora/lora/full batch per side")
    ap.add_argument("--sizes", nargs="*", type=int, default=[20, 50, 100])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replot", metavar="JSON", help="only redraw the plots of a saved result")
    return ap


def replot(path: str) -> dict:
    """Redraw a saved result's plots, beside it."""
    saved = json.loads(Path(path).read_text())
    stem = Path(path).stem
    plot(saved["summary"], saved["rows"], Path(path).parent, stem)
    if saved["meta"].get("cost"):
        plot_cost(saved["meta"]["cost"], Path(path).parent, stem)
    return saved


def task_plans(a: argparse.Namespace, names: list[str]) -> list[tuple[str, int, list]]:
    """(protocol, draw, the draw's tasks) for every protocol asked, the draws seeded."""
    plans = []
    draws = forget_sets(names, a.share, a.draws, a.seed)
    for protocol in ("single", "fewshot"):
        if protocol in a.protocols:
            plans += [(protocol, d, [people]) for d, people in enumerate(draws)]
    if "continual" in a.protocols:
        plans += [("continual", d, forget_sets(names, a.share, a.tasks, a.seed + 1000 + d))
                  for d in range(a.sequences)]
    return plans


def run_plans(a: argparse.Namespace, base: Recognizer, gallery: Gallery, ctx: dict,
              table: dict[str, Method]) -> list[dict]:
    """Every method of each protocol on every draw, each from the same untouched recognizer."""
    only = set(a.methods or METHODS)
    base_view = observe(base, gallery)
    rows: list[dict] = []
    for protocol, draw, tasks in task_plans(a, base.class_names):
        print(f"{protocol} draw {draw}: {tasks}", flush=True)
        for m in PROTOCOL_METHODS[protocol]:
            if m not in only:
                continue
            for row in run_sequence(table[m], base, base_view, gallery, tasks,
                                    {**ctx, "seed": draw}):
                rows.append({"protocol": protocol, "draw": draw, "gallery": a.gallery, **row})
    add_time_ratios(rows)
    return rows


def run_meta(a: argparse.Namespace, argv: list[str] | None, base: Recognizer, gallery: Gallery,
             folder: str, table: dict[str, Method], selection: list[dict], cost: list[dict],
             t_start: float) -> dict:
    """What a result file says about its own run: machine, data, exact configs, command."""
    return {"date": time.strftime("%Y-%m-%d"), "quick": a.quick,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
            "gallery": a.gallery, "gallery_folder": folder, "identities": len(base.class_names),
            "train_pictures": len(gallery.train_y), "validation_pictures": len(gallery.val_y),
            "test_pictures": len(gallery.test_y), "scored_on": "test",
            "data_config": base.data_config.to_dict(), "share_per_task": a.share,
            "single_draws": a.draws, "continual_sequences": a.sequences, "continual_tasks": a.tasks,
            "configs": {m: table[m].config for m in table},  # exactly what ran
            "prototype_selection": selection,
            "anchors": ANCHORS, "cost": cost,
            "seconds_total": time.perf_counter() - t_start,
            "command": "python -m bench.forgetting " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:])}


def write_result(a: argparse.Namespace, result: dict) -> None:
    """The result's JSON, its Markdown table and its plots, named by gallery, label and schedule."""
    summary, rows, meta = result["summary"], result["rows"], result["meta"]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = ("forgetting_quick" if a.quick else f"forgetting_{a.gallery}") + (
        f"_{a.label}" if a.label else "")
    if a.steps or a.batch_size:  # another schedule: its own files, the default's stay
        name += f"_{a.steps or PRESETS['fast'].steps}x{a.batch_size or PRESETS['fast'].batch_size}"
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(summary, meta))
    files = plot(summary, rows, out, name) if rows else []
    if meta["cost"]:
        files += plot_cost(meta["cost"], out, name)
    print(markdown(summary, meta))
    print(f"wrote {out / (name + '.json')} {[str(f) for f in files]} in "
          f"{meta['seconds_total']:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> dict:
    a = parser().parse_args(argv)
    if a.replot:
        return replot(a.replot)
    torch.set_num_threads(a.threads)
    if a.quick:
        a.gallery, a.draws, a.sequences, a.tasks = "sample", 1, 1, 2
        a.protocols = [p for p in a.protocols if p != "cost"]
    t_start = time.perf_counter()
    base, gallery, folder = load_bench_gallery(a.gallery, a.recognizer)
    if base.tasks:
        raise SystemExit("give a recognizer without forgetting tasks")
    ctx = {"backbone": load_recognizer(backbone_path()), "data_config": base.data_config, "seed": 0}
    few = PRESETS["fewshot"]
    proto = tuple(a.proto) if a.proto else (few.prototype_weight, few.bnd_pro)
    selection: list[dict] = []
    if a.select:
        proto, selection = select_prototype(base, gallery, ctx, a.quick, max(1, a.draws // 2),
                                            a.seed)
        print(f"chosen on validation: prototype weight {proto[0]}, bound {proto[1]}", flush=True)
    table = methods(a.quick, proto, a.steps, a.batch_size)
    rows = run_plans(a, base, gallery, ctx, table)
    summary = summarise(rows)
    cost = (cost_vs_size(gallery, ctx, table, [n for n in a.sizes if n <= len(gallery.names)],
                         a.seed) if "cost" in a.protocols else [])
    result = {"meta": run_meta(a, argv, base, gallery, folder, table, selection, cost, t_start),
              "summary": summary, "rows": rows}
    write_result(a, result)
    return result


if __name__ == "__main__":
    main()
