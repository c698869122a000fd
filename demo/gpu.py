"""Where the engine's long calls run: in this process, or on ZeroGPU in a GPU worker.

Hugging Face's ``spaces.GPU`` changes nothing unless ``SPACES_ZERO_GPU=true`` (a ZeroGPU
Space). There it runs the decorated generator in a forked worker, the only process with a
GPU: the call's arguments go in pickled, each yield comes back pickled, closing the generator
stops the worker's call, and the worker's memory never reaches this process. ``run(call)`` is
therefore the engine's ``calls.run``: picklable inputs in, progress and a result out, applied to
the visitor's workspace here. One code path on a CPU, a dedicated GPU and ZeroGPU.

``spaces`` is not in requirements.txt (Spaces install it); requirements-dev has it for the
tests that drive the page through its real wrappers.
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Iterator

try:
    import spaces
except ImportError:  # the usual case off Spaces
    spaces = None

# On a ZeroGPU Space every call reserves GPU time from the visitor's daily quota before it
# starts, and is stopped past it: calls there carry their own time budget (``Workspace``).
# ``spaces`` itself says whether this is one (it reads SPACES_ZERO_GPU).
ZERO_GPU = spaces is not None and spaces.config.Config.zero_gpu


def _run(call: Any) -> Iterator[Any]:
    """The engine's ``calls.run`` (imported on first use: the page is up before torch loads)."""
    yield from importlib.import_module("gslora_core.calls").run(call)


def reserved(call: Any) -> int:
    """The seconds ZeroGPU reserves for ``call``: its own budget, in whole seconds."""
    return max(1, math.ceil(call.seconds))


run = spaces.GPU(_run, duration=reserved) if spaces is not None else _run
