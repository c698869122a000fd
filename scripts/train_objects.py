"""Train the shipped object classifier on CIFAR-10 (issue 36).

The same Recognizer as the face model (a timm ViT whose blocks carry the LoRA, a CosFace head),
on 32x32 pictures used whole.

Resumable: every epoch writes ``<out>/state.pt`` (weights, optimiser, epoch, random state;
read back with ``weights_only=True``) and ``<out>/history.json``; run the same command again and
it goes on from the last finished epoch. The checkpoint with the best *validation* accuracy
(500 training pictures a class held out, ``bench/cifar10.py``) is kept as ``<out>/best.safetensors``;
``--finish`` scores it once on the test set, fixes its open-set threshold on the validation
pictures and writes it (and its model card) to ``checkpoints/``.

    python scripts/train_objects.py --out runs/objects/main --threads 2   # train (or resume)
    python scripts/train_objects.py --out runs/objects/main --finish    # test, ship
    python scripts/train_objects.py --probe                             # seconds per epoch of sizes
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cifar10 import CLASSES, load  # noqa: E402
from gslora_core.cli import add_knob_flags, config_from_args  # noqa: E402
from gslora_core.config import DataConfig, ModelConfig, knob  # noqa: E402
from gslora_core.data import Gallery  # noqa: E402
from gslora_core.metrics import embed_all, fraction_correct  # noqa: E402
from gslora_core.model import Recognizer, resolve_device, save_recognizer  # noqa: E402
from gslora_core.training import decay_groups, fix_threshold, lr_at  # noqa: E402

# How a gallery of object classes is read and split by the shipped classifier (its checkpoint
# keeps it): whole pictures, a quarter of each class held back for test, as the face galleries.
GALLERY_SPLIT = DataConfig(preprocess="whole")


@dataclass(frozen=True)
class ObjectsRecipe:
    """Every choice of the classifier's training, with what it is for."""

    width: int = knob(256, "transformer width (heads of 64 channels)")
    depth: int = knob(6, "transformer blocks (each carries one LoRA group when forgetting)")
    patch: int = knob(8, "token size in pixels: 8 gives a 4x4 token grid from 32x32 (2 min an "
                         "epoch at width 192 on 2 cores; 4 gives 8x8 tokens, 6.5 min)")
    stem: str = knob("conv", "conv: stride-2 3x3 convolutions (Xiao et al. 2021); patch: the "
                             "single patchify convolution")
    epochs: int = knob(40, "epochs over the 45,000 training pictures")
    batch: int = knob(128, "pictures a step")
    lr: float = knob(1e-3, "AdamW peak learning rate (linear warm-up, cosine decay)")
    weight_decay: float = knob(0.05, "AdamW weight decay on matrices")
    warmup: int = knob(2, "warm-up epochs")
    label_smoothing: float = knob(0.0, "cross-entropy label smoothing")
    s: float = knob(16.0, "CosFace scale (with 32 and margin 0.2 the loss starts at 8.6 and "
                          "was still 8.1 after one epoch: 22 % validation, width 192, patch 4)")
    m: float = knob(0.1, "CosFace margin")
    seed: int = knob(0, "random seed")


