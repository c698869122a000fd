import sys, time, torch, json
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the project root
from bench.cifar10 import gallery
from gslora_core.model import load_recognizer
from gslora_core.forgetting import forget_task
from gslora_core.evaluation import snapshot
from gslora_core.config import ForgetConfig
from gslora_core.metrics import embed_all
from dataclasses import replace
torch.set_num_threads(1)
g = gallery(200, 200)
path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/interim/objects_classifier.safetensors"
kw = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
m = load_recognizer(path)
t = time.time(); before = snapshot(m, g); print("snapshot", time.time() - t, "s", flush=True)
cfg = replace(ForgetConfig(), eval_every=0, **kw)
t = time.time()
rep, after = forget_task(m, g, ["cat"], cfg, before=before)
print(kw, f"{time.time()-t:.1f}s", {k: rep.get(k) for k in ("acc_r_before","acc_r_after","acc_f_before","acc_f_after","blocks_used","train_seconds")}, rep["stop"], flush=True)
tau = m.threshold.tau
cat = g.names.index("cat")
cos = after.train_cos[g.train_y == cat]
own = cos[:, cat]; oth = cos.clone(); oth[:, cat] = -9; other = oth.max(1).values; best = cos.max(1).values
print("tau", tau, "own q", own.quantile(torch.tensor([.5,.9,1.])).tolist(), "other q", other.quantile(torch.tensor([.5,.9,1.])).tolist(), "best q", best.quantile(torch.tensor([.5,.9,1.])).tolist(), "gap min", (other-own).min().item())
