"""Half of CIFAR-10's classes at once (2 draws, validation pictures): does a task that hard
release blocks, and does it need them?

    python bench/results/tuning/objects_continual/half_profile.py 0.5 [KNOB=VALUE ...]

Run from the project root; the first argument is the share of the classes forgotten.
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
    base = load_recognizer("checkpoints/objects_classifier.safetensors")
    g = gallery(200, 300, 300).scored_on("val")
    cfg = replace(ForgetConfig.from_dict(methods(False, (0.0, 1.0))["gslora"].config),
                  **knob_overrides(sys.argv[2:], flag="--set"))
    before = snapshot(base, g)
    for d, names in enumerate(forget_sets(CLASSES, float(sys.argv[1]), 2, 500)):
        model, points = copy.deepcopy(base), []
        t0 = time.perf_counter()
        r = forget(model, g, plan_task(model, g, names), replace(cfg, seed=d), before=before,
                   on_progress=points.append).report
        print(names, round(time.perf_counter() - t0, 1), r["stop"]["reason"], r["stop"]["steps"],
              "blocks", r["blocks_used"], "acc_f", round(r["acc_f_after"], 4), "acc_r",
              round(r["acc_r_before"], 3), "->", round(r["acc_r_after"], 3), "left",
              r["stop"]["pictures_left"], flush=True)
        print("  full", [(p["step"], p["pictures_left"], p["blocks"])
                         for p in points if p.get("full")][-6:], flush=True)


if __name__ == "__main__":
    main()
