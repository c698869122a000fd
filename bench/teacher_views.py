"""Should the distillation target be the teacher's embedding of the clean picture or of the
augmented view the student sees? Measured on the validation people (never the test people).

    python -m bench.teacher_views --out bench/results/teacher_views.json     # ~10 min, one core

For each validation picture: MTCNN + alignment as in the face cache, the cache's target (dlib on
the photo, MTCNN box), dlib on the aligned crop the student sees, and dlib on that crop after
each augmentation of pretraining/augment.py at full strength. Per view: the mean cosine between
the view's teacher embedding and the clean target, and the teacher's own verification accuracy
on the validation pairs when it only sees that view. A view whose teacher embedding loses
identity (accuracy falls) would hand the student the teacher's mistakes as targets; a view whose
embedding barely moves (cosine ~1) makes the two choices the same, and the clean target then
costs nothing (no dlib at training time).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gslora_core.alignment import TEMPLATE_112, FaceAligner, umeyama, warp_to_template
from gslora_core.metrics import make_pairs, verification_accuracy
from pretraining import augment as A

from .backbone import LFW

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 24


def student_views(wide: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every augmentation at full strength on uint8 wide crops (N, 3, 160, 160) -> uint8 112."""
    gen = torch.Generator().manual_seed(seed)
    inner = 112 / wide.shape[-1]
    x = A.frame(wide, 112, inner, gen, flip=False)
    every = torch.ones(len(x), dtype=torch.bool)
    views = {"aligned": x,
             "zoom_in_0.85": A.frame(wide, 112, inner, gen, (0.85, 0.85), flip=False),
             "zoom_out_1.2": A.frame(wide, 112, inner, gen, (1.2, 1.2), flip=False),
             "shift_rotate": A.frame(wide, 112, inner, gen, (1.0, 1.0), 0.06, 10.0, flip=False),
             "tight": A.tight_crop(x, every, gen), "grey": A.greyscale(x, every),
             "lowres32": A.low_resolution(x, every, gen, 32, 32),
             "blur1.8": A.gaussian_blur(x, every, gen, 1.8),
             "jpeg20": A.jpeg(x, every, gen, 20, 20), "cast0.35": A.colour_cast(x, every, gen, 0.35)}
    return {k: (v * 255).round().clamp(0, 255).to(torch.uint8) for k, v in views.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--validation", default=str(ROOT / "checkpoints" / "lfw_validation.json"))
    ap.add_argument("--lfw", default=str(LFW))
    ap.add_argument("--limit", type=int, default=0, help="only the first N pictures")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "teacher_views.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    from pretraining.teacher import DlibTeacher

    val = json.loads(Path(a.validation).read_text())
    names = sorted(n for v in val.values() if isinstance(v, list) for n in v)
    files = [f for n in names for f in sorted((Path(a.lfw) / n).glob("*.jpg"),
                                             key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())]
    if a.limit:
        files = files[:a.limit]
    t0 = time.perf_counter()
    aligner, teacher = FaceAligner(), DlibTeacher()
    photos = [Image.open(f).convert("RGB") for f in files]
    found, targets = [], []
    for f, im, r in zip(files, photos, aligner.align_many(photos)):
        t = teacher.embed(im, r.box) if r.points else None
        if t is not None:  # as in the face cache: no face or no teacher, no row
            found.append((f, im, r))
            targets.append(t)
    # The face box in aligned coordinates: dlib's landmark model wants a box around the face.
    boxes = []
    wides = []
    for _, im, r in found:
        m = umeyama(np.asarray(r.points), TEMPLATE_112)
        corners = np.array([[r.box[0], r.box[1]], [r.box[2], r.box[3]]]) @ m[:, :2].T + m[:, 2]
        boxes.append(corners.ravel().tolist())
        wides.append(np.asarray(warp_to_template(im, np.asarray(r.points), 112, MARGIN), np.uint8))
    wide = torch.from_numpy(np.stack(wides)).permute(0, 3, 1, 2)
    views = student_views(wide)
    emb: dict[str, np.ndarray] = {}
    emb["photo (cache target)"] = np.stack(targets)
    for k, v in views.items():
        rows = []
        for img, box in zip(v.permute(0, 2, 3, 1).numpy(), boxes):
            e = teacher.embed(Image.fromarray(img), box)
            rows.append(np.full(128, np.nan, np.float32) if e is None else e)
        emb[k] = np.stack(rows)
        print(k, f"{time.perf_counter() - t0:.0f} s", flush=True)
    ids = [f.parent.name for f, _, _ in found]
    labels = [sorted(set(ids)).index(i) for i in ids]
    pairs = make_pairs(labels, 2000, seed=0)
    target = emb["photo (cache target)"]
    # Cosines of centred embeddings, as pretraining's targets are centred (raw dlib vectors of
    # any two faces are at ~0.83). Reference: the same person in another photo.
    mu = target.mean(0)
    unit = (target - mu) / np.linalg.norm(target - mu, axis=1, keepdims=True)
    same = pairs[0][pairs[1]]
    results: dict = {"date": time.strftime("%Y-%m-%d"), "pictures": len(found),
                     "identities": len(set(ids)), "pairs": len(pairs[0]),
                     "cos_same_person_other_photo":
                         float((unit[same[:, 0]] * unit[same[:, 1]]).sum(1).mean()),
                     "views": {}}
    for k, e in emb.items():
        ok = np.isfinite(e).all(1)
        e = np.where(ok[:, None], e, target)  # a dlib failure falls back to the clean target
        cos = ((e - mu) * unit).sum(1) / np.linalg.norm(e - mu, axis=1)
        centred = torch.from_numpy(e - mu)
        results["views"][k] = {
            "cos_to_clean_target": float(cos.mean()), "cos_p10": float(np.percentile(cos, 10)),
            "teacher_verification": verification_accuracy(centred, *pairs)["accuracy"],
            "dlib_failures": int((~ok).sum())}
        print(k, results["views"][k], flush=True)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    lines = ["| view the teacher sees | cos to clean target (mean / p10) | teacher verification |",
             "|---|---|---|"]
    for k, r in results["views"].items():
        lines.append(f"| {k} | {r['cos_to_clean_target']:.3f} / {r['cos_p10']:.3f} | "
                     f"{100 * r['teacher_verification']:.1f} % |")
    out.with_suffix(".md").write_text(
        f"Teacher embeddings of the student's views ({results['date']}, {results['pictures']} "
        f"pictures of {results['identities']} validation people, {results['pairs']} pairs; "
        f"centred cosines; the same person in another photo: "
        f"{results['cos_same_person_other_photo']:.3f}):\n\n"
        + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
