import sys, time, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the project root
from bench.cifar10 import load, CLASSES
from gslora_core.data import Gallery
from gslora_core.model import load_recognizer
from gslora_core.forgetting import forget_task
from gslora_core.evaluation import snapshot
from gslora_core.config import ForgetConfig
from dataclasses import replace
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
per = int(sys.argv[1]) if len(sys.argv) > 1 else 200
d = load()
def take(x, y, k):
    idx = torch.cat([torch.nonzero(y == c).flatten()[:k] for c in range(10)])
    return x[idx], y[idx]
tx, ty = take(d["train_x"], d["train_y"], per)
g = Gallery(names=list(CLASSES), train_x=tx, train_y=ty, test_x=d["test_x"], test_y=d["test_y"])
m = load_recognizer("/tmp/interim/objects_classifier.safetensors")
t = time.time(); before = snapshot(m, g); print("snapshot", time.time() - t, "s")
for kw in [dict(), ]:
    cfg = replace(ForgetConfig(), eval_every=0, **kw)
    mm = load_recognizer("/tmp/interim/objects_classifier.safetensors")
    t = time.time()
    rep, after = forget_task(mm, g, ["cat"], cfg, before=before)
    print(kw, f"{time.time()-t:.1f}s", {k: rep.get(k) for k in ("acc_r_before","acc_r_after","acc_f_before","acc_f_after","zero_group_ratio","blocks_used","train_seconds")}, rep["stop"]["text"])
