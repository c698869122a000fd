"""How many torch threads a job gets (issue 48): the cores nobody else uses, at least one;
the app counts its own running jobs, and a job's work runs with the threads it was given."""
from __future__ import annotations

import threading

import torch

from demo.jobs import Job, running
from gslora_core.calls import Done, stream
from gslora_core.threads import free_cores, torch_threads


def test_a_job_gets_the_free_cores_and_never_none():
    assert free_cores(0, total=2) == 2  # an idle 2-core machine
    assert free_cores(1, total=2) == 1  # one other task
    assert free_cores(3.6, total=2) == 1  # a busy machine: still one
    assert free_cores(0.4, total=8) == 8 and free_cores(2.6, total=8) == 5


def test_running_jobs_are_counted_with_their_threads_and_forgotten_when_done():
    gate = threading.Event()
    before = running()
    job = Job("forget", lambda progress, cancelled: gate.wait(10), threads=1).start()
    for _ in range(100):
        if running() != before:
            break
        threading.Event().wait(0.01)
    assert running() == (before[0] + 1, before[1] + 1)
    gate.set()
    assert job.wait(10) and running() == before


def test_a_calls_work_runs_with_the_threads_it_was_given_and_leaves_the_caller_s_alone():
    mine = torch.get_num_threads()
    items = list(stream(lambda progress, cancelled: torch.get_num_threads(), threads=1))
    assert items == [Done(1)] and torch.get_num_threads() == mine


def test_torch_threads_sets_the_count_for_a_block_and_gives_the_old_one_back():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: as it is
        assert torch.get_num_threads() == before
