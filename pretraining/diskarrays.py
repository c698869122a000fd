"""Resumable on-disk arrays: what the face cache and the mix bank builders share.

Both fill big .npy files chunk by chunk over tens of minutes and must survive being stopped:
the arrays are memory-mapped (reopened, not rewritten, on a rerun) and the JSON index that says
how much is done is replaced atomically after each chunk.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


def open_array(path: Path, shape: tuple[int, ...], dtype, fill) -> np.ndarray:
    """Memory-mapped .npy: reopened when it exists with the right shape, else created."""
    if path.exists():
        arr = np.load(path, mmap_mode="r+")
        if arr.shape == shape and arr.dtype == dtype:
            return arr
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    arr[:] = fill
    return arr


def write_index(path: Path, meta: dict) -> None:
    """Atomic: a crash leaves the previous committed index."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path)


def run_chunks(work: Callable[[tuple[int, int]], T], chunks: Sequence[tuple[int, int]],
               workers: int, init: Callable[..., None], setup: tuple) -> Iterator[T]:
    """``work``'s result for each chunk, in chunk order, in ``workers`` processes (spawned,
    each set up once by ``init(*setup)``) or in this one.

    In order, so the caller's index only ever counts chunks that are finished and contiguous."""
    if workers <= 1:
        init(*setup)
        yield from map(work, chunks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, init, setup) as pool:
        yield from pool.imap(work, chunks)
        pool.close()
        pool.join()
