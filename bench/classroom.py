"""A classroom at once (issue 16): N visitors upload the teacher's zip within a minute, train its
recognizer and forget two people each, through the app's API as the page does it.

    python -m bench.classroom --visitors 20 --within 60 --out bench/results/classroom.json

The app runs in a server process of its own (fresh session and upload-crop folders, so the
first upload really aligns); this process plays the visitors, one ``gradio_client`` each, and
samples the server's resident memory. Per visitor it records: when they arrived, how long their
gallery took (the first upload aligns, the others reuse its crops), how long their training and
their forgetting waited in line before starting, the time from arriving to results, and whether
the result is theirs and right (their two people forgotten, Acc_f 0). The compute line is one
training and one forgetting task at a time, each in its own line (``StudioConfig.train_concurrency``,
``forget_concurrency``): the figure that bounds a room is the machine's seconds per visitor.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "sample_gallery"


def make_zip(out: Path) -> Path:
    """The teacher's zip: the sample gallery's 20 people, one folder each."""
    with zipfile.ZipFile(out, "w") as zf:
        for who in sorted(p for p in SAMPLE.iterdir() if p.is_dir()):
            for pic in sorted(who.iterdir()):
                zf.write(pic, f"class/{who.name}/{pic.name}")
    return out


def pairs(people: list[str], n: int) -> list[list[str]]:
    """A distinct pair of people for each visitor (neighbours in a shuffled ring)."""
    ring = sorted(people)
    random.Random(0).shuffle(ring)
    return [[ring[i % len(ring)], ring[(i + 1) % len(ring)]] for i in range(n)]


def serve(root: str) -> None:
    """The server process: the app with its sessions under ``root``; prints its URL."""
    from demo.ui import serve_in_background
    from gslora_core.config import StudioConfig

    url, _ = serve_in_background(StudioConfig(sessions_root=os.path.join(root, "sessions")),
                                 concurrency=32)
    print(url, flush=True)
    while True:
        time.sleep(3600)


def memory_mb(pid: int) -> dict[str, float]:
    """The server's resident memory now and its peak (VmRSS, VmHWM), in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _run(job, row: dict, key: str, poll_s: float = 0.2) -> list:
    """Wait for a submitted job; record how long it sat in the queue before it started and the
    queue position the visitor was shown. Returns its final outputs."""
    from gradio_client.utils import Status

    t0 = time.perf_counter()
    started = None
    ranks = []
    while not job.done():
        st = job.status()
        if st.rank is not None and st.code == Status.IN_QUEUE:
            ranks.append(st.rank)
        waiting = (Status.STARTING, Status.JOINING_QUEUE, Status.IN_QUEUE, Status.LOG)
        if started is None and (st.code not in waiting or job.outputs()):
            started = time.perf_counter()
        time.sleep(poll_s)
    result = job.result()
    end = time.perf_counter()
    started = started or end
    row[f"{key}_wait_s"] = round(started - t0, 2)
    row[f"{key}_run_s"] = round(end - started, 2)
    row[f"{key}_queue_position"] = max(ranks) + 1 if ranks else 0
    return result


def visitor(url: str, zip_path: Path, pair: list[str], arrive_s: float, t0: float, row: dict,
            forget_args: list) -> None:
    from gradio_client import Client, handle_file

    time.sleep(max(0.0, t0 + arrive_s - time.perf_counter()))
    arrived = time.perf_counter()
    row.update(pair=pair, arrived_s=round(arrived - t0, 2))
    try:
        c = Client(url, verbose=False, download_files=False)
        t = time.perf_counter()
        out = c.predict([handle_file(str(zip_path))], api_name="/upload_gallery")
        row["gallery_s"] = round(time.perf_counter() - t, 2)
        row["gallery_status"] = next(o for o in out if isinstance(o, str) and "recognizer" in o)
        out = _run(c.submit(api_name="/train_recognizer"), row, "train")
        row["recognizer"] = next(o for o in out if isinstance(o, str) and o.startswith("**Ready"))
        out = _run(c.submit(pair, *forget_args, api_name="/forget"), row, "forget")
        rep = next(o for o in out if isinstance(o, dict) and "acc_f_after" in o)
        row.update(results_s=round(time.perf_counter() - arrived, 2),
                   forgotten=rep["forgotten"], acc_f_after=rep["acc_f_after"],
                   acc_r_before=rep["acc_r_before"], acc_r_after=rep["acc_r_after"],
                   forget_seconds=rep["seconds"], zero_groups=rep["zero_groups"],
                   ok=sorted(rep["forgotten"]) == sorted(pair) and rep["acc_f_after"] == 0.0)
    except Exception as err:  # recorded: a refused, lost or failed visitor is the finding
        row.update(ok=False, error=f"{type(err).__name__}: {getattr(err, 'message', err)}")


