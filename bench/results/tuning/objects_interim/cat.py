# Frozen: a record of what ran at commit d4a4e83 (2026-12-05), kept beside its logs; only its layout
# changed since (ruff checks every Python file). It does not run on today's engine:
# forgetting.forget_task is now forget, which takes a plan.
# To run it again: git worktree add /tmp/at-d4a4e83 d4a4e83, then run it from there.
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the project root
from dataclasses import replace  # noqa: E402

from bench.cifar10 import CLASSES, load  # noqa: E402
from gslora_core.config import ForgetConfig  # noqa: E402
from gslora_core.data import Gallery  # noqa: E402
from gslora_core.evaluation import snapshot  # noqa: E402
from gslora_core.forgetting import forget_task  # noqa: E402
from gslora_core.model import load_recognizer  # noqa: E402

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
per = int(sys.argv[1]) if len(sys.argv) > 1 else 200
d = load()


def take(x, y, k):
    idx = torch.cat([torch.nonzero(y == c).flatten()[:k] for c in range(10)])
    return x[idx], y[idx]


tx, ty = take(d["train_x"], d["train_y"], per)
g = Gallery(names=list(CLASSES), train_x=tx, train_y=ty, test_x=d["test_x"], test_y=d["test_y"])
m = load_recognizer("/tmp/interim/objects_classifier.safetensors")
t = time.time()
before = snapshot(m, g)
print("snapshot", time.time() - t, "s")
for kw in [dict(), ]:
    cfg = replace(ForgetConfig(), eval_every=0, **kw)
    mm = load_recognizer("/tmp/interim/objects_classifier.safetensors")
    t = time.time()
    rep, after = forget_task(mm, g, ["cat"], cfg, before=before)
    print(kw, f"{time.time()-t:.1f}s",
          {k: rep.get(k) for k in ("acc_r_before", "acc_r_after", "acc_f_before", "acc_f_after",
                                   "zero_group_ratio", "blocks_used", "train_seconds")},
          rep["stop"]["text"])
