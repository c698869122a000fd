"""The paper's metrics (Acc_r, Acc_f, Acc_o, H-Mean) and evidence beyond accuracy.

Accuracy is the plain argmax of cosine similarity: no margin at test time (the authors keep it,
which is part of why their pre-trained accuracy is ~74 %)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .model import Recognizer


@torch.no_grad()
def embed_all(model: Recognizer, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    model.eval()
    out = [model.embed(images[i:i + batch_size].to(model.device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, model.cfg.embed_dim))


@torch.no_grad()
def logits_all(model: Recognizer, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """s * cosine to every class (no margin), on CPU."""
    emb = embed_all(model, images, batch_size)
    return model.head(emb.to(model.device)).cpu()


def fraction_correct(pred: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Exact fraction from integer counts (float32 means would turn 1/20 into 0.0500000007)."""
    return int((pred == labels).sum()) / len(labels) if len(labels) else None


def per_identity_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Accuracy per class; None where the class has no samples."""
    out: list[float | None] = []
    for c in range(num_classes):
        m = labels == c
        out.append(fraction_correct(pred[m], labels[m]))
    return out


def subset_accuracy(pred: torch.Tensor, labels: torch.Tensor, classes: Sequence[int]) -> float | None:
    """Accuracy on the samples whose label is in ``classes`` (None if there are none)."""
    if len(classes) == 0:
        return None
    m = torch.isin(labels, torch.as_tensor(list(classes), dtype=labels.dtype))
    return fraction_correct(pred[m], labels[m])


def h_mean(acc_r: float, drop: float) -> float:
    """H-Mean = 2 * Acc_r * Drop / (Acc_r + Drop), Drop = Acc_f(before) - Acc_f(after)."""
    return 0.0 if acc_r + drop <= 0 else 2 * acc_r * drop / (acc_r + drop)


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def _fit_logistic(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """1-D logistic regression by Newton's method with a small ridge (stable on separable data)."""
    w, b = 0.0, 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(w * x + b)))
        g = np.array([np.sum((p - y) * x) + 1e-3 * w, np.sum(p - y)])
        s = p * (1 - p)
        h = np.array([[np.sum(s * x * x) + 1e-3, np.sum(s * x)], [np.sum(s * x), np.sum(s) + 1e-9]])
        step = np.linalg.solve(h, g)
        w, b = w - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return w, b


def mia_score(member_losses: torch.Tensor, nonmember_losses: torch.Tensor,
              folds: int = 5, seed: int = 0) -> float | None:
    """Loss-based membership inference: cross-validated accuracy of a logistic regression that
    tells training images (members) from unseen ones by their loss, on balanced classes.

    0.5 means the attacker cannot tell them apart (ideal after forgetting); values well above
    0.5 mean the model still behaves differently on the images it was trained on."""
    n = min(len(member_losses), len(nonmember_losses))
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    a = rng.permutation(member_losses.numpy())[:n]
    b = rng.permutation(nonmember_losses.numpy())[:n]
    x = np.log1p(np.concatenate([a, b]).astype(np.float64))
    y = np.concatenate([np.ones(n), np.zeros(n)])
    order = rng.permutation(2 * n)
    x, y = x[order], y[order]
    mu, sd = x.mean(), x.std() + 1e-12
    x = (x - mu) / sd
    k = max(2, min(folds, n))
    correct = 0
    for f in range(k):
        test = np.arange(2 * n) % k == f
        w, bias = _fit_logistic(x[~test], y[~test])
        pred = (w * x[test] + bias) > 0
        correct += int(np.sum(pred == (y[test] > 0.5)))
    return correct / (2 * n)


def class_prototypes(emb: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean normalised embedding per class (zeros for classes without samples)."""
    protos = torch.zeros(num_classes, emb.shape[1])
    protos.index_add_(0, labels, F.normalize(emb, dim=1))
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1)
    return protos / counts
