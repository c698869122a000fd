"""Build a mix bank for pretraining: blends of two training faces, embedded once by the teacher.

Runs once on every core (``--workers``), resumable (re-run the same command after a stop), and
writes the blends of the training people only: the same ``--holdout`` and ``--validation`` as
the pretraining run it feeds, which ``pretrain --mix-bank`` checks. See ``pretraining/mixbank.py``.

    pip install -r pretraining/requirements.txt
    python scripts/build_mix_bank.py --cache /tmp/gslora_cache --holdout checkpoints/lfw_holdout.json \
        --validation checkpoints/lfw_validation.json --out /tmp/gslora_cache/mix_bank \
        --count 30000 --workers 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pretraining.cli import read_holdout  # noqa: E402
from pretraining.config import PretrainConfig  # noqa: E402
from pretraining.diskarrays import open_array, run_chunks, write_index  # noqa: E402
from pretraining.facecache import ALIGNED, INDEX, WIDE, usable  # noqa: E402
from pretraining.mixbank import MIX, MIX_INDEX, MIX_TEACHER, blend_faces, draw_pairs  # noqa: E402

_WORKER: dict = {}  # one process's teacher and open arrays (init_worker)


def init_worker(cache: Path, out: Path, source_name: str, inner: float, rows: np.ndarray,
                lam: np.ndarray, teacher: str) -> None:
    """Open the arrays and build the teacher, once a process (one core each)."""
    torch.set_num_threads(1)
    if teacher == "dlib":
        from pretraining.teacher import DlibTeacher

        embed = DlibTeacher().embed_aligned
    else:  # tests: a stand-in teacher, the mean colour of the face as an "embedding"
        def embed(arr: np.ndarray, inner: float) -> np.ndarray:
            return np.resize(arr.reshape(-1, 3).mean(0).astype(np.float32) / 255.0, 128)
    _WORKER.update(source=np.load(cache / source_name, mmap_mode="r"), inner=inner, rows=rows,
                   lam=lam, embed=embed, mix=np.load(out / MIX, mmap_mode="r+"),
                   mix_teacher=np.load(out / MIX_TEACHER, mmap_mode="r+"))


def build_chunk(bounds: tuple[int, int]) -> int:
    """Blend and embed bank rows ``bounds[0]:bounds[1]`` (disjoint between chunks)."""
    w = _WORKER
    a0, a1 = bounds
    rows = w["rows"][a0:a1]
    a = torch.from_numpy(np.ascontiguousarray(w["source"][rows[:, 0]]))
    b = torch.from_numpy(np.ascontiguousarray(w["source"][rows[:, 1]]))
    blends = blend_faces(a, b, torch.from_numpy(w["lam"][a0:a1])).numpy()
    for k, face in enumerate(blends):
        vec = w["embed"](np.ascontiguousarray(face), w["inner"])
        w["mix"][a0 + k] = face
        w["mix_teacher"][a0 + k] = np.nan if vec is None else vec
    w["mix"].flush()
    w["mix_teacher"].flush()
    return a1 - a0


def main(argv: list[str] | None = None) -> int:
    defaults = PretrainConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True, help="face cache (build_face_cache.py)")
    ap.add_argument("--holdout", required=True, help="held-out people (JSON), never blended")
    ap.add_argument("--validation", help="validation people (JSON), never blended")
    ap.add_argument("--out", type=Path, required=True, help="bank folder (e.g. <cache>/mix_bank)")
    ap.add_argument("--count", type=int, default=30000, help="blends in the bank")
    ap.add_argument("--mix-min", type=float, default=defaults.mix_min,
                    help="smallest weight of the first face in a blend")
    ap.add_argument("--mix-max", type=float, default=defaults.mix_max,
                    help="largest weight of the first face in a blend")
    ap.add_argument("--seed", type=int, default=0, help="which pairs and weights")
    ap.add_argument("--chunk", type=int, default=500, help="blends per commit")
    ap.add_argument("--workers", type=int, default=1, help="processes, one core each")
    ap.add_argument("--teacher", choices=("dlib", "mean-colour"), default="dlib",
                    help=argparse.SUPPRESS)  # mean-colour: the tests' stand-in, no dlib needed
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")
    meta = json.loads((args.cache / INDEX).read_text())
    if not meta.get("complete"):
        ap.error(f"{args.cache}: the face cache is incomplete")
    excluded = read_holdout(args.holdout) | (read_holdout(args.validation) if args.validation else set())
    idx = usable(meta)
    train = np.array([i for i in idx if meta["rows"][i]["identity"] not in excluded])
    names = [meta["rows"][i]["identity"] for i in train]
    source_name = WIDE if (args.cache / WIDE).exists() else ALIGNED
    side = int(np.load(args.cache / source_name, mmap_mode="r").shape[1])
    inner = int(np.load(args.cache / ALIGNED, mmap_mode="r").shape[1]) / side  # as views_source
    pairs, lam = draw_pairs(len(train), args.count, args.mix_min, args.mix_max, args.seed)
    rows = train[pairs]  # the face cache's own row numbers
    plan = {"n": args.count, "cache": str(args.cache), "cache_rows": int(meta["n"]), "side": side,
            "inner": inner, "mix_min": args.mix_min, "mix_max": args.mix_max, "seed": args.seed,
            "excluded": sorted(excluded),
            "pairs": [[names[p], names[q], round(float(w), 4)] for (p, q), w in zip(pairs, lam)]}
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / MIX_INDEX
    done = 0
    if index_path.exists():
        old = json.loads(index_path.read_text())
        same = all(old.get(k) == plan[k] for k in plan)
        if same and (args.out / MIX).exists() and (args.out / MIX_TEACHER).exists():
            done = int(old["done"])
        else:
            print("the bank folder holds another plan: starting over", flush=True)
    open_array(args.out / MIX, (args.count, side, side, 3), np.uint8, 0)
    open_array(args.out / MIX_TEACHER, (args.count, 128), np.float32, np.nan)
    if done == args.count:
        print(f"already complete: {done} blends in {args.out}", flush=True)
        return 0
    print(f"{args.count} blends of {len(set(names))} training people ({len(train)} faces), "
          f"{done} done ({args.workers} workers)", flush=True)
    chunks = [(c0, min(c0 + args.chunk, args.count)) for c0 in range(done, args.count, args.chunk)]
    setup = (args.cache, args.out, source_name, inner, rows, lam, args.teacher)
    t0 = time.time()
    results = run_chunks(build_chunk, chunks, args.workers, init_worker, setup)
    start = done
    for made in results:
        done += made
        write_index(index_path, {**plan, "done": done, "complete": done == args.count})
        rate = (done - start) / (time.time() - t0)
        print(f"committed {done}/{args.count} blends  {rate:.1f}/s  eta "
              f"{(args.count - done) / max(rate, 1e-9) / 60:.0f} min  ({time.strftime('%H:%M:%S')})",
              flush=True)
    failed = int((~np.isfinite(np.load(args.out / MIX_TEACHER, mmap_mode="r")).all(1)).sum())
    print(f"done in {(time.time() - t0) / 60:.1f} min: {args.count} blends, teacher failures "
          f"{failed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
