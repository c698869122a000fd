"""Where does the student fall short of its teacher: on new people, or already on the people it
was distilled on? (issue 15)

    python -m bench.fit_gap --cache runs/cache --out bench/results/fit_gap.json   # ~2 min, 1 core

The same verification protocol (``metrics.make_pairs``, 10-fold threshold, test-time flip) on
two sets of clean aligned crops from the face cache: the held-out test people
(checkpoints/lfw_holdout.json, never trained on) and as many people the backbone *was* distilled
on (random identities of the cache outside the held-out and validation people, 2-20 pictures
each). The teacher (dlib, centred like the distillation targets) is scored on the same pairs.

Why: if the student verifies trained-on people much better than new ones, it overfits and
needs more (or more varied) data; if it is as far from the teacher on both, it underfits: a
bigger student or more optimisation, not more pictures, closes the gap.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gslora_core.metrics import embed_all, make_pairs, verification_accuracy
from gslora_core.model import Recognizer, load_recognizer
from pretraining.cli import read_holdout
from pretraining.facecache import load_face_cache
from pretraining.pretrain import DistillSet, split_holdout

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class FitGapConfig:
    people: int = 250  # trained-on identities drawn (the held-out set has 190)
    min_pictures: int = 2
    max_pictures: int = 20  # no few-person dominance, as the held-out set (2-15 pictures)
    pairs: int = 3000
    seed: int = 0


def score(model: Recognizer, part: DistillSet, center: torch.Tensor, cfg: FitGapConfig) -> dict:
    """Student and teacher verification accuracy on the same pairs of ``part``."""
    names = sorted(set(part.identities))
    pairs = make_pairs([names.index(i) for i in part.identities], cfg.pairs, cfg.seed)
    student = verification_accuracy(embed_all(model, part.images.permute(0, 3, 1, 2)), *pairs)
    teacher = verification_accuracy(F.normalize(part.targets - center, dim=-1), *pairs)
    return {"identities": len(names), "pictures": len(part.images),
            "student": student["accuracy"], "student_std": student["std"],
            "teacher": teacher["accuracy"], "teacher_std": teacher["std"]}


def fit_gap(model: Recognizer, data: DistillSet, held_out: set[str], validation: set[str],
            cfg: FitGapConfig = FitGapConfig()) -> dict:
    """Rows "trained_on" and "held_out" (see the module docstring)."""
    trained, test = split_holdout(data, held_out)
    trained, _ = split_holdout(trained, validation)  # a run may have kept them out: never count them
    if not test.identities:
        raise ValueError("none of the held-out people are in the cache")
    counts = Counter(trained.identities)
    pool = sorted(n for n, k in counts.items() if cfg.min_pictures <= k <= cfg.max_pictures)
    rng = np.random.default_rng(cfg.seed)
    chosen = set(rng.choice(pool, min(cfg.people, len(pool)), replace=False).tolist())
    seen = trained.subset([i in chosen for i in trained.identities])
    center = trained.targets.mean(0)  # the distillation targets are centred on the training mean
    return {"trained_on": score(model, seen, center, cfg), "held_out": score(model, test, center, cfg)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default=str(ROOT / "checkpoints" / "backbone.safetensors"))
    ap.add_argument("--cache", required=True, help="the face cache the backbone was distilled from")
    ap.add_argument("--holdout", default=str(ROOT / "checkpoints" / "lfw_holdout.json"))
    ap.add_argument("--validation", default=str(ROOT / "checkpoints" / "lfw_validation.json"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    cfg = FitGapConfig()
    res = fit_gap(load_recognizer(a.backbone), load_face_cache(a.cache), read_holdout(a.holdout),
                  read_holdout(a.validation), cfg)
    res.update(backbone=a.backbone, config=asdict(cfg), date=time.strftime("%Y-%m-%d"),
               machine=f"{platform.machine()}, {a.threads} torch threads, CPU",
               seconds=round(time.perf_counter() - t0, 1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    for k in ("trained_on", "held_out"):
        r = res[k]
        print(f"{k}: {r['identities']} people, {r['pictures']} pictures: student "
              f"{100 * r['student']:.1f} %, teacher {100 * r['teacher']:.1f} %")


if __name__ == "__main__":
    main()
