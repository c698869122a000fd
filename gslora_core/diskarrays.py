"""Resumable on-disk arrays: what the face cache and the mix bank builders share.

Both fill big .npy files chunk by chunk over tens of minutes and must survive being stopped:
the arrays are memory-mapped (reopened, not rewritten, on a rerun) and the JSON index that says
how much is done is replaced atomically after each chunk.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


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
