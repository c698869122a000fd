"""Issue 15: how big may the student be? Cost of wider or deeper backbones, before training one.

A bigger student may distil better, but the default forgetting task must stay <= 30 s on the
2-core CPU and a pretraining epoch must fit the hours one core gives. Both costs depend on the
size, not on what the weights learned, except that GS-LoRA's refit starts at the first block it
kept (fewer blocks to run when the lasso zeroes the early ones). So every size is timed on the
sample gallery with the default recipe as:
- ``random``: a random backbone of that size, its head at the class means;
- and the shipped size also as the shipped recognizer (``shipped``), which calibrates how far
  the random case is from a trained one (measured: the same seconds, 4.5 vs 5 zero groups of 6).
Pretraining cost: seconds per 128-picture step (robust views, distillation loss, backward) on one thread,
scaled to the 10,589-picture epoch.

    python -m bench.student_size --out bench/results/          # ~6 min on 2 cores, run alone
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from gslora_core.config import ForgetConfig, ModelConfig
from gslora_core.data import Gallery, load_gallery_for
from gslora_core.forgetting import forget, plan_task
from gslora_core.model import Recognizer, load_recognizer
from gslora_core.training import from_backbone
from pretraining.augment import robust_views
from pretraining.config import PretrainConfig
from pretraining.pretrain import distill_loss

from .forgetting import forget_sets

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "assets" / "sample_gallery"
SHIPPED = ROOT / "checkpoints" / "sample_recognizer.safetensors"
SIZES = [(192, 6), (192, 8), (256, 6), (256, 8), (384, 6)]  # (width, depth); heads of 64
EPOCH_PICTURES = 10_589  # the robust run's training faces (LFW minus held-out and validation)


def forget_seconds(model: Recognizer, gallery: Gallery, draws: list[list[str]],
                   cfg: ForgetConfig) -> list[dict]:
    """The default task on each draw, each on an untouched copy: wall and training seconds."""
    rows = []
    for names in draws:
        rep = forget(copy.deepcopy(model), gallery, plan_task(model, gallery, names), cfg).report
        rows.append({"forgotten": names, "seconds": rep["seconds"],
                     "train_seconds": rep["train_seconds"], "zero_groups": rep["zero_groups"],
                     "acc_f_after": rep["acc_f_after"], "acc_r_after": rep["acc_r_after"]})
    return rows


def pretrain_step_seconds(mcfg: ModelConfig, steps: int = 4, batch: int = 128) -> float:
    """Median seconds of one distillation step on one thread (after a warm-up step)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = Recognizer(mcfg, [])
    model.train().requires_grad_(True)
    proj = torch.nn.Linear(mcfg.embed_dim, 128, bias=False)
    opt = torch.optim.AdamW(list(model.backbone.parameters()) + list(proj.parameters()), lr=1e-4)
    source = torch.randint(0, 255, (batch, 3, 160, 160), dtype=torch.uint8, generator=gen)
    target = torch.randn(batch, 128, generator=gen)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        x = robust_views(source, mcfg.img_size, 112 / 160, PretrainConfig(), gen)
        loss, _ = distill_loss(proj(model.embed(x)), target, PretrainConfig().relation_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def table_row(r: dict) -> str:
    secs = [d["seconds"] for d in r["draws"]]
    train = [d["train_seconds"] for d in r["draws"]]
    zeros = [d["zero_groups"] for d in r["draws"]]
    step = r.get("step_seconds")
    return (f"| {r['width']}x{r['depth']} | {r['params'] / 1e6:.2f} M | {r['weights']} "
            f"| {statistics.mean(secs):.1f}, {max(secs):.1f} | {statistics.mean(train):.1f} "
            f"| {statistics.mean(zeros):.1f} / {r['depth']} "
            f"| {'' if step is None else f'{step:.2f}'} "
            f"| {'' if step is None else f'{step * EPOCH_PICTURES / 128:.0f}'} |")


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Student sizes ({meta['date']}, {meta['machine']}, {meta['threads']} torch threads for "
             f"forgetting, 1 for pretraining; sample gallery, default recipe, draws "
             f"{meta['draws']}):", "",
             "| student | parameters | backbone | forgetting task s (mean, max) | training s | "
             "zero groups | pretraining s / step | s / epoch (1 thread) |",
             "|---|---|---|---|---|---|---|---|"]
    return "\n".join(lines + [table_row(r) for r in rows]) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results/")
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", nargs="*", default=[f"{w}x{d}" for w, d in SIZES])
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    shipped = load_recognizer(SHIPPED)
    gallery = load_gallery_for(shipped, SAMPLE)
    draws = forget_sets(shipped.class_names, 0.1, a.draws, 0)
    cfg = ForgetConfig()
    rows = [{"width": shipped.cfg.embed_dim, "depth": shipped.cfg.depth, "weights": "shipped",
             "params": sum(p.numel() for p in shipped.backbone.parameters()),
             "draws": forget_seconds(shipped, gallery, draws, cfg)}]
    print(table_row(rows[0]), flush=True)
    for spec in a.sizes:
        width, depth = (int(v) for v in spec.split("x"))
        mcfg = shipped.cfg.sized(width, depth)
        torch.manual_seed(0)
        backbone = Recognizer(mcfg, [], shipped.data_config)
        model = from_backbone(backbone, gallery).eval().requires_grad_(False)
        row = {"width": width, "depth": depth, "weights": "random", "config": mcfg.to_dict(),
               "params": sum(p.numel() for p in model.backbone.parameters()),
               "draws": forget_seconds(model, gallery, draws, cfg)}
        torch.set_num_threads(1)
        row["step_seconds"] = pretrain_step_seconds(mcfg)
        torch.set_num_threads(a.threads)
        rows.append(row)
        print(table_row(row), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "threads": a.threads,
            "draws": a.draws, "forget_config": cfg.to_dict(), "epoch_pictures": EPOCH_PICTURES,
            "command": " ".join(["python -m bench.student_size", *(sys.argv[1:] if argv is None else argv)])}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "student_size.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "student_size.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return {"meta": meta, "rows": rows}


if __name__ == "__main__":
    main()
