"""A mix bank: blends of two training faces, each embedded once by the teacher, kept on disk.

Why: mixed faces (``pretrain --p-mix``) were the one change that moved the held-out people
(README, "The backbone"), but the teacher embeds every blend *during* training, serially, on
the core that trains: a quarter of each batch doubles a 192x6 epoch. A bank is built once on
every core (``scripts/build_mix_bank.py``), then any number of runs draw teacher-labelled
blends from it at no teacher cost (``pretrain --mix-bank DIR --p-bank 0.5``).

Layout of a bank directory: ``mix.npy`` uint8 (M, S, S, 3), the blends of the face cache's
views source (its wide crops where it has them), ``mix_teacher.npy`` float32 (M, D) (NaN where
the teacher failed or the row is not built yet), and ``mix_index.json`` {"n", "done",
"complete", "cache", "side", "inner", "mix_min", "mix_max", "seed", "excluded", "pairs":
[[identity_a, identity_b, lam], ...]}. The identities of every blend are written down so that
pretraining can refuse a bank made from people it must not see (held-out or validation).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MIX, MIX_TEACHER, MIX_INDEX = "mix.npy", "mix_teacher.npy", "mix_index.json"


def blend_faces(a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """uint8 faces ``lam * a + (1 - lam) * b``, one weight per face (any layout, batch first)."""
    w = lam.view(-1, *([1] * (a.ndim - 1))).float()
    return (w * a.float() + (1 - w) * b.float()).round().clamp(0, 255).to(torch.uint8)


def draw_pairs(n: int, count: int, mix_min: float, mix_max: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows (count, 2) of two different faces among ``n``, weights (count,) of the first).

    Partners come from the whole training set, not one batch, so a bank of M blends covers
    M pairs of faces, nearly all of two different people."""
    if n < 2:
        raise ValueError("a mix bank needs at least two training faces")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, count)
    second = (first + rng.integers(1, n, count)) % n  # never the face itself
    lam = rng.uniform(mix_min, mix_max, count).astype(np.float32)
    return np.stack([first, second], 1), lam


@dataclass
class MixBank:
    """Built blends (uint8 (M, S, S, 3)) and their raw teacher embeddings (M, D)."""

    images: torch.Tensor
    targets: torch.Tensor
    identities: list[tuple[str, str]]
    inner: float


def load_mix_bank(bank_dir: str | Path, allowed: set[str]) -> MixBank:
    """The bank's built rows with a teacher embedding.

    Refuses a bank any of whose blends shows someone outside ``allowed`` (the training
    people): a blend carries both faces, so a held-out face in it would leak into training."""
    bank_dir = Path(bank_dir)
    missing = [f for f in (MIX, MIX_TEACHER, MIX_INDEX) if not (bank_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{bank_dir} is not a mix bank (missing {', '.join(missing)}); "
                                "build it with scripts/build_mix_bank.py")
    meta = json.loads((bank_dir / MIX_INDEX).read_text())
    done = int(meta["done"])
    pairs = meta["pairs"][:done]
    outside = sorted({p for a, b, _ in pairs for p in (a, b)} - allowed)
    if outside:
        raise ValueError(f"{bank_dir}: {len(outside)} people in the bank's blends are not "
                         f"training people here (e.g. {outside[0]}): build the bank with the "
                         "same --holdout and --validation as this run")
    targets = np.load(bank_dir / MIX_TEACHER, mmap_mode="r")[:done]
    ok = np.flatnonzero(np.isfinite(targets).all(1))
    if len(ok) == 0:
        raise ValueError(f"{bank_dir}: no built blend with a teacher embedding yet")
    images = np.load(bank_dir / MIX, mmap_mode="r")
    return MixBank(torch.from_numpy(np.ascontiguousarray(images[ok])),
                   torch.from_numpy(np.ascontiguousarray(targets[ok], dtype=np.float32)),
                   [(pairs[i][0], pairs[i][1]) for i in ok.tolist()], float(meta["inner"]))


def bank_rows(batch: int, share: float, keep: int = 0) -> int:
    """How many of a batch's rows ``bank_faces`` replaces: ``share`` of them, never the first
    ``keep``."""
    return max(0, min(round(share * batch), batch - keep))


def bank_faces(source: torch.Tensor, targets: torch.Tensor, bank: torch.Tensor,
               bank_targets: torch.Tensor, share: float,
               gen: torch.Generator, keep: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch (uint8 (N, 3, S, S), centred targets) with a ``share`` of its rows replaced by
    random bank blends (``bank`` (M, 3, S, S), ``bank_targets`` centred as the batch's). The
    first ``keep`` rows (same-person pairs) are never replaced."""
    n = source.shape[0]
    k = bank_rows(n, share, keep)
    if k == 0:
        return source, targets
    rows = keep + torch.randperm(n - keep, generator=gen)[:k]
    pick = torch.randint(0, len(bank), (k,), generator=gen)
    source, targets = source.clone(), targets.clone()
    source[rows] = bank[pick]
    targets[rows] = bank_targets[pick].to(targets.dtype)
    return source, targets
