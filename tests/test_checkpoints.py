"""The shipped checkpoints: they load, their card matches their config, and the sample
recognizer recognizes the sample gallery's held-back test pictures."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gslora_core.data import load_gallery_for
from gslora_core.evaluation import evaluate
from gslora_core.model import load_recognizer, read_metadata

ROOT = Path(__file__).resolve().parents[1]
CK = ROOT / "checkpoints"
GALLERY = ROOT / "assets" / "sample_gallery"


def card_configs() -> list[dict]:
    text = (CK / "README.md").read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def test_checkpoints_load_and_match_their_card() -> None:
    backbone = read_metadata(CK / "backbone.safetensors")
    sample = read_metadata(CK / "sample_recognizer.safetensors")
    assert card_configs() == [backbone["model"], sample["model"]]
    assert backbone["class_names"] == [] and backbone["data"]["preprocess"] == "mtcnn"
    assert sample["class_names"] == sorted(p.name for p in GALLERY.iterdir() if p.is_dir())
    assert sample["tasks"] == []
    model = load_recognizer(CK / "sample_recognizer.safetensors")
    assert model.head.weight.shape == (len(sample["class_names"]), model.cfg.embedding_dim)


def test_sample_gallery_was_kept_out_of_pretraining() -> None:
    hold = json.loads((CK / "lfw_holdout.json").read_text())
    assert sorted(p.name for p in GALLERY.iterdir() if p.is_dir()) == hold["sample_gallery"]


@pytest.mark.slow
def test_sample_recognizer_recognizes_the_sample_gallery() -> None:
    model = load_recognizer(CK / "sample_recognizer.safetensors")
    gallery = load_gallery_for(model, GALLERY)
    assert gallery.rejected == [] and len(gallery.test_y) == 80
    report = evaluate(model, gallery)
    # The model card states the measured figure; this is the floor it must not fall under.
    assert report["acc_all"] >= 0.90, report


@pytest.mark.slow
def test_cli_predict_names_the_known_probe_photos_and_refuses_a_non_image(tmp_path: Path) -> None:
    import subprocess
    import sys

    known = sorted(p for p in (ROOT / "assets" / "probes").iterdir()
                   if p.stem.rsplit("_", 1)[0] in read_metadata(
                       CK / "sample_recognizer.safetensors")["class_names"])
    assert len(known) == 5
    proc = subprocess.run([sys.executable, "-m", "gslora_core", "predict", "--checkpoint",
                           str(CK / "sample_recognizer.safetensors"), "--photo",
                           *map(str, known), "--k", "3"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    preds = json.loads(proc.stdout)["predictions"]
    assert [p["top"][0]["identity"] for p in preds] == [p.stem.rsplit("_", 1)[0] for p in known]
    assert all(len(p["top"]) == 3 and p["face"] == "mtcnn" for p in preds)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    proc = subprocess.run([sys.executable, "-m", "gslora_core", "predict", "--checkpoint",
                           str(CK / "sample_recognizer.safetensors"), "--photo", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "notes.jpg: not an image" in proc.stderr
