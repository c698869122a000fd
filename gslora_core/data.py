"""Galleries: pictures of identities turned into a deterministic train/test split of face crops.

The split is decided per file by a hash of its name (not by listing order), so the same image is
always train or always test, whichever tool loads the gallery: enrollment never sees a test image
that forgetting later measures on. Sources, decoding and rejections live in ``ingest``; this
module crops faces (MTCNN alignment, cached on disk by content hash, or a centre crop).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .config import PREPROCESS, DataConfig, IngestConfig
from .ingest import Picture, Rejection, collect, decode_all
from .progress import ProgressFn

# Part of the cache key, per face template: a new aligner must not reuse old crops.
ALIGN_VERSIONS = {"arcface": "arcface112-v1", "dlib": "dlib150-v1"}


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
    # Validation pictures (``DataConfig.val_fraction``; none by default): where recipes are chosen.
    val_x: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 3, 1, 1), dtype=torch.uint8))
    val_y: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    val_files: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)  # (identity/file, reason)
    excluded: list[Rejection] = field(default_factory=list)  # (identity, why it is not enrolled)
    notes: list[Rejection] = field(default_factory=list)  # (identity/file, remark), e.g. 2 faces
    methods: dict[str, str] = field(default_factory=dict)  # identity/file -> mtcnn|as-is|center

    def counts(self) -> list[dict]:
        tr = torch.bincount(self.train_y, minlength=len(self.names)).tolist()
        te = torch.bincount(self.test_y, minlength=len(self.names)).tolist()
        rows = [{"identity": n, "train": a, "test": b} for n, a, b in zip(self.names, tr, te)]
        if len(self.val_y):  # only galleries split with a validation share have the column
            va = torch.bincount(self.val_y, minlength=len(self.names)).tolist()
            rows = [{**r, "validation": v} for r, v in zip(rows, va)]
        return rows

    def summary(self) -> list[dict]:
        """Per identity: pictures used, how their faces were found, train/test sizes."""
        out = []
        for row in self.counts():
            mine = [m for f, m in self.methods.items() if f.split("/", 1)[0] == row["identity"]]
            out.append({**row, "faces": len(mine), "aligned": mine.count("mtcnn"),
                        "as_is": mine.count("as-is")})
        return out

    def scored_on(self, part: str) -> "Gallery":
        """This gallery with ``part`` ("val" or "test") as the pictures every metric scores:
        a recipe is chosen with ``scored_on("val")`` and reported with the gallery as it is."""
        if part == "test":
            return self
        if part != "val":
            raise ValueError(f"unknown part {part!r} (choose val or test)")
        if len(self.val_y) == 0:
            raise ValueError("this gallery has no validation pictures (DataConfig.val_fraction)")
        return replace(self, test_x=self.val_x, test_y=self.val_y, test_files=self.val_files)

    def subset(self, names: Sequence[str]) -> "Gallery":
        """The same pictures of ``names`` only, relabelled in that order: what re-enrolling
        without some people trains on (no reading or aligning again)."""
        old = torch.tensor(self.indices_of(names), dtype=torch.long)
        relabel = torch.full((len(self.names),), -1, dtype=torch.long)
        relabel[old] = torch.arange(len(old))

        def part(x: torch.Tensor, y: torch.Tensor, files: list[str]):
            keep = torch.isin(y, old)
            kept_files = [f for f, k in zip(files, keep.tolist()) if k] if files else []
            return x[keep], relabel[y[keep]], kept_files
        tr, te, va = (part(self.train_x, self.train_y, self.train_files),
                      part(self.test_x, self.test_y, self.test_files),
                      part(self.val_x, self.val_y, self.val_files))
        wanted = set(names)
        return Gallery(names=list(names), train_x=tr[0], train_y=tr[1], test_x=te[0],
                       test_y=te[1], train_files=tr[2], test_files=te[2], val_x=va[0],
                       val_y=va[1], val_files=va[2],
                       methods={k: v for k, v in self.methods.items()
                                if k.split("/", 1)[0] in wanted})

    def indices_of(self, names: Sequence[str]) -> list[int]:
        missing = [n for n in names if n not in self.names]
        if missing:
            raise KeyError(f"not in the gallery: {', '.join(missing)}")
        return [self.names.index(n) for n in names]


def default_cache_dir() -> Path:
    """Where aligned crops are kept: $GSLORA_CACHE, else ~/.cache/gslora/faces."""
    return Path(os.environ.get("GSLORA_CACHE") or Path.home() / ".cache" / "gslora" / "faces")


class CropCache:
    """Aligned crops on disk, keyed by the picture's content hash and the face template: a
    gallery is aligned once for each kind of recognizer.

    Each entry is ``<key>.json`` (method, note, faces) plus ``<key>.png`` when a face was found.
    ``shipped``: read-only entries of the same layout a gallery ships beside it
    (``shipped_crops``), read before ``root``'s: they are the crops its kept states were
    measured on, and a cached crop of the same picture may have been aligned beside other
    pictures or with another thread count (a grey level apart in about half the pictures)."""

    def __init__(self, root: str | Path | None, template: str = "arcface",
                 shipped: str | Path | None = None):
        self.root = Path(root) if root else None
        self.shipped = Path(shipped) if shipped else None
        self.version = ALIGN_VERSIONS[template]

    def _paths(self, digest: str, root: Path | None = None) -> tuple[Path, Path]:
        root = root or self.root
        assert root is not None
        key = f"{digest}-{self.version}"
        return root / key[:2] / f"{key}.json", root / key[:2] / f"{key}.png"

    def get(self, digest: str) -> dict | None:
        for root, mine in ((self.shipped, False), (self.root, True)):
            if root is None:
                continue
            meta_path, png = self._paths(digest, root)
            try:
                meta = json.loads(meta_path.read_text())
                if meta["method"] != "none":
                    with Image.open(png) as im:
                        meta["crop"] = im.convert("RGB")
                    if mine:
                        os.utime(png)
                if mine:
                    os.utime(meta_path)  # last use: what an age-based clean-up goes by
                return meta
            except (OSError, ValueError, KeyError):
                continue  # absent or damaged: the next place, or align again
        return None

    def sweep(self, max_age_s: float) -> int:
        """Delete entries not used for ``max_age_s``; returns how many files went."""
        if self.root is None or not self.root.is_dir():
            return 0
        now, removed = time.time(), 0
        for f in self.root.glob("*/*"):
            try:
                if now - f.stat().st_mtime > max_age_s:
                    f.unlink()
                    removed += 1
            except FileNotFoundError:  # another visitor's sweep got there first
                continue
        return removed

    def put(self, digest: str, crop: Image.Image | None, method: str, note: str | None,
            n_faces: int) -> None:
        if self.root is None:
            return
        meta_path, png = self._paths(digest)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary name of this writer's own, then an atomic rename: several visitors loading
        # the same gallery at once on a fresh cache write the same entries (same content).
        own = f".{os.getpid()}-{threading.get_ident()}.tmp"
        if crop is not None:
            tmp = png.with_name(png.name + own)
            crop.save(tmp, format="PNG")
            os.replace(tmp, png)
        tmp = meta_path.with_name(meta_path.name + own)
        tmp.write_text(json.dumps({"method": method, "note": note, "n_faces": n_faces}))
        os.replace(tmp, meta_path)


def center_crop(img: Image.Image, size: int, fraction: float) -> Image.Image:
    """Crop the central ``fraction`` of the picture: enough for pre-aligned sets such as LFW."""
    w, h = img.size
    side = int(min(w, h) * fraction)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)


def whole_picture(image: Image.Image, size: int) -> Image.Image:
    """A picture of an object class as the model sees it: its central square, resized (no face
    is looked for; a square picture, as CIFAR's, is only resized)."""
    return ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR)


