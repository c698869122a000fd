"""CIFAR-10 for the object-class setting (issue 36): the shared JPEG archive read once into
uint8 arrays, a validation part cut from the training set, and small samples for the app.

The archive (``../shared/datasets/cifar10/cifar10-images.tar.gz``, 60,000 JPEGs of 32x32) is
read straight from the tar, never unpacked into 60,000 files; the arrays are cached in
``runs/cifar10/arrays.safetensors`` (180 MB, git-ignored). Validation: 500 training pictures a
class, chosen by a hash of the file name (``data.split_labels``' rule), so checkpoints and
recipes are chosen without the test set.

    python -m bench.cifar10                       # build the cache; print the counts
    python -m bench.cifar10 --sample 40 --out assets/sample_objects   # the app's sample
    python -m bench.cifar10 --examples 40 --out assets/probes/objects  # Try a photo's examples
"""
from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "datasets" / "cifar10" / "cifar10-images.tar.gz"
CACHE = ROOT / "runs" / "cifar10" / "arrays.safetensors"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
VAL_PER_CLASS = 500
EXAMPLE_CLASSES = ("cat", "dog", "airplane", "truck", "horse")


def _members(archive: Path):
    """(part, class, file name, JPEG bytes) for every picture in the archive, in its order."""
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 4 or parts[-3] not in ("train", "test"):
                continue
            fh = tar.extractfile(m)
            if fh is not None:
                yield parts[-3], parts[-2], parts[-1], fh.read()


def _val_rank(cls: str, name: str) -> str:
    return hashlib.sha1(f"{cls}/{name}".encode()).hexdigest()


def build(archive: Path = ARCHIVE, cache: Path = CACHE) -> Path:
    """Read the archive into arrays (train, val, test: N x 3 x 32 x 32 uint8 and labels)."""
    if cache.exists():
        return cache
    if not archive.exists():
        raise FileNotFoundError(f"{archive} not found: the CIFAR-10 archive is read from "
                                "../shared/datasets/cifar10 (see its README)")
    rows: dict[str, list[tuple[str, int, np.ndarray]]] = {"train": [], "test": []}
    for part, cls, name, data in _members(archive):
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
        rows[part].append((f"{cls}/{name}", CLASSES.index(cls), img))
    # Validation: the VAL_PER_CLASS training pictures per class with the lowest name hash.
    val_keys = set()
    for c in range(len(CLASSES)):
        keys = sorted((k for k, y, _ in rows["train"] if y == c),
                      key=lambda k: _val_rank(*k.split("/")))
        val_keys.update(keys[:VAL_PER_CLASS])
    parts = {"train": [r for r in rows["train"] if r[0] not in val_keys],
             "val": [r for r in rows["train"] if r[0] in val_keys], "test": rows["test"]}
    tensors = {}
    for part, items in parts.items():
        items.sort(key=lambda r: r[0])
        tensors[f"{part}_x"] = torch.from_numpy(np.stack([r[2] for r in items])).permute(
            0, 3, 1, 2).contiguous()
        tensors[f"{part}_y"] = torch.tensor([r[1] for r in items], dtype=torch.long)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(cache), metadata={"classes": ",".join(CLASSES),
                                             "source": str(archive.name)})
    return cache


def load(cache: Path = CACHE) -> dict[str, torch.Tensor]:
    """The arrays: {train,val,test}_{x,y}; x is uint8 N x 3 x 32 x 32."""
    return load_file(str(build(cache=cache)))


def first_per_class(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` pictures of each class (all of them for k <= 0), in class order."""
    per_class = [torch.nonzero(y == c).flatten() for c in range(len(CLASSES))]
    idx = torch.cat([p[:k] if k > 0 else p for p in per_class])
    return x[idx], y[idx]


def gallery(train_per_class: int, test_per_class: int = 0, val_per_class: int = 0,
            arrays: dict[str, torch.Tensor] | None = None):
    """CIFAR-10 as a gallery of classes for the forgetting engine: ``train_per_class`` pictures
    a class of the training part (the task's forget and retain pools), the test part (all, or
    ``test_per_class`` a class) scored, the validation part (``val_per_class``; 0 = all) kept
    for choosing recipes (``Gallery.scored_on("val")``)."""
    from gslora_core.data import Gallery

    d = arrays if arrays is not None else load()
    tx, ty = first_per_class(d["train_x"], d["train_y"], train_per_class)
    ex, ey = first_per_class(d["test_x"], d["test_y"], test_per_class)
    vx, vy = first_per_class(d["val_x"], d["val_y"], val_per_class)
    return Gallery(names=list(CLASSES), train_x=tx, train_y=ty, test_x=ex, test_y=ey,
                   val_x=vx, val_y=vy)


def _ranked(part: str, classes: Sequence[str], archive: Path
            ) -> dict[str, list[tuple[str, str, bytes]]]:
    """Each of ``classes``' pictures in the archive's ``part`` as (name hash, file name, JPEG
    bytes), in hash order: the order samples and examples are taken in."""
    chosen: dict[str, list[tuple[str, str, bytes]]] = {c: [] for c in classes}
    for p, cls, name, data in _members(archive):
        if p == part and cls in chosen:
            chosen[cls].append((_val_rank(cls, name), name, data))
    return {c: sorted(items) for c, items in chosen.items()}


def write_sample(out: Path, per_class: int, part: str = "test", archive: Path = ARCHIVE,
                 skip: int = 0) -> int:
    """``per_class`` JPEGs a class from the archive's ``part`` (the first by name hash after
    ``skip``), as a gallery folder (one folder per class) the app loads like a face gallery.
    ``part="train"`` takes the validation pictures (the lowest hashes, never trained on)."""
    count = 0
    for cls, items in _ranked(part, CLASSES, archive).items():
        (out / cls).mkdir(parents=True, exist_ok=True)
        for _, name, data in items[skip:skip + per_class]:
            (out / cls / f"{cls}_{name}").write_bytes(data)
            count += 1
    return count


def write_examples(out: Path, after: int, classes: tuple[str, ...] = EXAMPLE_CLASSES,
                   part: str = "test", archive: Path = ARCHIVE) -> list[Path]:
    """One picture of each of ``classes`` that a sample of ``after`` a class does not hold (the
    next by the same name hash): Try a photo's examples, pictures the classifier never saw."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for cls, items in _ranked(part, classes, archive).items():
        _, name, data = items[after]
        path = out / f"{cls}_{name}"
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample", type=int, default=0, help="pictures a class for a sample folder")
    ap.add_argument("--part", choices=["test", "train"], default="test",
                    help="train: a sample of the validation pictures (for choosing its size)")
    ap.add_argument("--skip", type=int, default=0, help="start after this many a class")
    ap.add_argument("--examples", type=int, default=0, metavar="AFTER",
                    help="one picture of a few classes outside a sample of AFTER a class")
    ap.add_argument("--out", default=str(ROOT / "assets" / "sample_objects"))
    a = ap.parse_args(argv)
    if a.examples:
        for path in write_examples(Path(a.out), a.examples):
            print(f"wrote {path}")
        return
    if a.sample:
        n = write_sample(Path(a.out), a.sample, a.part, skip=a.skip)
        print(f"wrote {n} pictures to {a.out}")
        return
    arrays = load()
    print({k: tuple(v.shape) for k, v in arrays.items()})


if __name__ == "__main__":
    main()
