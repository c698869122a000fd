"""Robustness benchmark (issue 15): held-out LFW people enrolled and tested under photo shifts,
the dlib teacher and the student backbone side by side.

    python -m bench.robustness --backbone checkpoints/backbone.safetensors \
        --out bench/results/robustness.json          # ~15 min on one core the first time
    python -m bench.robustness --quick --out /tmp/robustness_quick.json   # CI: ~1 min

Why: LFW pair verification only measures LFW's own photo style. A visitor uploads tight crops,
greyscale scans, small faces, heavily compressed or tinted photos. Each shift below changes every
picture of the gallery (enrollment *and* test pictures, as one upload would), then everything
goes through the app's own path: MTCNN + alignment (``FaceAligner``), deterministic train/test
split (``split_labels``, 25 % test).

People: the held-out ``sample_gallery`` and ``unseen_gallery`` identities of
checkpoints/lfw_holdout.json (40), the first 15 pictures of each by sha1 of the file name (as
bench/backbone.py picks them). Pretraining never saw them, nor chose a checkpoint on them.

Classifiers, per shift:
- teacher: dlib embeddings (box from the same MTCNN detection) as a nearest-prototype classifier
  (mean of each person's unit train embeddings, cosine);
- student_prototype: the backbone's embeddings (with the test-time flip), the same classifier;
- student_enrolled (full mode): the recognizer ``enroll`` trains on the split (from_backbone +
  train_recognizer with TrainConfig.from_backbone()), its test top-1.

Aligned crops and teacher embeddings are kept in ``--work`` (one .npz per shift), so scoring
another backbone later costs only its embeddings and enrollments.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gslora_core.config import DataConfig, TrainConfig
from gslora_core.data import Gallery, split_labels
from gslora_core.metrics import embed_all
from gslora_core.model import Recognizer, load_recognizer
from gslora_core.training import from_backbone, train_recognizer
from pretraining.shifts import CAST_GAINS, SHIFTS, TIGHT_SIDE, apply_shift

from .backbone import LFW

ROOT = Path(__file__).resolve().parents[1]
VERSION = 1  # part of the work files' key: change it when a shift's definition changes


@dataclass(frozen=True)
class BenchConfig:
    """What is measured: which people, how many pictures, which shifts."""

    groups: tuple[str, ...] = ("sample_gallery", "unseen_gallery")
    per_identity: int = 15
    max_identities: int = 0  # 0: every identity of the groups
    shifts: tuple[str, ...] = SHIFTS
    enroll: bool = True

    @staticmethod
    def quick() -> BenchConfig:
        """CI: 6 people x 8 pictures, every shift, no enrollment training."""
        return BenchConfig(groups=("unseen_gallery",), per_identity=8, max_identities=6,
                           enroll=False)


def pick_files(names: list[str], lfw: Path, per_identity: int) -> list[Path]:
    """Each identity's first ``per_identity`` pictures by sha1 of the file name."""
    out = []
    for name in names:
        files = sorted((lfw / name).glob("*.jpg"), key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
        out += files[:per_identity]
    return out


def nearest_prototype(emb: torch.Tensor, labels: torch.Tensor, train: np.ndarray,
                      n_classes: int) -> float | None:
    """Top-1 of the test rows (``~train``) against mean unit train embeddings, by cosine."""
    e = F.normalize(emb.float(), dim=-1)
    tr, te = torch.from_numpy(train), torch.from_numpy(~train)
    if not te.any():
        return None
    protos = torch.zeros(n_classes, e.shape[1]).index_add_(0, labels[tr], e[tr])
    pred = (e[te] @ F.normalize(protos, dim=-1).T).argmax(1)
    return float((pred == labels[te]).float().mean())


class ShiftData:
    """One shift's aligned crops, split and (optionally) teacher embeddings, cached on disk."""

    def __init__(self, path: Path):
        z = np.load(path, allow_pickle=False)
        self.labels_text = [str(s) for s in z["labels"]]
        self.crops = torch.from_numpy(z["crops"]).permute(0, 3, 1, 2)  # uint8 (N, 3, S, S)
        self.ok = z["ok"]  # a face was found (the app keeps the picture)
        self.teacher = torch.from_numpy(z["teacher"]) if "teacher" in z else None
        self.names = sorted({t.split("/")[0] for t in self.labels_text})
        self.y = torch.tensor([self.names.index(t.split("/")[0]) for t in self.labels_text])
        self.methods = [str(m) for m in z["methods"]]
        by_id: dict[str, list[str]] = {}
        for t in self.labels_text:
            by_id.setdefault(t.split("/")[0], []).append(t)
        split = DataConfig(split="rank")  # the rule its stored results were measured with
        train = {t for labels in by_id.values() for t in split_labels(labels, split)[0]}
        self.train = np.array([t in train for t in self.labels_text])


def prepare(files: list[Path], lfw: Path, cfg: BenchConfig, work: Path, teacher: bool,
            template: str = "arcface") -> dict[str, Path]:
    """Shifted pictures -> crops aligned to ``template`` (+ teacher embeddings) per shift, in
    ``work``."""
    from gslora_core.alignment import FaceAligner

    files_key = [f.relative_to(lfw).as_posix() for f in files]
    key = hashlib.sha1(json.dumps([VERSION, files_key] + ([template] if template != "arcface"
                                                          else [])).encode()).hexdigest()[:10]
    paths = {s: work / f"{s}-{key}{'-t' if teacher else ''}.npz" for s in cfg.shifts}
    todo = [s for s in cfg.shifts if not paths[s].exists()]
    if not todo:
        return paths
    aligner = FaceAligner(template=template)
    side = aligner.size
    dlib_teacher = None
    if teacher:
        from pretraining.teacher import DlibTeacher
        dlib_teacher = DlibTeacher()
    images = [Image.open(f).convert("RGB") for f in files]
    labels = [f.relative_to(lfw).as_posix() for f in files]
    clean = aligner.align_many(images)
    # Pictures without a face on the clean photo have no box to shift from: left out everywhere.
    keep = [i for i, r in enumerate(clean) if r.box is not None]
    work.mkdir(parents=True, exist_ok=True)
    for s in todo:
        t0 = time.perf_counter()
        shifted = [apply_shift(images[i], s, clean[i].box) for i in keep]
        res = aligner.align_many(shifted)
        crops = np.stack([np.asarray(r.crop, np.uint8) if r.crop is not None
                          else np.zeros((side, side, 3), np.uint8) for r in res])
        arrays = {"labels": np.array([labels[i] for i in keep]), "crops": crops,
                  "ok": np.array([r.crop is not None for r in res]),
                  "methods": np.array([r.method for r in res])}
        if dlib_teacher is not None:
            emb = np.full((len(res), 128), np.nan, np.float32)
            for j, (im, r) in enumerate(zip(shifted, res)):
                if r.crop is not None:
                    v = dlib_teacher.embed(im, r.box)
                    if v is not None:
                        emb[j] = v
            arrays["teacher"] = emb
        np.savez(paths[s].with_suffix(".tmp.npz"), **arrays)
        paths[s].with_suffix(".tmp.npz").replace(paths[s])
        print(f"  {s}: {len(keep)} pictures aligned{' + teacher' if teacher else ''} "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


def score_shift(d: ShiftData, backbone: Recognizer | None, enroll: bool) -> dict:
    """One row: teacher and student accuracies on this shift's split."""
    n_cls = len(d.names)
    ok = torch.from_numpy(d.ok)
    row: dict = {"pictures": len(d.ok), "no_face": int((~d.ok).sum()),
                 "as_is": d.methods.count("as-is"), "test": int((~d.train & d.ok).sum())}
    # Pictures the app would refuse (no face) are out of enrollment; in the test split they
    # count as errors for every classifier (the visitor gets no answer).
    test_total = int((~d.train).sum())
    if d.teacher is not None:
        t_ok = ok & torch.isfinite(d.teacher).all(1)
        acc = nearest_prototype(d.teacher[t_ok], d.y[t_ok], d.train[t_ok.numpy()], n_cls)
        row["teacher"] = None if acc is None else acc * int((~d.train[t_ok.numpy()]).sum()) / test_total
    if backbone is None:
        return row
    keep = ok.numpy()
    if backbone.cfg.face_template == "dlib":  # dlib's network itself on the app's chips
        acc = nearest_prototype(dlib_embeddings(d.crops[ok]), d.y[ok], d.train[keep], n_cls)
        row["dlib_chips"] = None if acc is None else acc * int((~d.train[keep]).sum()) / test_total
    emb = embed_all(backbone, d.crops[ok])
    acc = nearest_prototype(emb, d.y[ok], d.train[keep], n_cls)
    row["student_prototype"] = None if acc is None else acc * int((~d.train[keep]).sum()) / test_total
    if enroll:
        tr, te = torch.from_numpy(d.train & keep), torch.from_numpy(~d.train & keep)
        gallery = Gallery(names=d.names, train_x=d.crops[tr], train_y=d.y[tr],
                          test_x=d.crops[te], test_y=d.y[te])
        model = from_backbone(backbone, gallery, DataConfig(preprocess="mtcnn", split="rank"))
        report = train_recognizer(model, gallery, TrainConfig.from_backbone())
        row["student_enrolled"] = report["test_accuracy"] * int(te.sum()) / test_total
    return row


@torch.no_grad()
def dlib_embeddings(chips: torch.Tensor) -> torch.Tensor:
    """The ported dlib network's descriptors of 150 px chips, the mirror image averaged."""
    from gslora_core.dlib_resnet import DlibResNet, teacher

    net = teacher()
    out = []
    for i in range(0, len(chips), 128):
        x = DlibResNet.normalize(chips[i:i + 128])
        out.append(F.normalize(net(x), dim=-1) + F.normalize(net(x.flip(-1)), dim=-1))
    return torch.cat(out) if out else torch.zeros(0, 128)


def markdown(results: dict) -> str:
    """The results as a Markdown table (percentages, one row per shift)."""
    cols = [("teacher", "teacher (dlib, prototype)"),
            ("dlib_chips", "dlib on the app's chips (prototype)"),
            ("student_prototype", "student (prototype)"),
            ("student_enrolled", "student (enrolled)")]
    cols = [c for c in cols if any(c[0] in r for r in results["rows"].values())]
    lines = ["| shift | " + " | ".join(c[1] for c in cols) + " | no face |",
             "|---|" + "---|" * (len(cols) + 1)]
    for shift, r in results["rows"].items():
        cells = ["–" if r.get(k) is None else f"{100 * r[k]:.1f} %" for k, _ in cols]
        lines.append(f"| {shift} | " + " | ".join(cells) + f" | {r['no_face']}/{r['pictures']} |")
    return "\n".join(lines)


def run(backbone_path: str | None, lfw: Path, holdout: Path, cfg: BenchConfig, work: Path,
        teacher: bool) -> dict:
    hold = json.loads(holdout.read_text())
    names = sorted({n for g in cfg.groups for n in hold[g]})
    if cfg.max_identities:
        names = names[:cfg.max_identities]
    files = pick_files(names, lfw, cfg.per_identity)
    t0 = time.perf_counter()
    backbone = load_recognizer(backbone_path) if backbone_path else None
    paths = prepare(files, lfw, cfg, work, teacher,
                    backbone.cfg.face_template if backbone else "arcface")
    results: dict = {"backbone": backbone_path, "date": time.strftime("%Y-%m-%d"),
                     "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                                f"{'CUDA' if torch.cuda.is_available() else 'CPU'}",
                     "config": {**cfg.__dict__, "cast_gains": CAST_GAINS, "tight_side": TIGHT_SIDE},
                     "identities": len(names), "rows": {}}
    for s in cfg.shifts:
        d = ShiftData(paths[s])
        results["rows"][s] = score_shift(d, backbone, cfg.enroll)
        print(s, results["rows"][s], flush=True)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default=str(ROOT / "checkpoints" / "backbone.safetensors"),
                    help="backbone to score ('' for the teacher only)")
    ap.add_argument("--holdout", default=str(ROOT / "checkpoints" / "lfw_holdout.json"))
    ap.add_argument("--lfw", default=str(LFW))
    ap.add_argument("--quick", action="store_true", help="6 people x 8 pictures, no enrollment")
    ap.add_argument("--no-teacher", action="store_true", help="skip dlib (pretraining/requirements.txt)")
    ap.add_argument("--no-enroll", action="store_true")
    ap.add_argument("--work", default=str(ROOT / "runs" / "robustness"),
                    help="where aligned crops and teacher embeddings are kept between runs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "robustness.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = BenchConfig.quick() if a.quick else BenchConfig()
    if a.no_enroll:
        cfg = BenchConfig(**{**cfg.__dict__, "enroll": False})
    results = run(a.backbone or None, Path(a.lfw), Path(a.holdout), cfg, Path(a.work),
                  teacher=not a.no_teacher)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    out.with_suffix(".md").write_text(f"Robustness ({results['date']}, {results['machine']}, "
                                      f"backbone `{results['backbone']}`), test top-1:\n\n{table}\n")
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
