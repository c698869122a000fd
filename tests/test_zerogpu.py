"""The page on a ZeroGPU Space (issue 47): Hugging Face's own ``spaces`` wrappers with
SPACES_ZERO_GPU=true run every GPU call in a forked worker with pickled arguments and results,
and nothing the worker changes in memory comes back. The app is served in a process of its own
(tests/zerogpu_app.py) with ZeroGPU's device API answered by a stand-in here on 127.0.0.1 and
the steps that need a real GPU stubbed; the visitor's Forget, Compare and training go through
it, the session must then answer "not recognized" for the forgotten person's photo, and a
cancelled task must leave it as it was."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "sample_gallery"


class DeviceAPI(BaseHTTPRequestHandler):
    """ZeroGPU's device API as ``spaces`` calls it: /startup-report, /schedule (a GPU is free:
    its index, UUID and a token), /allow (the worker's pid), /release. Every call is kept."""

    calls: list[tuple[str, dict]] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        self.calls.append((url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
        body = b""
        if url.path == "/schedule":
            body = json.dumps({"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "GPU-stand-in",
                               "allowToken": f"token-{len(self.calls)}"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def zerogpu_app(tmp_path_factory):
    pytest.importorskip("spaces")
    api = ThreadingHTTPServer(("127.0.0.1", 0), DeviceAPI)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    port = _free_port()
    env = dict(os.environ, SPACES_ZERO_GPU="true", GRADIO_ANALYTICS_ENABLED="False",
               SPACES_ZERO_DEVICE_API_URL=f"http://127.0.0.1:{api.server_port}")
    log = tmp_path_factory.mktemp("zerogpu") / "app.log"
    with open(log, "w") as out:  # a session of its own: the app and its forked GPU workers
        app = subprocess.Popen([sys.executable, str(ROOT / "tests" / "zerogpu_app.py"),
                                str(log.parent / "sessions"), str(port)],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while time.time() < deadline and app.poll() is None:
            try:
                if httpx.get(f"{url}config", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert app.poll() is None, log.read_text()[-3000:]
        yield url, app, log
    finally:
        # The whole group: ZeroGPU's workers are forked children that outlive a terminated
        # app (each holds a copy of its memory, 1-2 GB), as they would outlive it on a Space.
        _stop_group(app)
        api.shutdown()


def _stop_group(app: subprocess.Popen) -> None:
    """SIGTERM to the app's process group, then SIGKILL to whatever is left of it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(app.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                os.killpg(app.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                app.wait(5)
                return
            time.sleep(0.2)
    app.wait(5)


def _zip(path: Path, people: tuple[str, ...] = ("Kofi_Annan", "Tiger_Woods"), n: int = 6) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for who in people:
            for p in sorted((SAMPLE / who).iterdir())[:n]:
                zf.write(p, f"class/{who}/{p.name}")
    return path


@pytest.mark.slow
def test_forget_compare_and_training_run_in_zerogpus_worker_and_reach_the_session(zerogpu_app,
                                                                                 tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    from demo.request import recipe_inputs

    url, app, log = zerogpu_app
    c = gradio_client.Client(url, verbose=False, download_files=False)
    c.predict(api_name="/load_sample")
    t0 = time.perf_counter()
    out = c.predict(["Bill_Clinton", "Serena_Williams"], *recipe_inputs(), api_name="/forget")
    forget_s = time.perf_counter() - t0
    report = next(o for o in out if isinstance(o, dict) and "acc_f_after" in o)
    assert report["acc_f_after"] == 0.0 and report["forgotten"] == ["Bill_Clinton",
                                                                    "Serena_Williams"]
    assert any(isinstance(o, str) and "task1" in o for o in out), "no task in the history"

    # The session itself changed, not only the worker's copy: its photo is "not recognized".
    photo = gradio_client.handle_file(str(ROOT / "assets/probes/Bill_Clinton_0010.jpg"))
    crop, before, now, md = c.predict(photo, None, api_name="/try_photo")[:4]
    assert "**Now: not recognized" in md
    assert "Bill_Clinton" not in [row[1] for row in now["data"]]  # pushed out of the top 5
    assert before["data"][0][1] == "✂ Bill_Clinton"  # the untouched model still knew him

    # Live progress through the worker, and Cancel closes the call: the session keeps its one
    # task. (Every block and a margin no face reaches: it would run to its time cap.)
    job = c.submit(["Kofi_Annan"], *recipe_inputs("dense", margin=2.0), api_name="/forget")
    deadline = time.time() + 120
    while len(job.outputs()) < 3 and time.time() < deadline:
        time.sleep(0.3)
    assert len(job.outputs()) >= 3, "no live progress came back from the worker"
    assert "Cancelling" in c.predict(api_name="/cancel")
    assert any(isinstance(o, str) and "Cancelled" in o for o in job.result())

    # Compare in the worker too (its retraining, the same call with the backbone pickled in,
    # is test_calls.py's; here it would add half a minute)
    md, table, _ = c.predict(False, api_name="/compare")
    assert len(table["data"]) == 2 and "Forgotten: Bill_Clinton, Serena_Williams." in md

    c.predict([gradio_client.handle_file(str(_zip(tmp_path / "two.zip")))],
              api_name="/upload_gallery")
    out = c.predict(api_name="/train_recognizer")
    assert any(isinstance(o, str) and "trained on your gallery" in o for o in out)

    scheduled = [q for path, q in DeviceAPI.calls if path == "/schedule"]
    allowed = [int(q["pid"]) for path, q in DeviceAPI.calls if path == "/allow"]
    assert len(scheduled) == 4, DeviceAPI.calls  # 2 tasks, compare, train: a GPU call each
    assert allowed and app.pid not in allowed  # they ran in a worker, not in the app
    asked = [int(q["durationSeconds"]) for q in scheduled]
    print(f"forget {forget_s:.1f} s through the worker; durations asked {asked} s")
    assert all(0 < s <= 110 for s in asked)  # within one call's share of a visitor's quota
    assert asked[0] < 60  # the 2-person task does not reserve a minute
    assert "Traceback" not in log.read_text()


def test_a_gpu_call_reserves_its_estimate_and_one_that_would_not_fit_is_refused_in_words(
        monkeypatch, tmp_path):
    from demo import gpu
    from demo.workspace import Workspace
    from gslora_core.config import StudioConfig

    ws = Workspace(StudioConfig(sessions_root=str(tmp_path)))
    try:
        assert ws._reserve(3.0, "this task", "forget fewer people") == 6.0  # off ZeroGPU
        monkeypatch.setattr(gpu, "ZERO_GPU", True)
        assert ws._reserve(1.2, "this task", "forget fewer people") == 20.0  # the least
        assert ws._reserve(30.0, "this task", "forget fewer people") == 70.0  # start + 2x
        assert ws._reserve(95.0, "this task", "forget fewer people") == 110.0  # the most
        with pytest.raises(ValueError, match=r"about 210 s of GPU time, more than the 110 s one "
                                             r"call may reserve .*: upload fewer pictures"):
            ws._reserve(200.0, "training your recognizer", "upload fewer pictures")
        assert ws._speedup("train_rate") == 5.0  # assumed until this workspace timed a call
        ws.train_rate = 0.002
        assert ws._speedup("train_rate") == 1.0
    finally:
        ws.close()
