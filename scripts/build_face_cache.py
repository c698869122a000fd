"""Build a face cache for pretraining: aligned 112x112 crops + dlib teacher embeddings, resumable.

Why a cache: aligning (MTCNN) and embedding (dlib) all 12.7k LFW pictures takes most of an hour
on 2 CPU cores; pretraining then reads plain arrays (layout: pretraining/facecache.py). Any folder
with one sub-folder of .jpg/.png pictures per identity works; LFW deep-funneled is the default.
Rows are committed every --chunk pictures (arrays flushed, then index.json rewritten atomically),
so a killed run resumes where the index stops.

Run:  nohup nice -n 10 .venv/bin/python scripts/build_face_cache.py > /tmp/gslora_cache/build.log 2>&1 &
      (needs pretraining/requirements.txt for the dlib teacher)
Out:  aligned.npy uint8 (N,112,112,3) (zeros where no face), teacher.npy float32 (N,128) (NaN
      where no embedding), index.json (one record per row, same order), and with --margin M > 0
      aligned_wide.npy uint8 (N,112+2M,112+2M,3): the same alignment with M more pixels of the
      picture on every side, so pretraining can crop at other scales and offsets.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gslora_core.alignment import FaceAligner, warp_to_template  # noqa: E402
from pretraining.diskarrays import open_array, run_chunks, write_index  # noqa: E402
from pretraining.facecache import ALIGNED, INDEX, TEACHER, WIDE  # noqa: E402
from pretraining.teacher import DlibTeacher  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT.parent / "shared" / "datasets" / "lfw-deepfunneled"


_WORKER: dict = {}  # one process's aligner, teacher and open arrays (init_worker)


def init_worker(out: Path, lfw: Path, files: list[str], margin: int) -> None:
    """Open the cache's arrays for writing and build the aligner and teacher, once a process."""
    torch.set_num_threads(1)  # one core a process: 2 threads under load is ~10x slower
    _WORKER.update(files=files, lfw=lfw, margin=margin,
                   aligned=np.load(out / ALIGNED, mmap_mode="r+"),
                   teacher_emb=np.load(out / TEACHER, mmap_mode="r+"),
                   wide=np.load(out / WIDE, mmap_mode="r+") if margin else None,
                   aligner=FaceAligner(size=112), teacher=DlibTeacher(num_jitters=0))


def build_chunk(bounds: tuple[int, int]) -> list[dict]:
    """Align and embed pictures ``bounds[0]:bounds[1]`` into the arrays; their index rows.

    Rows are disjoint between chunks, so processes write the same memory-mapped files safely."""
    w = _WORKER
    files, lfw, margin = w["files"], w["lfw"], w["margin"]
    aligned, wide, teacher_emb = w["aligned"], w["wide"], w["teacher_emb"]
    rows: list[dict] = []
    for b0 in range(bounds[0], bounds[1], 100):  # MTCNN batches of up to 100 pictures
        batch = files[b0:min(b0 + 100, bounds[1])]
        images = [Image.open(lfw / f).convert("RGB") for f in batch]
        for k, (f, img, res) in enumerate(zip(batch, images, w["aligner"].align_many(images))):
            i = b0 + k
            if res.crop is not None:
                aligned[i] = np.asarray(res.crop, dtype=np.uint8)
                if wide is not None:
                    wide[i] = (np.asarray(warp_to_template(img, np.asarray(res.points), 112,
                                                           margin), dtype=np.uint8)
                               if res.points is not None else
                               np.pad(aligned[i], ((margin,) * 2,) * 2 + ((0, 0),),
                                      constant_values=0))  # as the warp: black outside
                vec = w["teacher"].embed(img, res.box)
                teacher_emb[i] = np.nan if vec is None else vec
            rows.append({"identity": f.split("/")[0], "file": f, "method": res.method,
                         "note": res.note, "n_faces": res.n_faces, "box": res.box,
                         "teacher_ok": bool(np.isfinite(teacher_emb[i]).all())})
    for arr in (aligned, teacher_emb, wide):
        if arr is not None:
            arr.flush()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", "--data", dest="lfw", type=Path, default=DEFAULT_LFW,
                    help="folder of identity sub-folders (default: LFW deep-funneled)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/gslora_cache"))
    ap.add_argument("--chunk", type=int, default=500, help="pictures per commit")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pictures (testing)")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes, one core each (on a many-core machine, one per core)")
    ap.add_argument("--margin", type=int, default=24,
                    help="context pixels per side of aligned_wide.npy (0: no wide crops)")
    args = ap.parse_args()
    files = sorted(p.relative_to(args.lfw).as_posix() for p in args.lfw.glob("*/*")
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if args.limit:
        files = files[:args.limit]
    n = len(files)
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / INDEX
    rows: list[dict] = []
    if index_path.exists():
        meta = json.loads(index_path.read_text())
        if (meta.get("n") == n and meta.get("margin", 0) == args.margin
                and [r["file"] for r in meta["rows"]] == files[:len(meta["rows"])]):
            rows = meta["rows"]
        else:
            print("index does not match this file list: starting over", flush=True)
    needed = (ALIGNED, TEACHER) + ((WIDE,) if args.margin else ())
    if not all((args.out / f).exists() for f in needed):
        rows = []  # arrays missing: the index alone cannot be trusted
    aligned = open_array(args.out / ALIGNED, (n, 112, 112, 3), np.uint8, 0)
    side = 112 + 2 * args.margin
    wide = open_array(args.out / WIDE, (n, side, side, 3), np.uint8, 0) if args.margin else None
    teacher_emb = open_array(args.out / TEACHER, (n, 128), np.float32, np.nan)
    if len(rows) == n:
        print(f"already complete: {n} rows in {args.out}", flush=True)
        return

    del aligned, wide, teacher_emb  # each worker (or this process) opens the arrays itself
    start, t0 = len(rows), time.time()
    print(f"{n} pictures, {start} done, resuming at row {start} ({args.workers} workers)", flush=True)
    chunks = [(c0, min(c0 + args.chunk, n)) for c0 in range(start, n, args.chunk)]
    setup = (args.out, args.lfw, files, args.margin)
    results = run_chunks(build_chunk, chunks, args.workers, init_worker, setup)
    for chunk_rows in results:
        rows.extend(chunk_rows)
        write_index(index_path, {"n": n, "root": str(args.lfw), "size": 112, "margin": args.margin,
                                 "complete": len(rows) == n, "rows": rows})
        rate = (len(rows) - start) / (time.time() - t0)
        print(f"committed {len(rows)}/{n} rows  {rate:.2f} img/s  eta "
              f"{(n - len(rows)) / max(rate, 1e-9) / 60:.0f} min  ({time.strftime('%H:%M:%S')})",
              flush=True)

    methods = {m: sum(r["method"] == m for r in rows) for m in ("mtcnn", "as-is", "none")}
    bad = sum(not r["teacher_ok"] for r in rows)
    print(f"done in {(time.time() - t0) / 60:.1f} min: {methods}, teacher failures {bad}", flush=True)


if __name__ == "__main__":
    main()
