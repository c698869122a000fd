import copy, sys, time
from dataclasses import replace
import torch
sys.path.insert(0, "/work/main")
from bench.cifar10 import CLASSES, gallery
from bench.forgetting import forget_sets, methods
from gslora_core.cli import knob_overrides
from gslora_core.config import ForgetConfig
from gslora_core.evaluation import snapshot
from gslora_core.forgetting import forget, plan_task
from gslora_core.model import load_recognizer
torch.set_num_threads(2)
base = load_recognizer("checkpoints/objects_classifier.safetensors")
g = gallery(200, 300, 300).scored_on("val")
cfg = replace(ForgetConfig.from_dict(methods(False, (0.0, 1.0))["gslora"].config), **knob_overrides(sys.argv[2:], flag="--set"))
before = snapshot(base, g)
k = float(sys.argv[1])
for d, names in enumerate(forget_sets(CLASSES, k, 2, 500)):
    model, points = copy.deepcopy(base), []
    t0 = time.perf_counter()
    r = forget(model, g, plan_task(model, g, names), replace(cfg, seed=d), before=before, on_progress=points.append).report
    print(names, round(time.perf_counter() - t0, 1), r["stop"]["reason"], r["stop"]["steps"], "blocks", r["blocks_used"], "acc_f", round(r["acc_f_after"], 4), "acc_r", round(r["acc_r_before"], 3), "->", round(r["acc_r_after"], 3), "left", r["stop"]["pictures_left"], flush=True)
    print("  full", [(p["step"], p["pictures_left"], p["blocks"]) for p in points if p.get("full")][-6:], flush=True)
