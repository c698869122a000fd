"""A classroom at once (issue 16): the line for the machine, a full room, identical uploads from
several visitors, and error messages a visitor can act on (ZeroGPU: test_zerogpu.py).

The Room and UploadJanitor tests are fast units; the rest go through the real app's API on the
real sample gallery (marked slow)."""
from __future__ import annotations

import json
import re
import sys
import time
import zipfile
from pathlib import Path

import pytest

from demo.room import Room, RoomFull
from demo.uploads import UploadJanitor

SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "sample_gallery"


# ------------------------------------------------------------------------------- the room
def test_room_refuses_a_new_session_when_full_but_never_one_already_in():
    room = Room(max_sessions=2, max_wait_s=600)
    room.enter("a", "ws-a")
    room.enter("b", "ws-b")
    room.enter("a", "ws-a")  # a visitor already in is never turned away
    with pytest.raises(RoomFull, match="The studio is full: 2 visitors"):
        room.enter("c", "ws-c")
    closed = []
    room.leave("a", closed.append)  # a tab closed: its workspace is closed at once
    assert closed == ["ws-a"] and room.size() == 1
    room.enter("c", "ws-c")
    room.forget_workspace("ws-b")  # expired through gr.State's delete callback
    assert room.size() == 1


def test_room_line_counts_jobs_ahead_and_sends_visitors_to_the_sample_when_too_long():
    room = Room(max_sessions=50, max_wait_s=80, first_guess_s=30)
    assert room.admit("a") == (0, 0.0)
    assert room.admit("b") == (1, 30.0)
    assert room.admit("c") == (2, 60.0)
    assert room.wait_estimate("b") == (1, 30.0)  # b's place does not move when c joins
    with pytest.raises(RoomFull, match="busy: 3 recognizers .* Try the sample gallery"):
        room.admit("d")  # 3 ahead x 30 s = 90 s > 80 s
    room.done("a", 10.0)  # a finished in 10 s: the estimate learns from it
    ahead, wait = room.admit("d")
    assert ahead == 2 and wait == pytest.approx(2 * 20.0)
    room.leave("b", lambda ws: None)  # a tab closed while in line frees its place
    assert room.wait_estimate("d")[0] == 1


def test_room_forgets_a_ticket_whose_job_never_ran():
    room = Room(max_sessions=5, max_wait_s=1000, ticket_ttl_s=0.05)
    room.admit("a")
    time.sleep(0.1)
    assert room.wait_estimate("b") == (0, 0.0)


# ------------------------------------------------------------------------------- uploads
def test_an_upload_is_kept_while_read_and_deleted_after_the_grace(tmp_path):
    f = tmp_path / "hash1" / "class.zip"
    f.parent.mkdir()
    f.write_bytes(b"zip")
    janitor = UploadJanitor(grace_s=0.3)
    with janitor.reading([f]):
        with janitor.reading([f]):  # a second visitor's handler reads the same path
            pass
        time.sleep(0.5)  # past the grace, but still being read by the first handler
        assert f.exists()
    deadline = time.time() + 5
    while (f.parent.exists() or janitor.pending()) and time.time() < deadline:
        time.sleep(0.05)
    assert not f.exists() and not f.parent.exists() and janitor.pending() == 0


def test_a_new_identical_upload_restarts_the_clock(tmp_path):
    f = tmp_path / "hash2" / "class.zip"
    f.parent.mkdir()
    f.write_bytes(b"zip")
    janitor = UploadJanitor(grace_s=0.6)
    with janitor.reading([f]):
        pass
    time.sleep(0.4)
    f.write_bytes(b"zip")  # another visitor sent the same bytes: gradio replaced the file
    time.sleep(0.4)  # 0.8 s after the first upload, 0.4 s after the second
    assert f.exists()
    deadline = time.time() + 5
    while f.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not f.exists()


