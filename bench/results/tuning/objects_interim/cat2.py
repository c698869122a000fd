# Frozen: a record of what ran at commit d4a4e83 (2026-12-05), kept beside its logs; only its layout
# changed since (ruff checks every Python file). It does not run on today's engine:
# forgetting.forget_task is now forget, which takes a plan.
# To run it again: git worktree add /tmp/at-d4a4e83 d4a4e83, then run it from there.
import json
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the project root
from dataclasses import replace  # noqa: E402

from bench.cifar10 import gallery  # noqa: E402
from gslora_core.config import ForgetConfig  # noqa: E402
from gslora_core.evaluation import snapshot  # noqa: E402
from gslora_core.forgetting import forget_task  # noqa: E402
from gslora_core.model import load_recognizer  # noqa: E402

torch.set_num_threads(1)
g = gallery(200, 200)
path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/interim/objects_classifier.safetensors"
kw = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
m = load_recognizer(path)
t = time.time()
before = snapshot(m, g)
print("snapshot", time.time() - t, "s", flush=True)
cfg = replace(ForgetConfig(), eval_every=0, **kw)
t = time.time()
rep, after = forget_task(m, g, ["cat"], cfg, before=before)
print(kw, f"{time.time()-t:.1f}s",
      {k: rep.get(k) for k in ("acc_r_before", "acc_r_after", "acc_f_before", "acc_f_after",
                               "blocks_used", "train_seconds")}, rep["stop"], flush=True)
tau = m.threshold.tau
cat = g.names.index("cat")
cos = after.train_cos[g.train_y == cat]
own = cos[:, cat]
oth = cos.clone()
oth[:, cat] = -9
other = oth.max(1).values
best = cos.max(1).values
q = torch.tensor([.5, .9, 1.])
print("tau", tau, "own q", own.quantile(q).tolist(), "other q", other.quantile(q).tolist(),
      "best q", best.quantile(q).tolist(), "gap min", (other-own).min().item())
