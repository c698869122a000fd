"""LFW-100: the paper's CASIA-100 protocol rebuilt on LFW, for benchmarks.

The 100 LFW people with the most pictures (ties by name), at most 40 pictures each (the first by
the SHA-1 of the file name, as every gallery here is capped), aligned with MTCNN and split per
file into train / validation / test (``DataConfig`` with a validation share). 41 of them are in
checkpoints/lfw_holdout.json (pretraining never saw them); the other 59 were among the pictures
the backbone was distilled on, as the paper's backbone was pretrained on CASIA-Face including
its CASIA-100 people. The recognizer is enrolled from the shipped backbone with the app's own
recipe (``TrainConfig.from_backbone``), exactly as ``python -m gslora_core enroll`` would.
"""
from __future__ import annotations

from pathlib import Path

from gslora_core.config import DataConfig
from gslora_core.data import Gallery
from gslora_core.model import Recognizer

from .backbone import LFW, holdout_folder
from .galleries import enroll, enrolled_path, load_built

ROOT = Path(__file__).resolve().parents[1]
PEOPLE, CAP = 100, 40
# The benchmark's split: a quarter of each person's pictures for test, 15 % for validation
# (recipes are chosen there), the rest to train on; decided per file (see data.split_labels).
DATA = DataConfig(preprocess="mtcnn", test_fraction=0.25, val_fraction=0.15, min_test=2,
                  min_val=1)


def most_pictured(count: int = PEOPLE, lfw: Path = LFW) -> list[str]:
    """The ``count`` LFW people with the most pictures; ties broken by name."""
    sizes = [(len(list(p.glob("*.jpg"))), p.name) for p in lfw.iterdir() if p.is_dir()]
    return [n for _, n in sorted(sizes, key=lambda t: (-t[0], t[1]))[:count]]


def people(count: int = PEOPLE) -> list[str]:
    """LFW-``count``'s people in its recognizer's class order (the gallery labels its folders
    sorted by name), known without building the recognizer."""
    return sorted(most_pictured(count))


def build(root: Path = ROOT / "runs" / "galleries", lfw: Path = LFW,
          people: int = PEOPLE) -> tuple[Path, Path]:
    """(gallery folder, recognizer checkpoint) of LFW-``people``, built on first use."""
    name = f"lfw{people}"
    folder, ckpt = root / name, enrolled_path(root, name)
    if not folder.exists():
        holdout_folder(most_pictured(people, lfw), lfw, folder, CAP)
    if not ckpt.exists():
        gallery, report = enroll(folder, ckpt, DATA, DATA)
        print(f"enrolled {name}: {len(gallery.names)} people, {len(gallery.train_y)} train / "
              f"{len(gallery.val_y)} validation / {len(gallery.test_y)} test pictures, test top-1 "
              f"{report['test_accuracy']:.3f}", flush=True)
    return folder, ckpt


def load(people: int = PEOPLE) -> tuple[Recognizer, Gallery, Path]:
    """LFW-``people``'s recognizer, its gallery (in the recognizer's class order) and folder."""
    folder, ckpt = build(people=people)
    return (*load_built(folder, ckpt), folder)
