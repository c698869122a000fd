# Frozen: a record of what ran at commit 0f6f1a3 (2026-12-05), kept beside its logs; only its layout
# changed since (ruff checks every Python file). It does not run on today's engine:
# forgetting.forget_task is now forget, which takes a plan.
# To run it again: git worktree add /tmp/at-0f6f1a3 0f6f1a3, then run it from there.
"""Why forgetting "cat" runs long: the stopping rule's progress on the shipped classifier
(200 training pictures a class, validation part scored). Prints every full check.

    python bench/results/tuning/objects_rule/cat.py [KNOB=VALUE ...] [--class cat] [--per 200]
"""
import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))
from bench.cifar10 import gallery  # noqa: E402
from bench.objects import recipe  # noqa: E402
from gslora_core.config import ForgetConfig  # noqa: E402
from gslora_core.forgetting import forget_task  # noqa: E402
from gslora_core.model import load_recognizer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("knobs", nargs="*")
ap.add_argument("--cls", default="cat")
ap.add_argument("--per", type=int, default=200)
a = ap.parse_args()
torch.set_num_threads(2)
model = load_recognizer(ROOT / "checkpoints/objects_classifier.safetensors")
g = gallery(a.per, 300, 300).scored_on("val")
cfg = replace(ForgetConfig(eval_every=0), **recipe(a.knobs))
t = time.perf_counter()


def show(p):
    if p.get("full"):
        print(f"step {p['step']:4d} blocks {p['blocks']} left {p['pictures_left']:4d} "
              f"{p['seconds']:6.1f} s" + (f" released {p['released']}" if "released" in p else ""),
              flush=True)


rep, _ = forget_task(model, g, [a.cls], cfg, on_progress=show)
print(a.knobs, a.cls, a.per, "stop", rep["stop"], "acc_f", rep["acc_f_after"], "acc_r",
      rep["acc_r_before"], "->", rep["acc_r_after"], "open", rep["open_set"]["forgotten"]["after"],
      f"{time.perf_counter() - t:.1f} s")
