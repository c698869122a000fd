# Frozen: a record of what ran at commit d4a4e83 (2026-12-05), kept beside its logs; only its layout
# changed since (ruff checks every Python file). It does not run on today's engine:
# the Workspace moved to demo.workspace and its forget_config went.
# To run it again: git worktree add /tmp/at-d4a4e83 d4a4e83, then run it from there.
import json
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))  # the project root
from dataclasses import replace  # noqa: E402

# gone since (demo.workspace now): ruff takes it for a third-party module
from gslora_core.workspace import Workspace  # noqa: E402

from gslora_core.config import StudioConfig  # noqa: E402

torch.set_num_threads(1)
kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
ws = Workspace(StudioConfig(sessions_root="/tmp/explore/sessions",
                            objects_recognizer="/tmp/interim/objects_classifier.safetensors"))
t = time.time()
ws.load_sample(kind="objects")
print("load", time.time() - t, flush=True)
print("tau", ws.model.threshold.tau, "acc", ws.recognizer_report["acc_all"])
cfg = replace(ws.forget_config(), **kw)
t = time.time()
job = ws.start_forget(["cat"], cfg)
job.wait(1200)
print(job.error)
rep = ws.reports[-1]
print(kw, f"{time.time()-t:.1f}s",
      {k: rep.get(k) for k in ("acc_r_before", "acc_r_after", "acc_f_before", "acc_f_after",
                               "blocks_used", "train_seconds")},
      rep["stop"]["text"], rep["stop"]["pictures_left"], rep["open_set"]["forgotten"]["after"])
ws.close()
