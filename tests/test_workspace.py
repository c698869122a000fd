"""The per-session workspace behind the app (no gradio): lifetime of its files, uploads, jobs."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace

import pytest
from gslora_core.config import StudioConfig, TrainConfig
from gslora_core.workspace import Job, Workspace, project_path, readable_error, sweep

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


def test_job_reports_errors_in_words_and_cancel_sets_the_flag():
    job = Job("forget", lambda progress, cancelled: 1 / 0).start()
    job.wait(10)
    assert job.done and job.error.startswith("ZeroDivisionError")

    def slow(progress, cancelled):
        while not cancelled():
            progress({"step": 1})
            time.sleep(0.01)
        raise InterruptedError("stopped")
    job = Job("enroll", slow).start()
    job.cancel()
    assert job.wait(10) and job.cancelled and job.error is None
    assert readable_error(KeyError("not in the gallery: X")) == "not in the gallery: X"


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
    # Two people as loose files named person_0001.jpg: aligned into the session's own cache.
    files = [p for who in ("Kofi_Annan", "Tiger_Woods") for p in sorted((SAMPLE / who).iterdir())[:6]]
    overview = ws.load_upload([str(p) for p in files])
    assert [r["identity"] for r in overview["identities"]] == ["Kofi_Annan", "Tiger_Woods"]
    assert any((ws.dir / "faces").rglob("*.png")), "an upload's faces must stay in its session"
    assert ws.model is None and not overview["ready"]
    job = ws.start_enroll()
    assert job.wait(300) and job.error is None
    assert ws.model is not None and ws.recognizer_report["acc_all"] is not None
    assert ws.candidates() == ["Kofi_Annan", "Tiger_Woods"]
    ws.close()
    assert not ws.dir.exists()
