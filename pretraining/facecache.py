"""A face cache: a folder of faces aligned once (MTCNN) and embedded once by a teacher.

Layout of a cache directory: ``aligned.npy`` uint8 (N, 112, 112, 3) (zeros where no face was
found), ``teacher.npy`` float32 (N, D) (NaN where the teacher failed), ``index.json``
{"n", "root", "size", "complete", "rows": [{identity, file, method, note, n_faces, box,
teacher_ok}]}, and optionally ``aligned_wide.npy`` uint8 (N, 112 + 2m, 112 + 2m, 3), the same
alignment with m pixels of context per side. Pretraining reads plain arrays instead of
re-aligning 12.7k pictures (~35 min).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .pretrain import DistillSet
from .shifts import SHIFTS

ALIGNED, TEACHER, INDEX = "aligned.npy", "teacher.npy", "index.json"
WIDE = "aligned_wide.npy"  # optional: the same alignment with context around it
VIEWS_VERSION = 1  # part of a views file's key: change it when shifts or alignment change


def load_face_cache(cache_dir: str | Path) -> DistillSet:
    """Rows with an aligned face and a teacher embedding, as tensors (images stay uint8)."""
    cache_dir = Path(cache_dir)
    missing = [f for f in (ALIGNED, TEACHER, INDEX) if not (cache_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{cache_dir} is not a face cache (missing {', '.join(missing)}); "
                                "build it with scripts/build_face_cache.py")
    meta = json.loads((cache_dir / INDEX).read_text())
    if not meta.get("complete"):
        raise ValueError(f"{cache_dir}: the cache is incomplete; re-run the builder to resume it")
    rows = meta["rows"]
    idx = usable(meta)
    images = torch.from_numpy(np.ascontiguousarray(np.load(cache_dir / ALIGNED, mmap_mode="r")[idx]))
    targets = torch.from_numpy(np.load(cache_dir / TEACHER)[idx].astype(np.float32))
    wide = None
    if (cache_dir / WIDE).exists():  # caches built before the wide crops have none
        wide = torch.from_numpy(np.ascontiguousarray(np.load(cache_dir / WIDE, mmap_mode="r")[idx]))
    return DistillSet(images, targets, [rows[i]["identity"] for i in idx], wide)


def usable(meta: dict) -> np.ndarray:
    """Indices of the cache rows pretraining uses, in order: a face and a teacher embedding."""
    return np.flatnonzero([r["method"] != "none" and r["teacher_ok"] for r in meta["rows"]])


def shifted_views(cache_dir: str | Path, names: Iterable[str],
                  shifts: tuple[str, ...] = SHIFTS) -> dict[str, torch.Tensor]:
    """``names``' cached faces under each photo shift: uint8 (N, S, S, 3) per shift, rows in the
    order ``split_holdout(load_face_cache(cache_dir), names)[1]`` has them.

    Why: checkpoints chosen on degraded *aligned crops* did not predict bench/robustness.py,
    which shifts the photo and then runs MTCNN (a tight crop moves the landmarks, a 32-px face
    blurs them). These views are made the benchmark's way from the cache's source photos and
    clean MTCNN boxes; "clean" is the cache's own crop. Built once (~2 min for the 594
    validation faces on one core), then read from ``<cache>/views-<key>.npz``. A picture whose
    shifted photo has no face MTCNN finds is all zeros there (it counts against the backbone,
    as in the app, which would reject it)."""
    from PIL import Image

    from gslora_core.alignment import FaceAligner

    from .shifts import apply_shift

    cache_dir = Path(cache_dir)
    meta = json.loads((cache_dir / INDEX).read_text())
    wanted = set(names)
    idx = [int(i) for i in usable(meta) if meta["rows"][i]["identity"] in wanted]
    if not idx:
        raise ValueError(f"none of the given people are in the cache {cache_dir}")
    rows = [meta["rows"][i] for i in idx]
    files = [r["file"] for r in rows]
    key = hashlib.sha1(json.dumps([VIEWS_VERSION, list(shifts), files]).encode()).hexdigest()[:10]
    path = cache_dir / f"views-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {s: torch.from_numpy(z[s]) for s in shifts}
    root = Path(meta.get("root", ""))
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise FileNotFoundError(f"the cache's source photos are not at {root} (e.g. {missing[0]}); "
                                "photo views need them (or choose the aligned stand-ins)")
    aligned = np.load(cache_dir / ALIGNED, mmap_mode="r")
    clean = np.ascontiguousarray(aligned[idx])
    aligner = FaceAligner(size=clean.shape[1])
    photos = [Image.open(root / f).convert("RGB") for f in files]
    views: dict[str, np.ndarray] = {}
    for s in shifts:
        if s == "clean":
            views[s] = clean
            continue
        t0 = time.perf_counter()
        res = aligner.align_many([apply_shift(im, s, r["box"]) for im, r in zip(photos, rows)])
        views[s] = np.stack([np.asarray(a.crop, np.uint8) if a.crop is not None
                             else np.zeros_like(clean[0]) for a in res])
        lost = sum(a.crop is None for a in res)
        print(f"validation view {s}: {len(res)} pictures, {lost} without a face, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **views)
    tmp.replace(path)
    return {s: torch.from_numpy(v) for s, v in views.items()}
