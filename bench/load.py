"""Several visitors at once: N gradio clients, each in its own session, load the sample gallery
and submit a forgetting task at the same moment. Records, per client, the queue wait and the run
time, and checks every result is that client's own (no lost job, no cross-talk).

    python -m bench.load --clients 5 --out bench/results/load.json

Serves the app in this process (or uses ``--url`` of a running one). Forgetting jobs run one at
a time (``StudioConfig.forget_concurrency``, one shared CPU or GPU), so the last client waits for
the others: the figure to watch is that every job finishes and is right.
"""
from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path

from gslora_core.config import PRESETS

# Each client forgets a different person, so a mixed-up result is visible.
PEOPLE = ["Bill_Clinton", "Serena_Williams", "Kofi_Annan", "Vladimir_Putin", "Tiger_Woods",
          "Meryl_Streep", "Fidel_Castro", "Norah_Jones"]


def forget_args(steps: int) -> list:
    """The /forget endpoint's settings: the fast preset's own values, ``steps`` replaced."""
    from demo.request import recipe_inputs
    return recipe_inputs(steps=steps)


def one_client(url: str, person: str, steps: int, out: dict) -> None:
    from gradio_client import Client

    try:
        c = Client(url, verbose=False, download_files=False)
        c.predict(api_name="/load_sample")
        t0 = time.perf_counter()
        result = c.submit([person], *forget_args(steps),
                          api_name="/forget").result(timeout=1800)
        total = time.perf_counter() - t0
        report = next(o for o in result if isinstance(o, dict) and "acc_f_after" in o)
        out.update(person=person, ok=report["forgotten"] == [person], total_s=total,
                   run_s=report["seconds"], queue_wait_s=max(0.0, total - report["seconds"]),
                   acc_f_after=report["acc_f_after"], acc_r_before=report["acc_r_before"],
                   acc_r_after=report["acc_r_after"])
    except Exception as err:  # recorded: a lost or failed job is the finding
        out.update(person=person, ok=False, error=f"{type(err).__name__}: {err}")


def run_load(url: str, clients: int = 5, steps: int = PRESETS["fast"].steps) -> dict:
    """Start every client at once; wait for all; per-client figures."""
    if clients > len(PEOPLE):
        raise ValueError(f"at most {len(PEOPLE)} clients")
    rows: list[dict] = [{} for _ in range(clients)]
    threads = [threading.Thread(target=one_client, args=(url, PEOPLE[i], steps, rows[i]))
               for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"clients": rows, "wall_s": time.perf_counter() - t0, "steps": steps,
            "all_finished": all(r.get("ok") for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--steps", type=int, default=PRESETS["fast"].steps)
    ap.add_argument("--url", help="a running app (default: serve one here)")
    ap.add_argument("--out", default="bench/results/load.json")
    a = ap.parse_args()
    demo = None
    url = a.url
    if not url:
        from demo.ui import serve_in_background

        url, demo = serve_in_background(concurrency=8)
    try:
        result = run_load(url, a.clients, a.steps)
    finally:
        if demo is not None:
            demo.close()
    import torch

    result.update(machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                          f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
                  date=time.strftime("%Y-%m-%d"),
                  command=f"python -m bench.load --clients {a.clients} --steps {a.steps}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
