"""Forgetting classes of objects (issue 36): the paper's image-classification protocol, scaled to
CIFAR-10, measured by the same code as the face benchmark (``bench.forgetting``).

    python -m bench.objects --out bench/results              # every protocol
    python -m bench.objects --quick --out /tmp/bench          # smoke test: a few minutes

Model: the shipped object classifier (``checkpoints/objects_classifier.safetensors``, made by
``scripts/train_objects.py``). Gallery (``bench.cifar10.gallery``): the first
``--train-per-class`` pictures of each class of CIFAR-10's training part are the task's forget
and retain pools; ``--test-per-class`` of each class of the test part are scored (0: all 10,000);
``--part val`` scores the validation part instead (500 a class cut from the training part, never
trained on), where recipes are chosen.

Protocols: ``single`` forgets each class once (10 draws); ``three`` forgets 3 classes at once
(``--draws`` draws); ``continual`` runs 3 tasks of 2 classes (``--sequences`` draws).
Methods: ``untouched``, ``gslora`` (the app's default recipe), ``lora`` (dense: every block from
the first step), ``full`` (every weight, the same losses and stopping rule, capped).

Retrain is *not run*: without a pretrained backbone, retraining without a class is the
classifier's own training run again (hours on 2 cores). Its reference seconds are the shipped
run's measured training time scaled by the share of classes kept; the "× faster" column says
how many GS-LoRA tasks fit in that time.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from gslora_core.cli import knob_overrides
from gslora_core.config import PRESETS, ForgetConfig
from gslora_core.model import load_recognizer

from .cifar10 import CLASSES, gallery
from .forgetting import (
    forget_sets,
    gslora,
    markdown,
    methods,
    observe,
    run_sequence,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = ROOT / "checkpoints" / "objects_classifier.safetensors"
PROTOCOLS = ["single", "three", "continual"]
METHODS = ["untouched", "gslora", "lora", "full"]
# Comparisons run on request: the default recipe with its forget pictures also pushed to "not
# recognized" (as for faces; ForgetConfig.unknown), where the classes' default is chosen.
EXTRA = ["gslora-unknown"]


def plans(protocols: list[str], draws: int, sequences: int, seed: int) -> list[tuple]:
    """(protocol, draw, tasks) for every run: each class once; 3 at once; 3 tasks of 2."""
    out: list[tuple] = []
    if "single" in protocols:
        out += [("single", d, [[c]]) for d, c in enumerate(CLASSES)]
    if "three" in protocols:
        out += [("three", d, [names]) for d, names in
                enumerate(forget_sets(CLASSES, 0.3, draws, seed + 300))]
    if "continual" in protocols:
        out += [("continual", d, forget_sets(CLASSES, 0.2, 3, seed + 1000 + d))
                for d in range(sequences)]
    return out


def retrain_reference(card: Path) -> dict | None:
    """The shipped classifier's measured training time (its scores file), the reference a
    retrain from scratch would cost."""
    scores = card.with_suffix(".json")
    if not scores.exists():
        return None
    s = json.loads(scores.read_text())
    where = scores.resolve()  # inside the project: recorded from its root, as every result path
    file = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    return {"train_hours": s["train_hours"], "epochs": s["epochs_run"], "file": str(file)}


def add_reference_ratios(rows: list[dict], ref: dict | None) -> None:
    """Each task's seconds against retraining without its classes (and the earlier ones):
    the reference run's seconds x the share of classes kept."""
    for r in rows:
        kept = len(CLASSES) - len(r["forgotten"]) - len(r["earlier"])
        work = ref is not None and r["method"] != "untouched"
        ref_s = ref["train_hours"] * 3600 * kept / len(CLASSES) if ref else None
        r["retrain_reference_seconds"] = ref_s
        r["speedup_vs_retrain"] = ref_s / r["seconds"] if work else None
        r["train_speedup_vs_retrain"] = ref_s / r["train_seconds"] if work else None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classifier", default=str(CLASSIFIER))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--protocols", nargs="*", choices=PROTOCOLS, default=PROTOCOLS)
    ap.add_argument("--methods", nargs="*", choices=METHODS + EXTRA, default=METHODS)
    ap.add_argument("--draws", type=int, default=3, help="draws of 3 classes at once")
    ap.add_argument("--sequences", type=int, default=3, help="continual draws (3 tasks of 2)")
    ap.add_argument("--train-per-class", type=int, default=200,
                    help="training pictures a class in the gallery (forget / retain pools)")
    ap.add_argument("--test-per-class", type=int, default=300,
                    help="pictures a class scored (0: all 1,000)")
    ap.add_argument("--part", choices=["test", "val"], default="test",
                    help="val: score the validation part (where recipes are chosen)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2 single draws, 1 of each other protocol, short caps")
    ap.add_argument("--recipe", nargs="*", default=[], metavar="KNOB=VALUE",
                    help="change the default recipe's knobs (ForgetConfig) for GS-LoRA and its "
                         "variants, e.g. bnd=60 (for choosing on --part val)")
    ap.add_argument("--label", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    base = load_recognizer(a.classifier)
    if base.class_names != CLASSES:
        raise SystemExit(f"{a.classifier} is not a CIFAR-10 classifier: {base.class_names}")
    g = gallery(a.train_per_class, a.test_per_class, a.test_per_class).scored_on(a.part)
    table = methods(a.quick, (0.0, 1.0))
    default = replace(ForgetConfig.from_dict(table["gslora"].config),
                      **knob_overrides(a.recipe, flag="--recipe"))
    table["gslora"] = gslora("gslora", default)
    table["lora"] = gslora("lora", replace(default, start_blocks=PRESETS["dense"].start_blocks))
    table["gslora-unknown"] = gslora("gslora-unknown", replace(default, unknown="on"))
    base_view = observe(base, g)
    todo = plans(a.protocols, a.draws, a.sequences, a.seed)
    if a.quick:
        todo = [p for p in todo if p[0] != "single" or p[1] < 2]
        todo = [p for p in todo if p[0] == "single" or p[1] == 0]
    rows: list[dict] = []
    for protocol, draw, tasks in todo:
        print(f"{protocol} draw {draw}: {tasks}", flush=True)
        for m in a.methods:
            for row in run_sequence(table[m], base, base_view, g, tasks, {"seed": draw}):
                rows.append({"protocol": protocol, "draw": draw, "gallery": "cifar10", **row})
    ref = retrain_reference(Path(a.classifier))
    add_reference_ratios(rows, ref)
    summary = summarise(rows)
    meta = {"date": time.strftime("%Y-%m-%d"), "quick": a.quick,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"{'CUDA' if torch.cuda.is_available() else 'CPU'}",
            "gallery": "cifar10", "classifier": a.classifier, "scored_on": a.part,
            "train_pictures": len(g.train_y), "scored_pictures": len(g.test_y),
            "train_per_class": a.train_per_class, "test_per_class": a.test_per_class,
            "retrain": "not run; reference = the shipped classifier's training time x share "
                       "of classes kept", "retrain_reference": ref,
            "configs": {m: table[m].config for m in a.methods},
            "seconds_total": time.perf_counter() - t_start,
            "command": "python -m bench.objects " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = ("objects_quick" if a.quick else "objects_cifar10") + (f"_{a.part}" if a.part != "test"
                                                                   else "")
    name += f"_{a.label}" if a.label else ""
    result = {"meta": meta, "summary": summary, "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))
    print(f"wrote {out / (name + '.json')} in {meta['seconds_total']:.0f} s", flush=True)
    return result


if __name__ == "__main__":
    main()
