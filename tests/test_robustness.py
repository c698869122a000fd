"""bench/robustness.py: the shifts, the prototype classifier and the table (fast), and the quick
mode end to end on real LFW people (slow)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.backbone import LFW
from bench.robustness import markdown, nearest_prototype
from pretraining.shifts import SHIFTS, apply_shift

ROOT = Path(__file__).resolve().parents[1]


def photo() -> Image.Image:
    g = np.random.default_rng(0)
    arr = (g.random((40, 50, 3)) * 255).astype(np.uint8)
    return Image.fromarray(arr).resize((100, 80), Image.Resampling.BILINEAR)


BOX = [30.0, 20.0, 70.0, 70.0]  # a 40 x 50 face


@pytest.mark.parametrize("shift", SHIFTS)
def test_every_shift_gives_an_rgb_picture(shift: str) -> None:
    out = apply_shift(photo(), shift, BOX)
    assert out.mode == "RGB"
    assert out.size == ((112, 112) if shift == "tight_crop" else (100, 80))
    if shift != "tight_crop":
        assert (np.asarray(out) == np.asarray(photo())).all() == (shift == "clean")


def test_shift_details() -> None:
    img = photo()
    grey = np.asarray(apply_shift(img, "greyscale", BOX)).astype(int)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    cast = np.asarray(apply_shift(img, "colour_cast", BOX)).astype(float)
    src = np.asarray(img).astype(float)
    assert cast[..., 0].mean() > src[..., 0].mean() and cast[..., 2].mean() < 0.7 * src[..., 2].mean()
    # The 32 px face loses more detail than the 48 px one.
    detail = [np.abs(np.diff(np.asarray(apply_shift(img, s, BOX)).astype(float), axis=1)).mean()
              for s in ("face_32px", "face_48px", "clean")]
    assert detail[0] < detail[1] < detail[2]
    with pytest.raises(ValueError, match="unknown shift"):
        apply_shift(img, "fog", BOX)


def test_nearest_prototype() -> None:
    emb = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9], [0.8, 0.3], [0.6, 0.5]])
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    train = np.array([True, True, True, True, False, False])
    assert nearest_prototype(emb, labels, train, 2) == 0.5  # (0.6, 0.5) is nearer class 0
    assert nearest_prototype(emb, labels, np.ones(6, bool), 2) is None


def test_markdown_table() -> None:
    rows = {"clean": {"teacher": 0.99, "student_prototype": 0.9, "no_face": 0, "pictures": 10},
            "jpeg_q20": {"teacher": 0.98, "student_prototype": None, "no_face": 1, "pictures": 10}}
    table = markdown({"rows": rows})
    assert "| clean | 99.0 % | 90.0 % | 0/10 |" in table and "| jpeg_q20 | 98.0 % | – | 1/10 |" in table


@pytest.mark.slow
@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared/datasets/lfw-deepfunneled")
def test_quick_benchmark_on_real_people(tmp_path) -> None:
    """Quick mode end to end: 6 held-out people x 8 pictures, every shift, the shipped backbone
    (the teacher only where pretraining/requirements.txt is installed)."""
    try:
        import dlib  # noqa: F401
        teacher = []
    except ImportError:
        teacher = ["--no-teacher"]
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, "-m", "bench.robustness", "--quick", "--work", str(tmp_path / "w"),
                    "--out", str(out), *teacher], cwd=ROOT, check=True, timeout=600)
    res = json.loads(out.read_text())
    assert list(res["rows"]) == list(SHIFTS) and res["identities"] == 6
    clean = res["rows"]["clean"]
    assert clean["pictures"] >= 40 and clean["student_prototype"] >= 0.6
    if not teacher:
        assert clean["teacher"] >= 0.8
    assert out.with_suffix(".md").read_text().count("\n|") == len(SHIFTS) + 2  # + header rows
