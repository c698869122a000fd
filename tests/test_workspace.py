"""The per-session workspace behind the app (no gradio): lifetime of its files, uploads, jobs."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gslora_core.config import StudioConfig, TrainConfig
from gslora_core.workspace import (
    Job,
    Workspace,
    project_path,
    readable_error,
    sessions_root,
    sweep,
    upload_faces_root,
)

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
        ws.start_forget(["Bill_Clinton"], ws.forget_config())
    with pytest.raises(ValueError, match="load a gallery first"):
        ws.export()
    with pytest.raises(ValueError, match="upload a gallery first"):
        ws.start_enroll()
    ws.close()


@pytest.mark.slow
def test_upload_is_trained_in_the_background_and_a_bad_upload_loses_nothing(cfg, tmp_path):
    ws = Workspace(cfg)
    ws.load_sample()
    sample_model = ws.model
    # One person only: refused with the reason, the sample gallery and its model stay.
    one = tmp_path / "one" / "Kofi_Annan"
    shutil.copytree(SAMPLE / "Kofi_Annan", one)
    with pytest.raises(ValueError, match="at least 2 people"):
        ws.load_upload([str(p) for p in sorted(one.iterdir())])
    assert ws.source == "sample" and ws.model is sample_model
    # Two people as loose files named person_0001.jpg: aligned into the uploads' own crop cache
    # (shared by content hash between sessions, expiring like one), not the user-wide cache.
    files = [p for who in ("Kofi_Annan", "Tiger_Woods") for p in sorted((SAMPLE / who).iterdir())[:6]]
    overview = ws.load_upload([str(p) for p in files])
    assert [r["identity"] for r in overview["identities"]] == ["Kofi_Annan", "Tiger_Woods"]
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
    ws.close()
    assert not ws.dir.exists()
