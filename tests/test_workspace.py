"""The per-session workspace behind the app (no gradio): lifetime of its files, uploads, jobs."""
from __future__ import annotations

import copy
import hashlib
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from demo.jobs import Job, readable_error
from demo.sessions import sessions_root, sweep, upload_faces_root
from demo.workspace import Workspace
from gslora_core.config import PRESETS, StudioConfig, TrainConfig, project_path
from gslora_core.evaluation import snapshot
from gslora_core.forgetting import rollback

SAMPLE = project_path("assets/sample_gallery")


@pytest.fixture
def cfg(tmp_path) -> StudioConfig:
    return StudioConfig(sessions_root=str(tmp_path / "sessions"),
                        enroll=replace(TrainConfig.from_backbone(), epochs=1))


def test_each_workspace_has_its_own_directory_removed_on_close(cfg):
    a, b = Workspace(cfg), Workspace(cfg)
    assert a.dir != b.dir and a.dir.is_dir() and b.dir.is_dir()
    a.close()
    assert not a.dir.exists() and b.dir.is_dir()


def test_sweep_removes_only_idle_sessions(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    past = time.time() - 3 * 3600
    os.utime(old, (past, past))
    assert sweep(tmp_path, 2 * 3600) == ["old"]
    assert new.exists() and not old.exists()


def test_shared_upload_crops_expire_after_their_last_use(tmp_path):
    from PIL import Image

    from gslora_core.data import CropCache

    cache = CropCache(tmp_path)
    face = Image.new("RGB", (112, 112), (90, 60, 40))
    cache.put("aa11", face, "mtcnn", None, 1)
    cache.put("bb22", face, "mtcnn", None, 1)
    past = time.time() - 3 * 3600
    for f in tmp_path.rglob("*"):
        if f.is_file():
            os.utime(f, (past, past))
    assert cache.get("aa11")["method"] == "mtcnn"  # a hit counts as a use
    assert cache.sweep(2 * 3600) == 2  # bb22's json and png
    assert cache.get("aa11") is not None and cache.get("bb22") is None


def test_job_reports_errors_in_words_and_cancel_sets_the_flag():
    job = Job("forget", lambda progress, cancelled: 1 / 0).start()
    job.wait(10)
    assert job.done and "ZeroDivisionError" in job.error and "try again" in job.error

    def slow(progress, cancelled):
        while not cancelled():
            progress({"step": 1})
            time.sleep(0.01)
        raise InterruptedError("stopped")
    job = Job("enroll", slow).start()
    job.cancel()
    assert job.wait(10) and job.cancelled and job.error is None
    assert readable_error(KeyError("not in the gallery: X")) == "not in the gallery: X"


def test_file_errors_read_as_sentences_without_errno_or_server_paths(tmp_path):
    try:
        open(tmp_path / "gone" / "faces.zip", "rb")
    except OSError as err:
        missing = readable_error(err)
    assert missing.startswith("faces.zip is no longer on the server") and "Errno" not in missing
    assert str(tmp_path) not in missing
    full = readable_error(OSError(28, "No space left on device"))
    assert "no space left on device" in full and "Errno" not in full and "try again" in full


def test_nothing_runs_before_a_gallery_is_loaded(cfg):
    ws = Workspace(cfg)
    with pytest.raises(ValueError, match="load a gallery first"):
        ws.start_forget(["Bill_Clinton"], PRESETS["fast"])
    with pytest.raises(ValueError, match="load a gallery first"):
        ws.export()
    with pytest.raises(ValueError, match="upload a gallery first"):
        ws.start_enroll()
    ws.close()


@pytest.mark.slow
def test_upload_is_trained_in_the_background_and_a_bad_upload_loses_nothing(cfg, tmp_path,
                                                                           monkeypatch):
    # The sample's shipped states fit only crops aligned with as many torch threads as made
    # them (tests/test_kept_states.py): without them the load measures, which this test counts.
    monkeypatch.setattr("demo.workspace.kept_snapshot", lambda *a: None)
    ws = Workspace(cfg)
    heard: list[dict] = []
    ws.load_sample(on_progress=heard.append)
    sample_model = ws.model
    # Loading the sample measures its recognizer on every picture, counted as it goes.
    measured = [t["done"] for t in heard if t["stage"] == "measuring"]
    pictures = len(ws.gallery.test_y) + len(ws.gallery.train_y)
    assert len(measured) > 1 and measured == sorted(measured) and measured[-1] == pictures
    # One person only: refused with the reason, the sample gallery and its model stay.
    one = tmp_path / "one" / "Kofi_Annan"
    shutil.copytree(SAMPLE / "Kofi_Annan", one)
    with pytest.raises(ValueError, match="at least 2 people"):
        ws.load_upload([str(p) for p in sorted(one.iterdir())])
    assert ws.source == "sample" and ws.model is sample_model
    # Two people as loose files named person_0001.jpg: aligned into the uploads' own crop cache
    # (shared by content hash between sessions, expiring like one), not the user-wide cache.
    files = [p for who in ("Kofi_Annan", "Tiger_Woods") for p in sorted((SAMPLE / who).iterdir())[:6]]
    told: list[dict] = []
    overview = ws.load_upload([str(p) for p in files], on_progress=told.append)
    assert [r["identity"] for r in overview["identities"]] == ["Kofi_Annan", "Tiger_Woods"]
    # The page's progress: pictures read, then faces aligned, counted up to their totals.
    for stage in ("reading", "aligning"):
        mine = [t for t in told if t["stage"] == stage]
        assert mine and mine[-1]["done"] == mine[-1]["total"], (stage, mine)
        assert [t["done"] for t in mine] == sorted(t["done"] for t in mine)
    assert [t for t in told if t["stage"] == "reading"][-1]["total"] == 12
    shared = upload_faces_root(cfg)
    for f in files:  # each picture's crop is there, under its content hash (other tests add more)
        digest = hashlib.sha1(f.read_bytes()).hexdigest()
        assert list(shared.glob(f"{digest[:2]}/{digest}-*.png")), f.name
    assert not shared.is_relative_to(sessions_root(cfg)) and not shared.is_relative_to(Path.home())
    assert ws.model is None and not overview["ready"]
    job = ws.start_enroll()
    assert job.wait(300) and job.error is None
    assert ws.model is not None and ws.recognizer_report["acc_all"] is not None
    assert ws.candidates() == ["Kofi_Annan", "Tiger_Woods"]
    # Training told every step (from the first batch on) with the time it had taken, then
    # that it was measuring; the workspace learned its rate and estimates a retrain from it.
    steps = [p for p in job.points if "step" in p and "stage" not in p]
    assert [p["step"] for p in steps] == list(range(1, steps[-1]["steps"] + 1))
    assert all(p["seconds"] > 0 for p in steps)
    assert job.points[-1]["stage"].startswith("measuring")
    est = ws.retrain_estimate()
    assert est["measured"] and est["pictures"] == len(ws.gallery.train_y) and est["seconds"] > 0
    ws.close()
    assert not ws.dir.exists()


@pytest.mark.slow
def test_forgotten_people_are_greyed_in_the_picker_and_cannot_be_chosen_again(cfg):
    import gradio as gr

    from demo.handlers import Handlers

    ws = Workspace(cfg)
    ws.load_sample()
    est = ws.retrain_estimate()
    assert not est["measured"] and est["pictures"] == len(ws.gallery.train_y)
    job = ws.start_forget(["Bill_Clinton"], PRESETS["fast"])
    assert job.wait(120) and job.error is None
    faces = dict((name, img) for img, name in ws.thumbnails())
    assert "✂ Bill_Clinton (forgotten)" in faces and "Bill_Clinton" not in faces
    grey = faces["✂ Bill_Clinton (forgotten)"].getextrema()
    assert grey[0] == grey[1] == grey[2] and grey[0][0] >= 160  # grey and faded
    # A retrain would now train without his pictures.
    bill = ws.gallery.names.index("Bill_Clinton")
    assert ws.retrain_estimate()["pictures"] == est["pictures"] - int((ws.gallery.train_y == bill).sum())
    # Clicking his face changes nothing (no name outside the choices: gradio would refuse the
    # next click with a bare error); clicking another face ticks and unticks that person.
    studio = Handlers(cfg)

    def click(current, index):
        return studio.toggle(ws, current, gr.SelectData(None, {"index": index, "value": {}}))
    assert click(["Kofi_Annan"], bill) == ["Kofi_Annan"]
    assert click([], ws.gallery.names.index("Tiger_Woods")) == ["Tiger_Woods"]
    assert click(["Tiger_Woods"], ws.gallery.names.index("Tiger_Woods")) == []
    assert click(["Bill_Clinton", "Tiger_Woods"], 0) == ["Tiger_Woods", ws.gallery.names[0]]
    ws.close()


@pytest.mark.slow
def test_the_recognizer_tab_follows_every_task_and_rollback(cfg):
    """The recognizer's reading is derived on read (it was kept from the load and went stale)."""
    ws = Workspace(cfg)
    ws.load_sample()
    first = ws.recognizer_report
    assert first["forgotten"] == [] and first["seconds"] is None
    job = ws.start_forget(["Bill_Clinton"], PRESETS["fast"])
    assert job.wait(120) and job.error is None
    now = ws.recognizer_report
    bill = next(r for r in now["per_identity"] if r["identity"] == "Bill_Clinton")
    assert now["forgotten"] == ["Bill_Clinton"] and bill["role"] == "forgotten"
    assert bill["accuracy"] == ws.reports[-1]["per_identity"][ws.gallery.names.index(
        "Bill_Clinton")]["after"]
    assert now["acc_r"] == pytest.approx(ws.reports[-1]["acc_r_after"])
    kept = ws.state
    ws.rollback()
    assert ws.state is not kept and ws.state.fits(ws.model, ws.gallery)  # its "before", again
    fresh = snapshot(ws.model, ws.gallery)  # and exactly what measuring afresh gives
    assert torch.allclose(ws.state.test_cos, fresh.test_cos, atol=1e-5)
    assert torch.allclose(ws.state.train_cos, fresh.train_cos, atol=1e-5)
    back = ws.recognizer_report
    assert back["forgotten"] == [] and back["acc_all"] == pytest.approx(first["acc_all"])
    assert ws.reports == []  # the task's report went with the task
    ws.close()


@pytest.mark.slow
def test_the_task_history_is_the_recognizer_s_own(cfg):
    """The page's history is read from the model's task list: a task removed from the model
    by any path takes its report with it, and a new task of the same name shows its own."""
    ws = Workspace(cfg)
    ws.load_sample()
    assert ws.start_forget(["Bill_Clinton"], PRESETS["fast"]).wait(120)
    assert [r["forgotten"] for r in ws.reports] == [["Bill_Clinton"]]
    rollback(ws.model)  # the engine's rollback, not the workspace's
    assert ws.reports == []
    job = ws.start_forget(["Kofi_Annan"], PRESETS["fast"])
    assert job.wait(120) and job.error is None
    assert [(r["task"], r["forgotten"]) for r in ws.reports] == [("task1", ["Kofi_Annan"])]
    ws.close()


def test_a_photo_asked_during_a_load_meets_one_gallery_s_model_and_before(cfg, monkeypatch):
    """Issue 48: a page event can run beside a gallery load. The load swaps gallery, model and
    "before" in one assignment (a Try-a-photo answer once paired the new face recognizer's crop
    with the objects classifier as "before": a tensor-size error), and the answer says which
    gallery it is about, so the page drops one that outlived its gallery."""
    import demo.workspace as workspace

    ws = Workspace(cfg)
    try:
        ws.load_sample(kind="objects")
        objects = (ws.gallery, ws.model, ws.original)
        seen = []
        real = copy.deepcopy

        def deepcopy_watching(x, *a):  # the load copies the new model as "before"
            seen.append((ws.gallery, ws.model, ws.original) == objects)
            return real(x, *a)

        monkeypatch.setattr(workspace.copy, "deepcopy", deepcopy_watching)
        ws.load_sample(kind="faces")
        monkeypatch.undo()
        assert seen and all(seen), "the new model was visible before its gallery and 'before'"
        picture = ws.gallery.test_files[0]
        res = ws.predict(test_picture=picture)
        assert res["gallery"] is ws.gallery and res["kind"] == "faces"
        ws.load_sample(kind="objects")
        assert res["gallery"] is not ws.gallery  # what the page checks before showing it
    finally:
        ws.close()