def test_gradio_sees_the_request_parameter_of_every_handler_that_needs_one():
    """Gradio finds gr.Request by resolving a handler's annotations; one unresolvable name
    (an engine type imported only for type checkers) and it silently passes None: the room
    then never learns who is in it."""
    import gradio as gr
    from gradio import utils

    from demo.handlers import Handlers, friendly

    studio = Handlers()  # the page's handlers (demo.ui.Studio wires them)
    for name in ("load_sample", "upload_gallery", "train_recognizer"):
        assert utils.get_type_hints(friendly(getattr(studio, name), "t")).get("request") \
            is gr.Request, name
    assert utils.get_type_hints(studio.end_session).get("request") is gr.Request


def test_building_the_page_writes_nothing_into_the_source_tree():
    """A gr.Component subclass makes gradio write a .pyi stub beside its module at import (one
    was committed by mistake once); the page must leave the checkout as it found it."""
    from demo.ui import Studio

    Studio().build()
    assert not list((Path(__file__).resolve().parents[1] / "demo").glob("*.pyi"))


def test_one_face_aligner_serves_every_photo_tried(monkeypatch):
    """'Try a photo' used to build a new MTCNN for every request; a room of visitors trying
    photos now shares one (its detector calls take turns under a lock)."""
    from gslora_core import alignment
    from gslora_core.config import DataConfig
    from gslora_core.data import crop_faces
    from gslora_core.ingest import collect, decode_all

    built = []
    real_init = alignment.FaceAligner.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)
    monkeypatch.setattr(alignment, "_SHARED", {})
    monkeypatch.setattr(alignment.FaceAligner, "__init__", counting_init)
    probes = Path(__file__).resolve().parents[1] / "assets" / "probes"
    files, _ = collect(sorted(probes.glob("*.jpg"))[:1])
    pictures, _ = decode_all(files)
    for _ in range(3):  # three visitors, no cache: each one aligns
        kept, rejected, _ = crop_faces(pictures, DataConfig(preprocess="mtcnn"), 112)
        assert kept and kept[0][2] == "mtcnn"
    assert len(built) == 1 and alignment.shared_aligner() is alignment.shared_aligner()


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_the_server_caps_its_malloc_arenas():
    import platform

    from demo.ui import limit_malloc_arenas

    assert limit_malloc_arenas(0) is False  # 0 = leave glibc's default alone
    if platform.libc_ver()[0] == "glibc":
        assert limit_malloc_arenas(2) is True


# ------------------------------------------------------------------------------- through the app
def _zip(path: Path, people: tuple[str, ...] = ("Kofi_Annan", "Tiger_Woods"), n: int = 6) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for who in people:
            for p in sorted((SAMPLE / who).iterdir())[:n]:
                zf.write(p, f"class/{who}/{p.name}")
    return path


