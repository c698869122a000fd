"""scripts/build_face_cache.py on real LFW pictures: several worker processes build the very cache
one process builds, and a stopped build resumes where its index ends (slow; needs the dlib
teacher of pretraining/requirements.txt)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.backbone import LFW
from pretraining.facecache import ALIGNED, INDEX, TEACHER, WIDE

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared/datasets/lfw-deepfunneled")]


def build(data: Path, out: Path, *extra: str) -> str:
    run = subprocess.run([sys.executable, "scripts/build_face_cache.py", "--data", str(data),
                          "--out", str(out), "--chunk", "4", *extra], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=600)
    return run.stdout


def test_workers_build_the_same_cache_and_a_stopped_build_resumes(tmp_path) -> None:
    pytest.importorskip("dlib")
    data = tmp_path / "faces"
    for name in ("Aaron_Peirsol", "Abdullah_Gul", "Adam_Sandler"):
        (data / name).mkdir(parents=True)
        for f in sorted((LFW / name).glob("*.jpg"))[:3]:
            shutil.copy(f, data / name / f.name)
    build(data, tmp_path / "one")
    build(data, tmp_path / "two", "--workers", "2")
    one, two = tmp_path / "one", tmp_path / "two"
    assert json.loads((one / INDEX).read_text()) == json.loads((two / INDEX).read_text())
    meta = json.loads((one / INDEX).read_text())
    assert meta["complete"] and meta["n"] == 9 and all(r["teacher_ok"] for r in meta["rows"])
    for f in (ALIGNED, TEACHER, WIDE):
        assert np.array_equal(np.load(one / f), np.load(two / f), equal_nan=True), f
    # A build stopped after its first chunk: the rest is made on resuming, the first kept.
    meta.update(rows=meta["rows"][:4], complete=False)
    (two / INDEX).write_text(json.dumps(meta))
    np.save(two / TEACHER, np.where(np.arange(9)[:, None] < 4, np.load(two / TEACHER), np.nan)
            .astype(np.float32))
    assert "resuming at row 4" in build(data, two, "--workers", "2")
    assert json.loads((two / INDEX).read_text()) == json.loads((one / INDEX).read_text())
    assert np.array_equal(np.load(one / TEACHER), np.load(two / TEACHER))


def test_the_teacher_on_an_aligned_crop_agrees_with_it_on_the_photo(tmp_path) -> None:
    """Mixed faces (pretrain --p-mix) are embedded from the cache's wide crops, not from photos:
    on real faces that must give the photo's embedding back (same person, dlib distance well
    under its 0.6 threshold), while a blend of two people is neither of them."""
    pytest.importorskip("dlib")
    from pretraining.teacher import DlibTeacher

    data = tmp_path / "faces"
    for name in ("Aaron_Peirsol", "Adam_Sandler"):
        (data / name).mkdir(parents=True)
        for f in sorted((LFW / name).glob("*.jpg"))[:2]:
            shutil.copy(f, data / name / f.name)
    build(data, tmp_path / "cache")
    wide = np.load(tmp_path / "cache" / WIDE)
    photo = np.load(tmp_path / "cache" / TEACHER)
    teacher = DlibTeacher()
    inner = 112 / wide.shape[1]
    again = np.stack([teacher.embed_aligned(w, inner) for w in wide])
    assert np.linalg.norm(again - photo, axis=1).max() < 0.3
    blend = ((wide[0].astype(np.float64) + wide[2]) / 2).round().astype(np.uint8)  # two people
    mixed = teacher.embed_aligned(blend, inner)
    assert min(np.linalg.norm(mixed - again[0]), np.linalg.norm(mixed - again[2])) > 0.3
