"""Profile the continual CIFAR-10 sequences of ``bench.objects`` (3 tasks of 2 classes, the
classes forgotten before replayed): each task's stop, its releases and the pictures left at
every full check of the stopping rule.

    python bench/results/tuning/objects_continual/continual_profile.py val [KNOB=VALUE ...]

Run from the project root (``val``: score the validation pictures; ``test``: the test ones).
The knobs are ``ForgetConfig``'s; any this directory's logs name that ``ForgetConfig`` lacks
exist only with ``experiments.patch`` applied.
"""
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from bench.cifar10 import CLASSES, gallery  # noqa: E402
from bench.forgetting import forget_sets, methods  # noqa: E402
from gslora_core.cli import knob_overrides  # noqa: E402
from gslora_core.config import ForgetConfig  # noqa: E402
from gslora_core.evaluation import snapshot  # noqa: E402
from gslora_core.forgetting import forget, plan_task  # noqa: E402
from gslora_core.model import load_recognizer  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    part = sys.argv[1] if len(sys.argv) > 1 else "test"
    base = load_recognizer("checkpoints/objects_classifier.safetensors")
    g = gallery(200, 300, 300).scored_on(part)
    cfg = replace(ForgetConfig.from_dict(methods(False, (0.0, 1.0))["gslora"].config),
                  **knob_overrides(sys.argv[2:], flag="--set"))
    first = snapshot(base, g)
    total = 0.0
    for d in range(3):
        model, before, earlier = copy.deepcopy(base), first, []
        for t, names in enumerate(forget_sets(CLASSES, 0.2, 3, 1000 + d), 1):
            points: list[dict] = []
            t0 = time.perf_counter()
            res = forget(model, g, plan_task(model, g, names, list(earlier)), replace(cfg, seed=d),
                         before=before, on_progress=points.append)
            r, before = res.report, res.after
            secs = time.perf_counter() - t0
            total += secs
            print(f"draw {d} task {t} {names}", "total", round(secs, 1), r["stop"]["reason"],
                  r["stop"]["steps"], "blocks", r["blocks_used"], "acc_f",
                  round(r["acc_f_after"], 4), "acc_r", round(r["acc_r_after"], 3))
            print("  releases", [(p["step"], p["released"], round(p["seconds"], 1))
                                 for p in points if "released" in p])
            print("  full checks", [(p["step"], p["pictures_left"], p["blocks"])
                                    for p in points if p.get("full")])
            sys.stdout.flush()
            earlier += names
    print("all tasks", round(total, 1), "s")


if __name__ == "__main__":
    main()
