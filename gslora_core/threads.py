"""How many torch threads a job gets when other work runs at once (issue 48).

A forgetting step is a few small parallel regions (a 128-picture batch through one block's
MLP), so threads beyond the free cores wait for each other instead of working. Measured on 2
cores with the sample's default task (``python -m bench.threads``, bench/results/threads.json):
2 tasks at once in separate processes took a median 4.4 s with 2 threads each against 0.62 s
with 1, and 4 at once 14.9 s against 1.7 s; as threads of one process (the app's jobs) 0.98
against 0.76 s and 2.2 against 1.8 s; alone, 1 and 2 threads were equal (0.41 and 0.40 s).
So a job gets the cores nobody else is using, and at least one. The same holds for the short
work a page event does in its own thread (loading a gallery, a photo's answer): stacking the
sample's 300 crops took 1.6 s with 2 threads on a machine at load 4 and 0.04 s with 1.
"""
from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from typing import Iterator

import torch


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def machine_load(samples: int = 5, gap_s: float = 0.01) -> float:
    """Threads runnable on the machine now besides the caller: Linux's count of runnable
    threads (``/proc/loadavg``), the median of a few readings; elsewhere the one-minute load
    average (which lags: a command run just after another would count the one before)."""
    try:
        counts = []
        for k in range(samples):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
            if k + 1 < samples:
                time.sleep(gap_s)
        return max(0.0, statistics.median(counts) - 1)  # the caller is running too
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def free_cores(busy: float, total: int | None = None) -> int:
    """Threads for a job when ``busy`` cores' worth of other work runs: the rest, at least 1."""
    total = total or cores()
    return max(1, min(total, total - round(busy)))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads in this thread (OpenMP's setting is the calling
    thread's own), then give the thread back its previous count; 0 leaves it as it is."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n > 0:
            torch.set_num_threads(before)