def model_for(r: ObjectsRecipe) -> Recognizer:
    cfg = ModelConfig(img_size=32, patch_size=r.patch, embed_dim=r.width, depth=r.depth,
                      num_heads=max(1, r.width // 64), cosface_s=r.s, cosface_m=r.m, stem=r.stem)
    return Recognizer(cfg, CLASSES, GALLERY_SPLIT)


def crop_flip(images: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """CIFAR's usual augmentation on a uint8 batch: a random 32x32 crop of the picture padded
    by ``pad`` (reflected), mirrored half the time -> float in [0, 1]."""
    n, _, h, w = images.shape
    x = F.pad(images.float() / 255.0, (pad,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = x[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def accuracy(model: Recognizer, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = model.head.cosine(embed_all(model, x, 500).to(model.device)).cpu().argmax(1)
    return float(fraction_correct(pred, y))


def train(r: ObjectsRecipe, out: Path, device: str = "auto", max_minutes: float = 0,
          data: dict[str, torch.Tensor] | None = None) -> dict:
    """Train (or resume) to ``r.epochs``; stops early after ``max_minutes`` (0: no limit) at
    an epoch's end, so a run can be split over sittings. ``data``: CIFAR-10's arrays
    (``bench.cifar10.load``) unless given."""
    out.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else load()
    dev = resolve_device(device)
    torch.manual_seed(r.seed)
    model = model_for(r).to(dev)
    opt = torch.optim.AdamW(decay_groups(list(model.parameters()), r.weight_decay), lr=r.lr)
    gen = torch.Generator().manual_seed(r.seed)
    history: dict = {"recipe": asdict(r), "epochs": []}
    state_file = out / "state.pt"
    if state_file.exists():
        state = torch.load(state_file, map_location=dev, weights_only=True)
        if state["recipe"] != asdict(r):
            raise SystemExit(f"{state_file} was trained with another recipe: {state['recipe']}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        history = json.loads((out / "history.json").read_text())
    x, y = data["train_x"], data["train_y"]
    n = len(y)
    per_epoch = n // r.batch  # full batches only
    total, warm = r.epochs * per_epoch, r.warmup * per_epoch
    started = time.time()
    for epoch in range(len(history["epochs"]), r.epochs):
        model.train()
        t0, losses, correct = time.time(), [], 0
        order = torch.randperm(n, generator=gen)
        for i in range(per_epoch):
            idx = order[i * r.batch:(i + 1) * r.batch]
            xb, yb = crop_flip(x[idx], gen).to(dev), y[idx].to(dev)
            step = epoch * per_epoch + i
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warm, r.lr)
            cos = model.head.cosine(model.embed(xb))
            loss = F.cross_entropy(model.head.margin_logits(cos, yb), yb,
                                   label_smoothing=r.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            correct += int((cos.argmax(1) == yb).sum())
        row = {"epoch": epoch + 1, "loss": sum(losses) / len(losses),
               "train_accuracy": correct / (per_epoch * r.batch),
               "val_accuracy": accuracy(model, data["val_x"], data["val_y"]),
               "seconds": time.time() - t0, "device": str(dev)}
        history["epochs"].append(row)
        best = max(e["val_accuracy"] for e in history["epochs"])
        if row["val_accuracy"] >= best:
            model.cpu()
            save_recognizer(model, out / "best.safetensors")
            model.to(dev)
            history["best_epoch"] = epoch + 1
        torch.save({"recipe": asdict(r), "model": model.state_dict(), "opt": opt.state_dict(),
                    "gen": gen.get_state()}, out / "state.tmp")
        (out / "state.tmp").replace(state_file)
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        print(f"epoch {epoch + 1}/{r.epochs}: loss {row['loss']:.3f}, train "
              f"{row['train_accuracy']:.3f}, val {row['val_accuracy']:.3f}, "
              f"{row['seconds']:.0f} s", flush=True)
        if max_minutes and time.time() - started >= max_minutes * 60:
            print("time's up for this sitting; run the same command to go on", flush=True)
            break
    return history


def finish(out: Path, ship: Path) -> dict:
    """Score the best-on-validation checkpoint on the test set (once), fix its open-set
    threshold on the validation pictures, and write it to ``ship`` with its scores."""
    from gslora_core.model import load_recognizer

    data = load()
    model = load_recognizer(out / "best.safetensors")
    model.data_config = GALLERY_SPLIT  # (runs before 2026-12-05 wrote test_fraction 0 here)
    history = json.loads((out / "history.json").read_text())
    gallery = Gallery(names=list(CLASSES), train_x=data["train_x"][:0],
                      train_y=data["train_y"][:0], test_x=data["test_x"], test_y=data["test_y"],
                      val_x=data["val_x"], val_y=data["val_y"])
    fix_threshold(model, gallery)
    scores = {"test_accuracy": accuracy(model, data["test_x"], data["test_y"]),
              "val_accuracy": accuracy(model, data["val_x"], data["val_y"]),
              "best_epoch": history["best_epoch"], "epochs_run": len(history["epochs"]),
              "train_hours": sum(e["seconds"] for e in history["epochs"]) / 3600,
              "threshold": model.threshold.to_dict() if model.threshold else None,
              "recipe": history["recipe"]}
    scores["date"] = time.strftime("%Y-%m-%d")
    scores["finished"] = len(history["epochs"]) >= history["recipe"]["epochs"]
    save_recognizer(model, ship)
    ship.with_suffix(".json").write_text(json.dumps(scores, indent=1) + "\n")
    ship.with_suffix(".md").write_text(model_card(scores, history, ship))
    return scores


def model_card(scores: dict, history: dict, ship: Path) -> str:
    """What the shipped classifier is, how it was made and what it scores (from its run)."""
    r = scores["recipe"]
    state = ("the finished run" if scores["finished"] else
             f"**interim**: the best of the first {scores['epochs_run']} of {r['epochs']} epochs "
             "(the run goes on; this file is replaced when it ends)")
    curve = ", ".join(f"{e['epoch']}: {100 * e['val_accuracy']:.1f}" for e in history["epochs"])
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in r.items())
    return f"""# {ship.name}: the object classifier (CIFAR-10)

The studio's second setting (issue 36): forgetting a class of objects. The same `Recognizer`
as the face model — a timm ViT ({r['depth']} blocks, width {r['width']}, a convolutional stem
making {(32 // r['patch']) ** 2} tokens of {r['patch']}x{r['patch']} pixels) with a CosFace head (s
{r['s']}, m {r['m']}) — so every block carries LoRA exactly as the face model's do. Pictures are
used whole (`DataConfig(preprocess="whole")`), 32x32.

- **Data**: CIFAR-10 (Krizhevsky 2009, the JPEG export in ../shared/datasets/cifar10): 45,000
  training pictures, 5,000 validation pictures (500 a class, by file-name hash;
  `bench/cifar10.py`) that chose the checkpoint, 10,000 test pictures scored once.
- **Made by** (2 CPU cores, resumable): `python scripts/train_objects.py --out runs/objects/main
  {flags}` then `--finish`. AdamW, linear warm-up and cosine decay, random crop (4 px, reflected)
  and flip.
- **State**: {state}; {scores['train_hours']:.1f} h of training so far; {scores['date']}.
- **Scores**: test top-1 **{100 * scores['test_accuracy']:.1f} %** (epoch {scores['best_epoch']},
  validation {100 * scores['val_accuracy']:.1f} %). Open-set threshold fixed on the validation
  pictures: cosine {scores['threshold']['tau']:.3f}.
- **Validation accuracy by epoch**: {curve}.
- **Kept states** (`objects_classifier.states.safetensors`): the page's object sample
  (`assets/sample_objects`) at the top block's MLP input, so it loads without a measuring pass;
  used only while they fit these weights and pictures. After shipping a new classifier: `python -m
  gslora_core evaluate --checkpoint checkpoints/objects_classifier.safetensors --gallery
  assets/sample_objects --keep-states`.
"""


def probe(sizes: list[tuple[int, int, int]], batches: int = 5) -> list[dict]:
    """Seconds per training epoch (45,000 pictures), measured on a few batches, per
    (width, depth, patch): to choose a size the CPU can train."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (128, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (128,))
    for width, depth, patch in sizes:
        model = model_for(ObjectsRecipe(width=width, depth=depth, patch=patch)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for _ in range(batches + 1):
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(crop_flip(x, gen), y), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        per_batch = sorted(times[1:])[len(times[1:]) // 2]
        rows.append({"width": width, "depth": depth, "patch": patch,
                     "tokens": (32 // patch) ** 2,
                     "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                     "minutes_per_epoch": per_batch * math.ceil(45000 / 128) / 60})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_knob_flags(ap, ObjectsRecipe)
    ap.add_argument("--out", default=str(ROOT / "runs" / "objects" / "main"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--max-minutes", type=float, default=0,
                    help="stop at the first epoch end after this long (resume later)")
    ap.add_argument("--finish", action="store_true", help="score on test and ship")
    ap.add_argument("--ship", default=str(ROOT / "checkpoints" / "objects_classifier.safetensors"))
    ap.add_argument("--probe", action="store_true", help="minutes per epoch of a few sizes")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.probe:
        probe([(192, 6, 4), (192, 6, 8), (128, 6, 4), (256, 6, 8)])
        return
    if a.finish:
        print(json.dumps(finish(Path(a.out), Path(a.ship)), indent=1))
        return
    recipe = config_from_args(ObjectsRecipe(), a)
    train(recipe, Path(a.out), a.device, a.max_minutes)


if __name__ == "__main__":
    main()
