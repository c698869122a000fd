"""How many torch threads a forgetting task should get when others run at once (issue 48).

A 2-core Space with a classroom runs several visitors' work at once, and a presenter's laptop
runs slides beside the CLI. The default recipe's steps are small (a 128-picture batch through one
block's MLP), so each step is a few short parallel regions: with more threads than free cores,
their threads wait for each other. This runs the sample gallery's default 2-person task (from
its kept snapshot, as the app does) with 1, 2 and 4 tasks at once, each with 1 or 2 torch
threads, as threads of one process (the app: one server, a job thread per visitor) and as
separate processes (several CLIs or apps on one machine), and stores every task's seconds.

    python -m bench.threads --out bench/results/            # ~4 min on 2 cores, run alone
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["Bill_Clinton", "Serena_Williams"]


def _setup():
    from gslora_core.config import project_path
    from gslora_core.data import load_gallery_for
    from gslora_core.evaluation import kept_snapshot, snapshot
    from gslora_core.model import load_recognizer
    from gslora_core.states import states_path

    weights = project_path("checkpoints/sample_recognizer.safetensors")
    model = load_recognizer(weights)
    gallery = load_gallery_for(model, project_path("assets/sample_gallery"))
    before = kept_snapshot(states_path(weights), model, gallery) or snapshot(model, gallery)
    return model, gallery, before


def _tasks(model, gallery, before, threads: int, repeats: int) -> list[float]:
    """``repeats`` default tasks on copies of ``model``, this thread at ``threads`` torch
    threads; each task's wall seconds."""
    from gslora_core.config import ForgetConfig
    from gslora_core.forgetting import forget, plan_task

    torch.set_num_threads(threads)  # the calling thread's own setting (OpenMP's per thread)
    out = []
    for _ in range(repeats):
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        forget(m, gallery, plan_task(m, gallery, NAMES), ForgetConfig(), before=before)
        out.append(time.perf_counter() - t0)
    return out


def in_threads(jobs: int, threads: int, repeats: int, setup) -> list[float]:
    """``jobs`` tasks at once as threads of this process (the app's case)."""
    results: list[list[float]] = [[] for _ in range(jobs)]

    def run(k: int) -> None:
        results[k] = _tasks(*setup, threads, repeats)
    workers = [threading.Thread(target=run, args=(k,)) for k in range(jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [s for r in results for s in r]


def in_processes(jobs: int, threads: int, repeats: int) -> list[float]:
    """``jobs`` tasks at once in processes of their own (several CLIs on one machine); each
    waits at a barrier file until all are loaded, so only the tasks overlap."""
    go = ROOT / "runs" / f"threads_go_{os.getpid()}"
    go.parent.mkdir(exist_ok=True)
    go.unlink(missing_ok=True)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.threads", "--worker", str(threads),
                               str(repeats), str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for _ in range(jobs)]
    time.sleep(2)
    ready = ROOT / "runs"
    deadline = time.time() + 300
    while (len(list(ready.glob(f"{go.name}.ready.*"))) < jobs and time.time() < deadline):
        time.sleep(0.2)
    go.touch()
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=600)
        out += json.loads(stdout.strip().splitlines()[-1])
    go.unlink(missing_ok=True)
    for f in ready.glob(f"{go.name}.ready.*"):
        f.unlink()
    return out


def worker(threads: int, repeats: int, go: Path) -> None:
    setup = _setup()
    Path(f"{go}.ready.{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.05)
    print(json.dumps(_tasks(*setup, threads, repeats)))


def summary(seconds: list[float]) -> dict:
    return {"tasks": len(seconds), "median_s": statistics.median(seconds),
            "mean_s": statistics.mean(seconds), "max_s": max(seconds), "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--repeats", type=int, default=4, help="tasks each job runs")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(int(a.worker[0]), int(a.worker[1]), Path(a.worker[2]))
        return {}
    setup = _setup()
    _tasks(*setup, torch.get_num_threads(), 1)  # warm up
    rows = []
    for where in ("threads", "processes"):
        for jobs in a.jobs:
            for threads in a.threads:
                secs = (in_threads(jobs, threads, a.repeats, setup) if where == "threads"
                        else in_processes(jobs, threads, a.repeats))
                row = {"where": where, "jobs": jobs, "threads": threads, **summary(secs)}
                rows.append(row)
                print(f"{where:9s} {jobs} at once, {threads} thread(s): median "
                      f"{row['median_s']:.2f} s, max {row['max_s']:.2f} s", flush=True)
    res = {"meta": {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
                    "machine": platform.machine(), "task": f"sample gallery, forget {NAMES}, "
                    "default recipe, from the kept snapshot", "repeats": a.repeats,
                    "command": "python -m bench.threads " + " ".join(argv or sys.argv[1:])},
           "rows": rows}
    out = Path(a.out) / "threads.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
