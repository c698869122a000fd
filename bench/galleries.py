"""Galleries other than the sample one, built from LFW by rule, with their enrolled recognizers.

A recipe chosen on the gallery it is reported on proves nothing, so forgetting recipes are chosen
on a *validation* gallery and reported on others:

- ``validation``: 20 LFW people with 15+ pictures that are not in checkpoints/lfw_holdout.json
  (the backbone saw them in pretraining, as the paper's backbone saw CASIA-100), the first 20
  by the SHA-1 of their name; recipes are chosen here.
- ``validation2``: the next 25 of that list, a second validation gallery.
- ``validation_unseen``: the 23 people of the holdout's verification-pairs tier with 6+ pictures
  (all of them): unseen by pretraining like the report galleries, so a recipe is also chosen on
  people the backbone does not know (the two galleries above are easier: 97-100 % before).
- ``unseen``: the holdout's ``unseen_gallery``, 20 people pretraining never saw: a report gallery
  (an "uploaded gallery": nothing was chosen on it).
- ``sample``: assets/sample_gallery (20 unseen people) with the shipped recognizer: the report
  gallery of the app and the README.

Each other LFW gallery takes 15 pictures per person (the first by the SHA-1 of the file name, as
assets/sample_gallery was made) and is enrolled from the shipped backbone with the app's own
recipe (``TrainConfig.from_backbone``, seed 0), exactly what ``python -m gslora_core enroll``
does; the folder and recognizer are kept in ``runs/galleries/`` and rebuilt when missing
(delete ``runs/galleries/`` to build them again from LFW). Their crops are aligned one picture
at a time at a fixed thread count (``built``), so every machine builds the same recognizers.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Iterator

from gslora_core.alignment import FaceAligner
from gslora_core.config import DataConfig, TrainConfig
from gslora_core.data import Gallery, load_gallery, load_gallery_for
from gslora_core.model import Recognizer, load_recognizer, save_recognizer
from gslora_core.threads import torch_threads
from gslora_core.training import fix_threshold, from_backbone, train_recognizer

from .backbone import LFW, holdout_folder

ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = ROOT / "checkpoints" / "lfw_holdout.json"
BACKBONE = ROOT / "checkpoints" / "backbone.safetensors"


def backbone_path() -> Path:
    """The backbone galleries are enrolled from: the shipped one, or a candidate named by
    $GSLORA_BENCH_BACKBONE (comparing backbones on the same benchmarks)."""
    return Path(os.environ.get("GSLORA_BENCH_BACKBONE") or BACKBONE)


def enrolled_path(root: Path, name: str) -> Path:
    """Where gallery ``name``'s recognizer is kept: beside the pictures, in a folder of the
    backbone's own (a digest of its file), so another backbone never reuses it; "-alone": its
    crops were aligned one picture at a time (``built``), so no older enrolment is reused."""
    digest = hashlib.sha1(backbone_path().read_bytes()).hexdigest()[:10]
    return root / f"enrolled-{digest}-alone" / f"{name}.safetensors"


# MTCNN's landmarks move by ~1e-5 px with the pictures batched beside a picture and torch's
# thread count, which moves about half the crops by a grey level. The shared crop cache kept
# whichever crop the first run made (a test, the app, a script with 1 thread), so two machines
# enrolled the same gallery with thresholds 1e-3 apart and the benchmarks' steps differed
# (docs/results.md). Aligned alone, at a fixed thread count, into a cache of their own, a bench
# gallery's crops are its pictures' own, whoever builds it (on the same kind of CPU).
BUILD_THREADS = 2
CROPS = ROOT / "runs" / "galleries" / "crops-alone"  # never the app's (``default_cache_dir``)


@cache
def _aligner(template: str) -> FaceAligner:
    return FaceAligner(template=template, batch_size=1)


@contextmanager
def built(template: str) -> Iterator[dict]:
    """Build or read a bench gallery as above: ``load_gallery``'s crop arguments, with the
    thread count fixed for the enrolment inside too."""
    with torch_threads(BUILD_THREADS):
        yield {"cache_dir": CROPS, "aligner": _aligner(template)}


def enroll(folder: Path, ckpt: Path, data: DataConfig,
           data_config: DataConfig | None = None) -> tuple[Gallery, dict]:
    """Enroll the gallery in ``folder`` from the bench backbone with the app's own recipe
    (``TrainConfig.from_backbone``), its crops ``built``, and save the recognizer to ``ckpt``.
    ``data``: how the pictures are loaded; ``data_config``: what the recognizer records
    (``from_backbone``; default the backbone's). Returns the gallery and the training report."""
    backbone = load_recognizer(backbone_path())
    with built(backbone.cfg.face_template) as crops:
        gallery = load_gallery(folder, backbone.cfg.img_size, data,
                               template=backbone.cfg.face_template, **crops)
        model = from_backbone(backbone, gallery, data_config)
        report = train_recognizer(model, gallery, TrainConfig.from_backbone())
    save_recognizer(model, ckpt)
    return gallery, report


SAMPLE = (ROOT / "assets" / "sample_gallery", ROOT / "checkpoints" / "sample_recognizer.safetensors")
NAMES = ["sample", "validation", "validation2", "validation_unseen", "unseen"]
PER_IDENTITY = 15


def seen_tier(lfw: Path = LFW, min_pictures: int = 15) -> list[str]:
    """LFW people with ``min_pictures``+ pictures that pretraining saw, ordered by name SHA-1."""
    hold = json.loads(HOLDOUT.read_text())
    held = {n for v in hold.values() if isinstance(v, list) for n in v}
    names = [p.name for p in lfw.iterdir()
             if p.is_dir() and p.name not in held and len(list(p.glob("*.jpg"))) >= min_pictures]
    return sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())


