"""Backbone pretraining: distil a face-embedding teacher into the Face Transformer.

The input is a *face cache* (see ``facecache``): aligned 112x112 crops of a folder of faces plus
the teacher's embedding of each. The student is the ViT backbone followed by a linear map to the
teacher's dimension; the map is thrown away afterwards and the backbone is saved as a recognizer
with no classes, which ``enroll`` then gives a CosFace head for a gallery.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DataConfig, ModelConfig, PretrainConfig
from .metrics import embed_all, make_pairs, verification_accuracy
from .model import Recognizer, resolve_device, save_recognizer
from .training import augment, lr_at

ProgressFn = Callable[[dict], None]


@dataclass
class DistillSet:
    """Aligned crops (N, H, W, 3) uint8, teacher embeddings (N, D) and each row's identity."""

    images: torch.Tensor
    targets: torch.Tensor
    identities: list[str]

    def subset(self, keep: Sequence[bool] | np.ndarray) -> "DistillSet":
        idx = torch.from_numpy(np.flatnonzero(np.asarray(keep)))
        return DistillSet(self.images[idx], self.targets[idx],
                          [self.identities[i] for i in idx.tolist()])


def resized(images: torch.Tensor, size: int, chunk: int = 512) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8, antialiased; unchanged if already that size."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    out = [F.interpolate(images[i:i + chunk].permute(0, 3, 1, 2).float(), size=(size, size),
                         mode="bilinear", antialias=True, align_corners=False)
           .round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
           for i in range(0, len(images), chunk)]
    return torch.cat(out)


def split_holdout(data: DistillSet, holdout: set[str]) -> tuple[DistillSet, DistillSet]:
    """(training rows, held-out rows): held-out identities never reach the optimiser."""
    held = np.array([i in holdout for i in data.identities])
    return data.subset(~held), data.subset(held)


def jitter(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """Random brightness and contrast (+- amount) on a float batch in [0, 1]."""
    if amount <= 0:
        return x
    n = x.shape[0]
    b = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * amount
    c = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * amount
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c.to(x.device) + mean * b.to(x.device)).clamp(0, 1)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, relation_weight: float) -> tuple[torch.Tensor, dict]:
    """1 - cosine to the teacher, plus the gap between the two batch similarity matrices."""
    s, t = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    point = (1 - (s * t).sum(-1)).mean()
    relation = F.mse_loss(s @ s.T, t @ t.T)
    return point + relation_weight * relation, {"point": float(point.detach()), "relation": float(relation.detach())}


def validation_pairs(held: DistillSet, n_pairs: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(set(held.identities))
    labels = [names.index(i) for i in held.identities]
    return make_pairs(labels, n_pairs, seed)


def pretrain(data: DistillSet, held: DistillSet | None, model_cfg: ModelConfig,
             cfg: PretrainConfig = PretrainConfig(), out: str | Path | None = None,
             on_progress: ProgressFn | None = None,
             init: Recognizer | None = None) -> tuple[Recognizer, dict]:
    """Train a backbone on ``data``; score verification on ``held`` after every epoch.

    With ``out`` the backbone is saved after every epoch (so a long run can be stopped at any
    time) together with ``<out>.json``, the history. ``init`` continues from an earlier
    backbone of the same size (a fresh projection and schedule)."""
    if len(data.images) == 0:
        raise ValueError("no training pictures")
    device = resolve_device(cfg.device)
    data = DistillSet(resized(data.images, model_cfg.img_size), data.targets, data.identities)
    if held is not None:
        held = DistillSet(resized(held.images, model_cfg.img_size), held.targets, held.identities)
    # Teacher embeddings share one big mean direction (mean cosine between any two faces ~0.83):
    # matching it teaches nothing. Centred targets keep only what tells faces apart.
    center = data.targets.mean(0)
    data = DistillSet(data.images, data.targets - center, data.identities)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = Recognizer(model_cfg, [], DataConfig(preprocess="mtcnn"))
    if init is not None:
        if init.cfg != model_cfg:
            raise ValueError("--init must be a backbone of the same model size")
        model.backbone.load_state_dict(init.backbone.state_dict())
    model.to(device)
    proj = nn.Linear(model_cfg.embed_dim, data.targets.shape[1], bias=False).to(device)
    params = list(model.backbone.parameters()) + list(proj.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    pairs = validation_pairs(held) if held is not None and len(held.images) else None
    n = len(data.images)
    per_epoch = max(1, n // cfg.batch_size)  # no ragged last batch: its relation loss is noisy
    total, warmup = cfg.epochs * per_epoch, cfg.warmup_epochs * per_epoch
    history: list[dict] = []
    t0, step = time.perf_counter(), 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        sums = {"loss": 0.0, "point": 0.0, "relation": 0.0}
        for b in range(per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = data.images[idx].permute(0, 3, 1, 2)
            x = jitter(augment(x, gen), cfg.colour_jitter, gen).to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warmup, cfg.lr)
            loss, parts = distill_loss(proj(model.embed(x)), data.targets[idx].to(device),
                                       cfg.relation_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sums["loss"] += float(loss.detach())
            sums["point"] += parts["point"]
            sums["relation"] += parts["relation"]
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 1),
               **{k: v / per_epoch for k, v in sums.items()}}
        if pairs is not None:
            emb = embed_all(model, held.images.permute(0, 3, 1, 2))
            row["verification"] = verification_accuracy(emb, *pairs)
        history.append(row)
        if on_progress:
            on_progress(row)
        if out is not None:
            save_backbone(model, out, history, cfg, model_cfg, images=n)
    model.eval().requires_grad_(False)
    return model, {"history": history, "seconds": time.perf_counter() - t0, "images": n}


def save_backbone(model: Recognizer, out: str | Path, history: list[dict],
                  cfg: PretrainConfig, model_cfg: ModelConfig, images: int) -> None:
    out = Path(out)
    tmp = out.with_suffix(".tmp.safetensors")
    save_recognizer(model, tmp)
    tmp.replace(out)
    out.with_suffix(".json").write_text(json.dumps(
        {"pretrain": cfg.to_dict(), "model": model_cfg.to_dict(), "images": images,
         "history": history}, indent=1))

