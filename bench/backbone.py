"""Issue-4 targets for the shipped backbone, measured in one run and written to a JSON file.

    python -m bench.backbone --backbone checkpoints/backbone.safetensors --out bench/results/backbone.json

1. Verification: LFW-style pairs (half same, half different, 10-fold threshold) over every
   identity in checkpoints/lfw_holdout.json, none of which pretraining saw.
2. Sample gallery (assets/sample_gallery): enroll from the backbone, test top-1.
3. Unseen gallery: the holdout's "unseen_gallery" identities, 15 pictures each, enroll, top-1.
4. CPU speed: MTCNN alignment in pictures/s, and enrolling the 20-identity, 300-picture sample
   gallery end to end (alignment with an empty cache + training), in seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from gslora_core.config import DataConfig, TrainConfig
from gslora_core.data import crop_faces, load_gallery, to_tensor
from gslora_core.ingest import decode_all, from_folder
from gslora_core.metrics import embed_all, make_pairs, verification_accuracy
from gslora_core.model import load_recognizer
from gslora_core.training import from_backbone, train_recognizer

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "datasets" / "lfw-deepfunneled"


def holdout_folder(names: list[str], lfw: Path, dest: Path, per_identity: int | None) -> Path:
    """Link (or copy) the held-out identities' pictures into ``dest``; ``per_identity`` picks the
    first N by a hash of the file name (as assets/sample_gallery was made)."""
    for name in names:
        files = sorted((lfw / name).glob("*.jpg"),
                       key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
        (dest / name).mkdir(parents=True, exist_ok=True)
        for f in files[:per_identity] if per_identity else files:
            shutil.copy(f, dest / name / f.name)
    return dest


def verification(backbone, folder: Path, cache: Path, pairs: int) -> dict:
    files, _ = from_folder(folder)
    pictures, _ = decode_all(files)
    kept, no_face, _ = crop_faces(pictures, DataConfig(preprocess="mtcnn"), backbone.cfg.img_size,
                                  cache, template=backbone.cfg.face_template)
    names = sorted({p.identity for p, _, _ in kept})
    labels = [names.index(p.identity) for p, _, _ in kept]
    images = torch.stack([to_tensor(c) for _, c, _ in kept])
    emb = embed_all(backbone, images)
    chosen = make_pairs(labels, pairs, seed=0)
    result = verification_accuracy(emb, *chosen)
    out = {**result, "identities": len(names), "pictures": len(kept), "no_face": len(no_face)}
    if backbone.cfg.face_template == "dlib":  # dlib's own network on the same chips and pairs
        from .robustness import dlib_embeddings

        out["dlib"] = verification_accuracy(dlib_embeddings(images), *chosen)
    return out


# The split the shipped sample recognizer was enrolled on and the stored results were measured
# with (the first checkpoints' rule): every backbone is scored on the same test pictures.
GALLERY_DATA = DataConfig(preprocess="mtcnn", split="rank")


def enroll(backbone, folder: Path, cache: Path) -> dict:
    t0 = time.perf_counter()
    gallery = load_gallery(folder, backbone.cfg.img_size, GALLERY_DATA, cache_dir=cache,
                           template=backbone.cfg.face_template)
    t_align = time.perf_counter() - t0
    model = from_backbone(backbone, gallery, GALLERY_DATA)
    report = train_recognizer(model, gallery, TrainConfig.from_backbone())
    pictures = len(gallery.train_y) + len(gallery.test_y)
    extra = {}
    if backbone.cfg.face_template == "dlib":  # dlib's own network, nearest class mean
        from .robustness import dlib_embeddings, nearest_prototype

        x = torch.cat([gallery.train_x, gallery.test_x])
        y = torch.cat([gallery.train_y, gallery.test_y])
        train = torch.arange(len(y)) < len(gallery.train_y)
        extra["dlib_prototype_top1"] = nearest_prototype(dlib_embeddings(x), y, train.numpy(),
                                                         len(gallery.names))
    return {"test_top1": report["test_accuracy"], **extra, "identities": len(gallery.names),
            "train": len(gallery.train_y), "test": len(gallery.test_y),
            "rejected": len(gallery.rejected),
            "align_seconds": round(t_align, 1), "align_images_per_second": round(pictures / t_align, 1),
            "train_seconds": round(report["seconds"], 1),
            "total_seconds": round(time.perf_counter() - t0, 1),
            "per_identity": report["per_identity"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default=str(ROOT / "checkpoints" / "backbone.safetensors"))
    ap.add_argument("--holdout", default=str(ROOT / "checkpoints" / "lfw_holdout.json"))
    ap.add_argument("--gallery", default=str(ROOT / "assets" / "sample_gallery"))
    ap.add_argument("--lfw", default=str(LFW))
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "backbone.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    backbone = load_recognizer(a.backbone)
    hold = json.loads(Path(a.holdout).read_text())
    lfw = Path(a.lfw)
    results: dict = {"backbone": a.backbone, "date": time.strftime("%Y-%m-%d"),
                     "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                                f"{'CUDA' if torch.cuda.is_available() else 'CPU'}"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Enrollment first, with an empty crop cache: its alignment time is the real one.
        results["sample_gallery"] = enroll(backbone, Path(a.gallery), tmp / "cache")
        print("sample gallery", {k: v for k, v in results["sample_gallery"].items()
                                 if k != "per_identity"}, flush=True)
        unseen = holdout_folder(hold["unseen_gallery"], lfw, tmp / "unseen", 15)
        results["unseen_gallery"] = enroll(backbone, unseen, tmp / "cache")
        print("unseen gallery", {k: v for k, v in results["unseen_gallery"].items()
                                 if k != "per_identity"}, flush=True)
        names = sorted({n for v in hold.values() if isinstance(v, list) for n in v})
        pairs_dir = holdout_folder(names, lfw, tmp / "pairs", None)
        results["verification"] = verification(backbone, pairs_dir, tmp / "cache", a.pairs)
        if "dlib" in results["verification"]:
            results["verification_dlib"] = results["verification"].pop("dlib")
        print("verification", results["verification"], flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