def _stats(values: list[float]) -> dict:
    if not values:
        return {}
    return {"min": round(min(values), 1), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1)}


def run(visitors: int, within_s: float, workdir: Path, url: str | None = None) -> dict:
    from demo.request import recipe_inputs

    zip_path = make_zip(workdir / "class.zip")
    people = [p.name for p in SAMPLE.iterdir() if p.is_dir()]
    forget_args = recipe_inputs()
    server = None if url else subprocess.Popen(
        [sys.executable, "-m", "bench.classroom", "--serve", str(workdir)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)

    def mem() -> dict[str, float]:  # a remote app (--url): its memory is not ours to read
        return memory_mb(server.pid) if server else {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        if server:
            url = server.stdout.readline().strip()
            threading.Thread(target=server.stdout.read, daemon=True).start()  # never blocks
        idle = mem()["VmRSS"]
        rows: list[dict] = [{"visitor": i + 1} for i in range(visitors)]
        draw = random.Random(1)  # the same arrival times every run
        arrivals = sorted(draw.uniform(0, within_s) for _ in range(visitors))
        t0 = time.perf_counter()
        threads = [threading.Thread(target=visitor, args=(url, zip_path, p, a, t0, r, forget_args))
                   for p, a, r in zip(pairs(people, visitors), arrivals, rows)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        end = mem()  # VmHWM: the kernel's record of the server's peak resident memory
    finally:
        if server:
            server.terminate()
            server.wait(30)
    faces = workdir / "sessions_faces"
    ok = [r for r in rows if r.get("ok")]
    # Throughput: visitors served while the machine was busy with them, from the first gallery
    # ready to the last result (trainings and forgetting tasks overlap, so run times do not add).
    busy = (max(r["arrived_s"] + r["results_s"] for r in ok)
            - min(r["arrived_s"] + r["gallery_s"] for r in ok)) if ok else None
    per_visitor = busy / len(ok) if busy else None
    return {
        "visitors": rows,
        "summary": {
            "visitors": visitors, "arrived_within_s": within_s, "all_ok": len(ok) == visitors,
            "ok": len(ok), "wall_s": round(wall, 1),
            "gallery_s": _stats([r["gallery_s"] for r in rows if "gallery_s" in r]),
            "train_wait_s": _stats([r["train_wait_s"] for r in rows if "train_wait_s" in r]),
            "train_run_s": _stats([r["train_run_s"] for r in rows if "train_run_s" in r]),
            "forget_wait_s": _stats([r["forget_wait_s"] for r in rows if "forget_wait_s" in r]),
            "forget_run_s": _stats([r["forget_run_s"] for r in rows if "forget_run_s" in r]),
            "results_s": _stats([r["results_s"] for r in ok]),
            "busy_s": round(busy, 1) if busy else None,
            "machine_s_per_visitor": round(per_visitor, 1) if per_visitor else None,
            "visitors_per_hour": int(3600 / per_visitor) if per_visitor else None,
            "server_rss_idle_mb": round(idle),
            "server_rss_peak_mb": round(end["VmHWM"]),
            "server_rss_end_mb": round(end["VmRSS"]),
            "upload_crops_on_disk": len(list(faces.glob("*/*.json"))) if faces.is_dir() else 0,
        },
    }


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--visitors", type=int, default=20)
    ap.add_argument("--within", type=float, default=60.0, help="arrivals spread over seconds")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "classroom.json"))
    ap.add_argument("--url", help="a running app (a GPU Space, say) instead of serving one here; "
                                  "its memory is then not measured")
    ap.add_argument("--serve", help=argparse.SUPPRESS)  # the server process (internal)
    a = ap.parse_args(argv)
    if a.serve:
        serve(a.serve)
        return None
    import torch

    with tempfile.TemporaryDirectory(prefix="gslora_classroom_") as tmp:
        result = run(a.visitors, a.within, Path(tmp), a.url)
    result.update(app=a.url or "served on this machine",
                  machine=f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{torch.get_num_threads()} torch threads, "
                          f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
                  date=time.strftime("%Y-%m-%d"),
                  command=f"python -m bench.classroom --visitors {a.visitors} --within {a.within:g}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return result


if __name__ == "__main__":
    main()