def identities(name: str, lfw: Path = LFW) -> list[str]:
    if name == "validation":
        return seen_tier(lfw)[:20]
    if name == "validation2":
        return seen_tier(lfw)[20:45]
    if name == "unseen":
        return json.loads(HOLDOUT.read_text())["unseen_gallery"]
    if name == "validation_unseen":
        return [n for n in json.loads(HOLDOUT.read_text())["pairs_only"]
                if len(list((lfw / n).glob("*.jpg"))) >= 6]
    raise ValueError(f"unknown gallery {name!r}; choose one of {', '.join(NAMES)}")


def gallery_files(name: str, root: Path = ROOT / "runs" / "galleries",
                  lfw: Path = LFW) -> tuple[Path, Path]:
    """(gallery folder, recognizer checkpoint), built on first use."""
    if name == "sample":
        return SAMPLE
    folder, ckpt = root / name, enrolled_path(root, name)
    if not folder.exists():
        per_identity = None if name == "validation_unseen" else PER_IDENTITY
        holdout_folder(identities(name, lfw), lfw, folder, per_identity)
    if not ckpt.exists():
        gallery, report = enroll(folder, ckpt, DataConfig(preprocess="mtcnn"))
        print(f"enrolled {name}: {len(gallery.names)} people, test top-1 "
              f"{report['test_accuracy']:.3f}", flush=True)
    return folder, ckpt


def as_enrolled(model: Recognizer, gallery: Gallery, ckpt: Path) -> Recognizer:
    """A cached recognizer as enrollment leaves one today: a checkpoint enrolled before
    recognizers kept their open-set threshold gets the one ``train_recognizer`` fixes (on
    everyone, on validation pictures where the gallery has them), saved. Without it, every
    task fixed the same threshold again (1.8 s a task on LFW-100), which a fresh build never
    pays: the benchmarks' seconds then depended on when their recognizer was built."""
    if model.threshold is None:
        fix_threshold(model, gallery, TrainConfig.from_backbone().open_set_keep)
        save_recognizer(model, ckpt)
        print(f"{ckpt.name}: open-set threshold fixed as enrollment does "
              f"({model.threshold.tau:.4f})", flush=True)
    return model


def load_built(folder: Path, ckpt: Path) -> tuple[Recognizer, Gallery]:
    """A built gallery's recognizer (``as_enrolled``) and its gallery in the recognizer's class
    order."""
    model = load_recognizer(ckpt)
    with built(model.cfg.face_template) as crops:
        gallery = load_gallery_for(model, folder, **crops)
    return as_enrolled(model, gallery, ckpt), gallery


def load(name: str) -> tuple[Recognizer, Gallery, Path]:
    """The gallery's recognizer, its gallery (in the recognizer's class order) and folder."""
    folder, ckpt = gallery_files(name)
    return (*load_built(folder, ckpt), folder)
