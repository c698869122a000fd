"""A face cache: a folder of faces aligned once (MTCNN) and embedded once by a teacher.

Layout of a cache directory: ``aligned.npy`` uint8 (N, 112, 112, 3) (zeros where no face was
found), ``teacher.npy`` float32 (N, D) (NaN where the teacher failed), ``index.json``
{"n", "root", "size", "complete", "rows": [{identity, file, method, note, n_faces, box,
teacher_ok}]}, and optionally ``aligned_wide.npy`` uint8 (N, 112 + 2m, 112 + 2m, 3), the same
alignment with m pixels of context per side. Pretraining reads plain arrays instead of
re-aligning 12.7k pictures (~35 min).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .pretrain import DistillSet

ALIGNED, TEACHER, INDEX = "aligned.npy", "teacher.npy", "index.json"
WIDE = "aligned_wide.npy"  # optional: the same alignment with context around it


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
    ok = np.array([r["method"] != "none" and r["teacher_ok"] for r in rows])
    idx = np.flatnonzero(ok)
    images = torch.from_numpy(np.ascontiguousarray(np.load(cache_dir / ALIGNED, mmap_mode="r")[idx]))
    targets = torch.from_numpy(np.load(cache_dir / TEACHER)[idx].astype(np.float32))
    wide = None
    if (cache_dir / WIDE).exists():  # caches built before the wide crops have none
        wide = torch.from_numpy(np.ascontiguousarray(np.load(cache_dir / WIDE, mmap_mode="r")[idx]))
    return DistillSet(images, targets, [rows[i]["identity"] for i in idx], wide)