def _call(url: str, api_name: str, data: list, session: str) -> tuple[str, object]:
    """One event through gradio's plain HTTP API, as a browser sends it: ("complete", outputs)
    or ("error", message)."""
    import httpx

    with httpx.Client(timeout=300) as http:
        r = http.post(f"{url}gradio_api/call/{api_name}",
                      json={"data": data, "session_hash": session})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        kind = None
        with http.stream("GET", f"{url}gradio_api/call/{api_name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    return kind, json.loads(line.split(":", 1)[1].strip() or "null")
    return "closed", None


def _upload(url: str, path: Path) -> str:
    """Send a file to gradio's upload route, as the page does when a file is chosen."""
    import httpx

    with open(path, "rb") as fh:
        r = httpx.post(f"{url}gradio_api/upload", files=[("files", (path.name, fh))], timeout=60)
    r.raise_for_status()
    return r.json()[0]


@pytest.mark.slow
def test_the_same_zip_from_two_visitors_at_once_gives_both_their_gallery(app_url, tmp_path):
    """Issue 16's race: visitor B's upload of the teacher's zip arrives (same content, so the
    same path in gradio's cache) while visitor A's 'Use my upload' runs. B's handler then runs
    after A's. Before the fix A's handler deleted the shared file and B got an error."""
    gradio_client = pytest.importorskip("gradio_client")
    zipped = _zip(tmp_path / "teacher.zip")
    server_path_b = _upload(app_url, zipped)  # B chose the file: it is on the server now
    a = gradio_client.Client(app_url, verbose=False, download_files=False)
    out = a.predict([gradio_client.handle_file(str(zipped))], api_name="/upload_gallery")
    assert any(isinstance(o, str) and "12 face pictures" in o for o in out)
    kind, data = _call(app_url, "upload_gallery",
                       [[{"path": server_path_b, "meta": {"_type": "gradio.FileData"}}]],
                       session="visitor-b-race")
    assert kind == "complete", data
    assert any(isinstance(o, str) and "12 face pictures" in o for o in data)


def _message(err: Exception) -> str:
    return str(getattr(err, "message", None) or err)


@pytest.mark.slow
def test_every_error_a_visitor_can_reach_is_a_sentence_they_can_act_on(app_url, tmp_path):
    """Sweep the app's error paths: each message says what failed and what to do; no bare
    "Error", no errno, no traceback, no exception class name standing for an explanation."""
    gradio_client = pytest.importorskip("gradio_client")
    from demo.request import recipe_inputs

    fast = recipe_inputs()
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not a picture")
    fake_jpg = tmp_path / "Ana_Lima_0001.jpg"
    fake_jpg.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    broken_zip = tmp_path / "broken.zip"
    broken_zip.write_bytes(b"PK\x03\x04 not really a zip")
    one_person = _zip(tmp_path / "one.zip", people=("Kofi_Annan",))
    no_faces = tmp_path / "no_faces.zip"
    with zipfile.ZipFile(no_faces, "w") as zf:
        zf.writestr("x/a/readme.txt", "hello")
        zf.writestr("x/b/readme.txt", "hello")
    fresh = gradio_client.Client(app_url, verbose=False, download_files=False)
    loaded = gradio_client.Client(app_url, verbose=False, download_files=False)
    loaded.predict(api_name="/load_sample")
    hf = gradio_client.handle_file
    paths = {
        "forget before a gallery": (fresh, "/forget", [[], *fast]),
        "train before a gallery": (fresh, "/train_recognizer", []),
        "export before a gallery": (fresh, "/export", []),
        "roll back before a gallery": (fresh, "/rollback", []),
        "try a photo before a gallery": (fresh, "/try_photo", [None, None]),
        "upload nothing": (fresh, "/upload_gallery", [[]]),
        "upload a text file": (loaded, "/upload_gallery", [[hf(str(not_image))]]),
        "upload a broken picture": (loaded, "/upload_gallery", [[hf(str(fake_jpg))]]),
        "upload a broken zip": (loaded, "/upload_gallery", [[hf(str(broken_zip))]]),
        "upload one person": (loaded, "/upload_gallery", [[hf(str(one_person))]]),
        "upload a zip with no faces": (loaded, "/upload_gallery", [[hf(str(no_faces))]]),
        "forget nobody": (loaded, "/forget", [[], *fast]),
        "roll back with no task": (loaded, "/rollback", []),
        "try a non-picture": (loaded, "/try_photo", [hf(str(fake_jpg)), None]),
        "try nothing": (loaded, "/try_photo", [None, None]),
        "impossible setting": (loaded, "/forget", [["Bill_Clinton"], "fast", 8, 0.5, 0.5, -1,
                                                  30, 0.01, 0]),
    }
    bad = {}
    for what, (client, api, args) in paths.items():
        try:
            client.predict(*args, api_name=api)
        except Exception as err:  # what the page would show
            msg = _message(err)
        else:
            bad[what] = "no error at all"
            continue
        problems = [why for why, failed in (
            ("bare 'Error'", msg.strip() in ("", "Error", "Error raised.")
             or "verbose error reporting" in msg),  # what gradio_client gets for a bare Error
            ("fewer than 6 words", len(msg.split()) < 6),
            ("an errno", "Errno" in msg),
            ("a traceback", "Traceback" in msg),
            ("an exception name as the reason", re.match(r"^\w*(Error|Exception):", msg)),
        ) if failed]
        if problems:
            bad[what] = f"{msg!r}: {', '.join(problems)}"
    assert not bad, bad
    # a person forgotten in an earlier task, asked for again (a stale tick or a scripted call):
    # a sentence that says so, not gradio's "not in the list of choices"
    loaded.predict(["Kofi_Annan"], *fast, api_name="/forget")
    try:
        loaded.predict(["Kofi_Annan"], *fast, api_name="/forget")
    except Exception as err:
        msg = _message(err)
        assert "already forgotten" in msg and "Error" not in msg.split()[:1], msg
    else:
        raise AssertionError("forgetting a forgotten person again raised nothing")
    # after all of it, the loaded visitor still has their gallery and recognizer
    report = loaded.predict(api_name="/export")
    assert ".safetensors" in json.dumps(report[0])  # the merged model, ready to download


@pytest.mark.slow
def test_a_full_room_turns_a_new_visitor_away_plainly_and_loses_nobodys_work(tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    from demo.ui import serve_in_background
    from gslora_core.config import StudioConfig

    url, demo = serve_in_background(StudioConfig(sessions_root=str(tmp_path / "s"),
                                                 max_sessions=2))
    try:
        a, b, c = (gradio_client.Client(url, verbose=False, download_files=False)
                   for _ in range(3))
        a.predict(api_name="/load_sample")
        b.predict(api_name="/load_sample")
        with pytest.raises(Exception) as refused:
            c.predict(api_name="/load_sample")
        assert _message(refused.value).startswith("The studio is full: 2 visitors")
        from demo.request import recipe_inputs

        knobs = recipe_inputs(steps=10)[1:]
        out = a.predict(["Bill_Clinton"], "fast", *knobs, api_name="/forget")
        assert next(o for o in out if isinstance(o, dict) and "acc_f_after" in o)["forgotten"] \
            == ["Bill_Clinton"]
        b.predict(api_name="/load_sample")  # a visitor already in is never turned away
    finally:
        demo.close()


def test_a_refusal_stays_on_the_page_and_logs_one_line_but_a_fault_keeps_its_traceback(caplog):
    import gradio as gr

    from demo.handlers import friendly

    def refuse():
        raise ValueError("no faces found in this zip")
    with caplog.at_level("INFO", logger="gslora.page"), pytest.raises(gr.Error) as refused:
        friendly(refuse, "Could not use this upload", lasting=True)()
    err = refused.value
    assert err.title == "Could not use this upload" and err.message == "no faces found in this zip"
    assert err.duration is None and err.print_exception is False  # stays; no traceback
    assert [r.getMessage() for r in caplog.records] == [
        "Could not use this upload: no faces found in this zip"]

    with pytest.raises(gr.Error) as fault:
        friendly(lambda: 1 / 0, "Forgetting did not run")()
    assert fault.value.print_exception is True and fault.value.duration == 10
    assert "ZeroDivisionError" in fault.value.message


def test_a_zip_chosen_after_another_replaces_it_in_the_upload_box():
    from demo.handlers import latest_zip

    assert latest_zip(["/u/a/first.zip", "/u/b/second.zip"]) == ["/u/b/second.zip"]
    assert latest_zip(["/u/a/Ana_0001.jpg", "/u/b/people.zip"]) == ["/u/b/people.zip"]
    for unchanged in (["/u/a/first.zip"], ["/u/a/Ana_0001.jpg", "/u/b/Ana_0002.jpg"], []):
        assert not isinstance(latest_zip(unchanged), list)  # gr.skip(): the box stays