def shipped_crops(source: str | Path | Sequence[str | Path]) -> Path | None:
    """The aligned crops a gallery folder ships beside it, ``<folder>_crops/`` (``CropCache``'s
    layout; ``scripts/ship_sample_crops.py``): read instead of aligning, so a bundled sample
    loads without MTCNN and gives the very crops its kept states were measured on."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = Path(source)
        crops = folder.with_name(folder.name + "_crops")
        return crops if crops.is_dir() else None
    return None


def crop_faces(pictures: Sequence[Picture], cfg: DataConfig, size: int,
               cache_dir: str | Path | None = None, aligner=None,
               on_progress: ProgressFn | None = None, template: str = "arcface",
               shipped: str | Path | None = None
               ) -> tuple[list[tuple[Picture, Image.Image, str]], list[Rejection], list[Rejection]]:
    """Face crop of every picture: ([(picture, crop, method)], rejected, notes).

    "mtcnn" aligns with ``alignment.FaceAligner`` to ``template`` (the recognizer's:
    ``ModelConfig.face_template``; cache misses only, in one batch);
    "center" crops the middle (LFW deep-funneled is already roughly aligned). ``on_progress``
    hears {"stage": "aligning", "done", "total", "cached"} as batches of faces are aligned."""
    if cfg.preprocess == "center":
        return [(p, center_crop(p.image, size, cfg.center_crop_fraction), "center")
                for p in pictures], [], []
    if cfg.preprocess == "whole":
        return [(p, whole_picture(p.image, size), "whole") for p in pictures], [], []
    if cfg.preprocess != "mtcnn":
        raise ValueError(f"unknown preprocess {cfg.preprocess!r} (choose {', '.join(PREPROCESS)})")
    cache = CropCache(cache_dir, template, shipped)
    results: list[dict | None] = [cache.get(p.digest) for p in pictures]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        if aligner is None:
            from .alignment import shared_aligner
            aligner = shared_aligner(template)
        def aligned(k: int) -> None:
            if on_progress:
                on_progress({"stage": "aligning", "done": k, "total": len(todo),
                             "cached": len(pictures) - len(todo)})
        aligned(0)
        for i, res in zip(todo, aligner.align_many([pictures[i].image for i in todo],
                                                   on_done=aligned)):
            cache.put(pictures[i].digest, res.crop, res.method, res.note, res.n_faces)
            results[i] = {"method": res.method, "note": res.note, "n_faces": res.n_faces,
                          "crop": res.crop}
    kept, rejected, notes = [], [], []
    for p, r in zip(pictures, results):
        assert r is not None
        if r["method"] == "none":
            rejected.append((p.label, "no face found"))
            continue
        crop = r["crop"] if r["crop"].size == (size, size) else r["crop"].resize(
            (size, size), Image.Resampling.BILINEAR)
        kept.append((p, crop, r["method"]))
        for remark in (p.note, r.get("note")):
            if remark:
                notes.append((p.label, remark))
    return kept, rejected, notes


def rank_key(label: str, seed: int) -> str:
    """Order of an ``identity/file`` label within its identity: a hash of the file name, so
    adding a picture never moves another in or out of a cap."""
    return hashlib.sha1(f"{seed}:{label.rsplit('/', 1)[-1]}".encode()).hexdigest()


def split_point(label: str, seed: int) -> float:
    """Where a file falls in [0, 1): the first 60 bits of its ``rank_key``."""
    return int(rank_key(label, seed)[:15], 16) / 16 ** 15


def split_labels(labels: Sequence[str], cfg: DataConfig) -> tuple[list[str], list[str], list[str]]:
    """Deterministic (train, validation, test) split of one identity's ``identity/file`` labels.

    "hash" (the default): a file is test when its ``split_point`` is below ``test_fraction``,
    validation below ``test_fraction + val_fraction``, train otherwise; so adding or removing a
    picture never moves another one between parts. Only when that leaves fewer than ``min_test``
    (``min_val``) pictures are the train pictures nearest the boundary lent to test (validation),
    and an identity is never left without a training picture.
    "rank" (the first checkpoints' rule): the lowest-ranked ``max(min_test, round(25 %))`` are
    test, no validation; adding a picture could move the boundary."""
    ranked = sorted(labels, key=lambda s: rank_key(s, cfg.split_seed))
    if cfg.split == "rank":
        n_test = max(cfg.min_test, int(round(cfg.test_fraction * len(ranked))))
        return sorted(ranked[n_test:]), [], sorted(ranked[:n_test])
    point = {s: split_point(s, cfg.split_seed) for s in ranked}
    test = [s for s in ranked if point[s] < cfg.test_fraction]
    val = [s for s in ranked if cfg.test_fraction <= point[s] < cfg.test_fraction + cfg.val_fraction]
    train = [s for s in ranked if point[s] >= cfg.test_fraction + cfg.val_fraction]
    if not train and len(ranked) > 1:  # an identity always keeps a picture to train on
        src = test if len(test) > cfg.min_test or not val else val
        train.append(src.pop())
    for part, want in ((test, cfg.min_test), (val, cfg.min_val)):
        while len(part) < want and len(train) > 1:
            part.append(train.pop(0))  # ranked order: the lowest points first
    while len(val) < cfg.min_val and len(test) > cfg.min_test:
        val.append(test.pop())  # the test picture nearest the validation share
    return sorted(train), sorted(val), sorted(test)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 (3, H, W)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _stack(items: list[torch.Tensor], size: int) -> torch.Tensor:
    return torch.stack(items) if items else torch.zeros((0, 3, size, size), dtype=torch.uint8)


def load_gallery(source: str | Path | Sequence[str | Path], image_size: int,
                 cfg: DataConfig | None = None, names: Sequence[str] | None = None,
                 ingest: IngestConfig = IngestConfig(), cache_dir: str | Path | None = "default",
                 aligner=None, on_progress: ProgressFn | None = None,
                 template: str = "arcface") -> Gallery:
    """Load a gallery from a folder, a zip or a list of files, faces aligned to ``template``
    (the recognizer's ``ModelConfig.face_template``).

    With ``names``, labels follow that order (a recognizer's classes) and other identities are
    skipped; otherwise identities with at least ``cfg.min_images`` usable faces are enrolled,
    sorted by name, and the rest are listed in ``excluded``. Bad files land in ``rejected``.
    ``cache_dir``: "default" is ``default_cache_dir()``, None aligns without caching.
    ``on_progress`` hears {"stage": "reading" or "aligning", "done", "total"} as it goes."""
    cfg = cfg or DataConfig()
    if cache_dir == "default":
        cache_dir = default_cache_dir()
    files, rejected = collect(source, ingest)
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f.identity in wanted]
    if cfg.max_per_identity:  # cap before decoding: a 530-picture identity is not aligned in full
        files = _capped(files, cfg)

    def read(k: int) -> None:
        if on_progress:
            on_progress({"stage": "reading", "done": k, "total": len(files)})
    pictures, bad = decode_all(files, ingest, on_done=read)
    kept, no_face, notes = crop_faces(pictures, cfg, image_size, cache_dir, aligner, on_progress,
                                      template, shipped_crops(source))
    rejected += bad + no_face
    by_id: dict[str, dict[str, Image.Image]] = {}
    methods: dict[str, str] = {}
    for pic, crop, method in kept:
        by_id.setdefault(pic.identity, {})[pic.label] = crop
        methods[pic.label] = method
    excluded: list[Rejection] = []
    if names is None:
        names, excluded = _enrolled(sorted({f.identity for f in files}), by_id, cfg.min_images)
    else:
        missing = [n for n in names if n not in by_id]
        if missing:
            raise KeyError(f"identities with no usable picture in {source}: {', '.join(missing)}")
    return _split(names, by_id, methods, notes, rejected, excluded, cfg, image_size)


def load_gallery_for(model, source: str | Path | Sequence[str | Path], **kwargs) -> Gallery:
    """``source`` as ``model`` (a ``Recognizer``) reads it: its crop size and face template,
    its data config, labelled in its class order. ``kwargs`` go to ``load_gallery``."""
    return load_gallery(source, model.cfg.img_size, model.data_config, names=model.class_names,
                        template=model.cfg.face_template, **kwargs)


def _capped(files: list, cfg: DataConfig) -> list:
    """At most ``cfg.max_per_identity`` files an identity, the same ones for every run (ranked
    by the split's hash of their names)."""
    ranked = sorted(files, key=lambda f: rank_key(f.label, cfg.split_seed))
    count: dict[str, int] = {}
    keep = set()
    for f in ranked:
        if count.get(f.identity, 0) < cfg.max_per_identity:
            count[f.identity] = count.get(f.identity, 0) + 1
            keep.add(id(f))
    return [f for f in files if id(f) in keep]


def _enrolled(seen: list[str], by_id: dict[str, dict[str, Image.Image]],
              min_images: int) -> tuple[list[str], list[Rejection]]:
    """The identities with enough usable pictures, and the others with the reason."""
    names = [n for n in seen if len(by_id.get(n, {})) >= min_images]
    excluded = [(n, f"only {len(by_id.get(n, {}))} usable pictures (need {min_images})")
                for n in seen if n not in names]
    return names, excluded


def _split(names: Sequence[str], by_id: dict[str, dict[str, Image.Image]],
           methods: dict[str, str], notes: list, rejected: list[Rejection],
           excluded: list[Rejection], cfg: DataConfig, image_size: int) -> Gallery:
    """Each identity's crops into train, val and test (``split_labels``), labelled in
    ``names`` order, with the notes and alignment methods of the pictures used."""
    parts = ("train", "val", "test")
    xs: dict[str, list[torch.Tensor]] = {p: [] for p in parts}
    ys: dict[str, list[int]] = {p: [] for p in parts}
    used: dict[str, list[str]] = {p: [] for p in parts}
    for label, name in enumerate(names):
        crops = by_id[name]
        for part, labels in zip(parts, split_labels(list(crops), cfg)):
            for lab in labels:
                xs[part].append(to_tensor(crops[lab]))
                ys[part].append(label)
                used[part].append(lab)
    kept_labels = {lab for p in parts for lab in used[p]}

    def y(part: str) -> torch.Tensor:
        return torch.tensor(ys[part], dtype=torch.long)
    return Gallery(
        names=list(names),
        train_x=_stack(xs["train"], image_size), train_y=y("train"),
        test_x=_stack(xs["test"], image_size), test_y=y("test"),
        val_x=_stack(xs["val"], image_size), val_y=y("val"),
        train_files=used["train"], test_files=used["test"], val_files=used["val"],
        rejected=rejected, excluded=excluded,
        notes=[n for n in notes if n[0] in kept_labels],
        methods={k: v for k, v in methods.items() if k in kept_labels},
    )
