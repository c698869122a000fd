"""Supervised CosFace training of a recognizer on a gallery's train split (enrollment)."""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .config import DataConfig, TrainConfig
from .data import Gallery
from .metrics import class_prototypes, embed_all, fraction_correct, per_identity_accuracy
from .model import Recognizer, resolve_device
from .openset import Threshold, calibrate
from .progress import CancelFn, ProgressFn


def jitter(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flip, scale (0.9-1.1) and shift (+-6 %) of a uint8 batch -> float in [0, 1].

    Small on purpose: the crops are already face-centred, heavy augmentation only slows learning."""
    x = images.float() / 255.0
    n = x.shape[0]
    scale = 0.9 + 0.2 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) - 0.5) * 0.12
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def from_backbone(backbone: Recognizer, gallery: Gallery,
                  data_config: DataConfig | None = None) -> Recognizer:
    """A recognizer over ``gallery.names`` on a pretrained backbone, its CosFace head set to each
    identity's mean train embedding (so it recognizes before any training step).
    ``data_config`` is how the gallery was loaded (default: the backbone's)."""
    model = Recognizer(backbone.cfg, gallery.names, data_config or backbone.data_config)
    state = {k: v for k, v in backbone.state_dict().items() if k.startswith("backbone.")}
    model.load_state_dict(state, strict=False)
    model.to(backbone.device)
    with torch.no_grad():
        emb = F.normalize(embed_all(model, gallery.train_x), dim=-1)
        protos = class_prototypes(emb, gallery.train_y, len(gallery.names))
        model.head.weight.copy_(F.normalize(protos, dim=-1))
    return model


def check_labels(model: Recognizer, gallery: Gallery) -> None:
    if gallery.names != model.class_names:
        raise ValueError("gallery identities do not match the recognizer's classes; load the "
                         "gallery with names=model.class_names")


def train_recognizer(model: Recognizer, gallery: Gallery, cfg: TrainConfig = TrainConfig(),
                     on_progress: ProgressFn | None = None,
                     should_cancel: CancelFn | None = None) -> dict:
    """Train every weight of ``model`` with CosFace CE; returns a small report."""
    check_labels(model, gallery)
    if len(gallery.train_y) == 0:
        raise ValueError("the gallery has no training images")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device).train().requires_grad_(True)
    opt = _optimizer(model, cfg)
    n = len(gallery.train_y)
    per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total, warmup = cfg.epochs * per_epoch, cfg.warmup_epochs * per_epoch
    t0, step, losses = time.perf_counter(), 0, []
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            if should_cancel and should_cancel():
                raise InterruptedError("training cancelled")
            idx = order[i:i + cfg.batch_size]
            x = gallery.train_x[idx]
            x = jitter(x, gen) if cfg.augment else x.float() / 255.0
            y = gallery.train_y[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warmup, cfg.lr) * g["scale"]
            loss = F.cross_entropy(model(x.to(device), y), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if on_progress:  # every step: a page shows the count moving from the first batch
                on_progress({"epoch": epoch + 1, "epochs": cfg.epochs, "step": step,
                             "steps": total, "loss": losses[-1],
                             "seconds": time.perf_counter() - t0,
                             "epoch_end": i + cfg.batch_size >= n})
    if on_progress:
        on_progress({"stage": "measuring", "epoch": cfg.epochs, "epochs": cfg.epochs,
                     "step": step, "steps": total, "loss": losses[-1] if losses else None,
                     "seconds": time.perf_counter() - t0})
    model.freeze()
    return _measured(model, gallery, cfg, t0, losses)


def decay_groups(params: list[torch.Tensor], weight_decay: float, **extra) -> list[dict]:
    """Optimizer groups with weight decay on matrices only (not on biases, norms, tokens), in
    that order; ``extra`` keys go into both groups."""
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay, **extra},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, **extra}]


def _optimizer(model: Recognizer, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over every weight: the backbone at ``backbone_lr_scale`` of the head's rate (each
    group's ``scale``), weight decay on matrices only."""
    groups = []
    for part, scale in ((model.backbone, cfg.backbone_lr_scale), (model.head, 1.0)):
        groups += decay_groups([p for p in part.parameters() if p.requires_grad],
                               cfg.weight_decay, scale=scale)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr)


def _measured(model: Recognizer, gallery: Gallery, cfg: TrainConfig, t0: float,
              losses: list[float]) -> dict:
    """The trained recognizer on the held-back pictures: accuracy, per identity, and its
    open-set threshold (fixed here); ``t0`` the training's start, for the seconds."""
    train_seconds = time.perf_counter() - t0
    test_cos = model.head.cosine(embed_all(model, gallery.test_x).to(model.device)).cpu()
    fix_threshold(model, gallery, cfg.open_set_keep, test_cos=test_cos)
    pred = test_cos.argmax(1)
    per_id = per_identity_accuracy(pred, gallery.test_y, len(gallery.names))
    return {
        "test_accuracy": fraction_correct(pred, gallery.test_y),
        "per_identity": dict(zip(gallery.names, per_id)),
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "final_loss": losses[-1] if losses else None,
        "steps": len(losses),
        "config": cfg.to_dict(),
        "threshold": model.threshold.to_dict() if model.threshold else None,
    }


@torch.no_grad()
def fix_threshold(model: Recognizer, gallery: Gallery, keep: float = 0.99,
                  people: list[int] | None = None,
                  test_cos: torch.Tensor | None = None) -> Threshold:
    """Fix the recognizer's open-set threshold (``openset``) on ``people`` (default: everyone)
    and keep it in the model (so in its checkpoint): on the gallery's validation pictures when
    it has them, else on its held-back test pictures (``test_cos``: their cosines, if the caller
    has them already)."""
    part, x, y = (("validation", gallery.val_x, gallery.val_y) if len(gallery.val_y)
                  else ("test", gallery.test_x, gallery.test_y))
    cos = (test_cos if part == "test" and test_cos is not None
           else model.head.cosine(embed_all(model, x).to(model.device)).cpu())
    classes = list(range(len(model.class_names))) if people is None else people
    model.threshold = calibrate(cos, y, classes, part, keep)
    return model.threshold
