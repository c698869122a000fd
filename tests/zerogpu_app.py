"""Serves the app as a ZeroGPU Space runs it, for test_zerogpu.py: ``spaces`` with
SPACES_ZERO_GPU=true (its real wrappers: GPU calls in a forked worker, arguments and results
pickled), its device API answered by the test's stand-in on 127.0.0.1
(SPACES_ZERO_DEVICE_API_URL), and the two steps that need a real GPU stubbed.

    python tests/zerogpu_app.py SESSIONS_ROOT PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import spaces  # noqa: E402, F401 - first, as on a Space: it patches torch before CUDA is touched
import spaces.zero.torch as zero_torch  # noqa: E402

# In the worker, ZeroGPU points CUDA_VISIBLE_DEVICES at the GPU it was lent and moves the
# tensors the main process had put "on cuda" there; this machine has no GPU, so the worker's
# torch stays on the CPU (the engine picks the device it finds: ``resolve_device("auto")``).
zero_torch.init = lambda nvidia_uuid: None
zero_torch.move = lambda callback=None: None

from demo.ui import QUEUE_CONCURRENCY, build_demo, launch_kwargs  # noqa: E402
from gslora_core.config import StudioConfig  # noqa: E402

if __name__ == "__main__":
    cfg = StudioConfig(sessions_root=sys.argv[1])
    build_demo(cfg).queue(default_concurrency_limit=QUEUE_CONCURRENCY).launch(
        server_name="127.0.0.1", server_port=int(sys.argv[2]), **launch_kwargs(cfg))
