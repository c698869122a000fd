"""Galleries: one folder per identity, turned into a deterministic train/test split of face crops.

The split is decided per file by a hash of its name (not by listing order), so the same image is
always train or always test, whichever tool loads the gallery: enrollment never sees a test image
that forgetting later measures on.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .config import DataConfig

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff"}


@dataclass
class Gallery:
    """Face crops as uint8 tensors (N, 3, S, S); label i means ``names[i]``."""

    names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file or identity, reason)

    def counts(self) -> list[dict]:
        tr = torch.bincount(self.train_y, minlength=len(self.names)).tolist()
        te = torch.bincount(self.test_y, minlength=len(self.names)).tolist()
        return [{"identity": n, "train": a, "test": b} for n, a, b in zip(self.names, tr, te)]

    def indices_of(self, names: Sequence[str]) -> list[int]:
        missing = [n for n in names if n not in self.names]
        if missing:
            raise KeyError(f"not in the gallery: {', '.join(missing)}")
        return [self.names.index(n) for n in names]


def list_identities(root: str | Path) -> dict[str, list[Path]]:
    """{identity: sorted image files} for a folder with one sub-folder per identity."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"gallery folder not found: {root}")
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if files:
            out[sub.name] = files
    return out


def _rank_key(name: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def split_files(files: Sequence[Path], cfg: DataConfig) -> tuple[list[Path], list[Path]]:
    """Deterministic train/test split of one identity's files (hash order, not list order)."""
    ranked = sorted(files, key=lambda p: _rank_key(p.name, cfg.split_seed))
    if cfg.max_per_identity:
        ranked = ranked[: cfg.max_per_identity]
    n_test = max(cfg.min_test, int(round(cfg.test_fraction * len(ranked))))
    test = sorted(ranked[:n_test])
    train = sorted(ranked[n_test:])
    return train, test


def center_crop(img: Image.Image, size: int, fraction: float) -> Image.Image:
    """Crop the central ``fraction`` of the picture: enough for pre-aligned sets such as LFW."""
    w, h = img.size
    side = int(min(w, h) * fraction)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB with its EXIF orientation applied."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")


def make_cropper(cfg: DataConfig, size: int) -> Callable[[Image.Image], Image.Image]:
    if cfg.preprocess == "center":
        return lambda im: center_crop(im, size, cfg.center_crop_fraction)
    raise ValueError(f"unknown preprocess {cfg.preprocess!r}")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 (3, H, W)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _stack(items: list[torch.Tensor], size: int) -> torch.Tensor:
    return torch.stack(items) if items else torch.zeros((0, 3, size, size), dtype=torch.uint8)


def load_gallery(root: str | Path, image_size: int, cfg: DataConfig | None = None,
                 names: Sequence[str] | None = None) -> Gallery:
    """Load a gallery folder. With ``names``, labels follow that order (a recognizer's classes)
    and identities outside it are skipped; otherwise identities are sorted by name."""
    cfg = cfg or DataConfig()
    found = list_identities(root)
    rejected: list[tuple[str, str]] = []
    if names is None:
        names = [n for n, fs in found.items() if len(fs) >= cfg.min_images]
        rejected += [(n, f"only {len(fs)} images (need {cfg.min_images})")
                     for n, fs in found.items() if len(fs) < cfg.min_images]
    else:
        missing = [n for n in names if n not in found]
        if missing:
            raise KeyError(f"identities missing from {root}: {', '.join(missing)}")
    crop = make_cropper(cfg, image_size)
    xs: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    files: dict[str, list[str]] = {"train": [], "test": []}
    for label, name in enumerate(names):
        train, test = split_files(found[name], cfg)
        for part, paths in (("train", train), ("test", test)):
            for p in paths:
                try:
                    xs[part].append(to_tensor(crop(open_rgb(p))))
                except (OSError, ValueError) as e:
                    rejected.append((f"{name}/{p.name}", f"unreadable image: {e}"))
                    continue
                ys[part].append(label)
                files[part].append(f"{name}/{p.name}")
    return Gallery(
        names=list(names),
        train_x=_stack(xs["train"], image_size), train_y=torch.tensor(ys["train"], dtype=torch.long),
        test_x=_stack(xs["test"], image_size), test_y=torch.tensor(ys["test"], dtype=torch.long),
        train_files=files["train"], test_files=files["test"], rejected=rejected,
    )
