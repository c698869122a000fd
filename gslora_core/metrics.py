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
    """Evaluation embeddings (with the test-time flip, see ``Recognizer.embed_flip``)."""
    model.eval()
    out = [model.embed_flip(images[i:i + batch_size].to(model.device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, model.cfg.embedding_dim))


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


def accuracy_by_name(pred: Sequence[str], truth: Sequence[str], names: set[str]) -> float | None:
    """Top-1 on the pictures whose true identity is in ``names``, comparing *names*: recognizers
    with different classes (delete, retrain) are measured alike, and a person without a class is
    never recognized. None when there are no such pictures."""
    pairs = [(p, t) for p, t in zip(pred, truth) if t in names]
    return sum(p == t for p, t in pairs) / len(pairs) if pairs else None


def h_mean(acc_r: float, drop: float) -> float:
    """H-Mean = 2 * Acc_r * Drop / (Acc_r + Drop), Drop = Acc_f(before) - Acc_f(after)."""
    return 0.0 if acc_r + drop <= 0 else 2 * acc_r * drop / (acc_r + drop)


def class_prototypes(emb: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     normalize: bool = True) -> torch.Tensor:
    """Mean embedding per class, of unit embeddings unless ``normalize=False`` (zeros for
    classes without samples)."""
    protos = torch.zeros(num_classes, emb.shape[1])
    protos.index_add_(0, labels, F.normalize(emb, dim=1) if normalize else emb)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1)
    return protos / counts


def make_pairs(labels: Sequence[int], n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """LFW-style verification pairs: half same-identity, half different, drawn deterministically.

    Same pairs are spread over identities (one identity at a time, round robin) so that a few
    people with many pictures do not dominate. Returns (pairs (P, 2) of row indices, same (P,))."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    multi = [g for g in groups if len(g) >= 2]
    if not multi or len(groups) < 2:
        raise ValueError("verification pairs need two identities and one with two pictures")
    # Every same pair of each identity, shuffled; then taken round robin over identities.
    pools = []
    for g in multi:
        combos = [(int(g[i]), int(g[j])) for i in range(len(g)) for j in range(i + 1, len(g))]
        pools.append([combos[k] for k in rng.permutation(len(combos))])
    same: list[tuple[int, int]] = []
    depth = 0
    while len(same) < n_pairs // 2 and any(depth < len(p) for p in pools):
        same += [p[depth] for p in pools if depth < len(p)][:n_pairs // 2 - len(same)]
        depth += 1
    seen = set(same)
    diff: list[tuple[int, int]] = []
    while len(diff) < len(same):  # balanced, so chance is 50 %
        ga, gb = rng.choice(len(groups), 2, replace=False)
        a, b = sorted((int(rng.choice(groups[ga])), int(rng.choice(groups[gb]))))
        if (a, b) not in seen:
            seen.add((a, b))
            diff.append((a, b))
    pairs = np.array(same + diff, dtype=np.int64)
    flags = np.array([True] * len(same) + [False] * len(diff))
    order = rng.permutation(len(pairs))
    return pairs[order], flags[order]


def verification_accuracy(emb: torch.Tensor, pairs: np.ndarray, same: np.ndarray,
                          folds: int = 10) -> dict:
    """LFW protocol: the cosine threshold is chosen on 9 folds and scored on the 10th.

    Returns the mean held-out accuracy, its standard deviation, and the threshold fitted on all
    pairs (what an application would use)."""
    e = F.normalize(emb.float(), dim=-1).numpy()
    sims = (e[pairs[:, 0]] * e[pairs[:, 1]]).sum(1)

    def best_threshold(s: np.ndarray, y: np.ndarray) -> float:
        cands = np.unique(s)
        accs = [((s >= t) == y).mean() for t in cands]
        return float(cands[int(np.argmax(accs))])

    idx = np.array_split(np.arange(len(pairs)), folds)
    accs = []
    for k in range(folds):
        train = np.concatenate([idx[j] for j in range(folds) if j != k])
        t = best_threshold(sims[train], same[train])
        accs.append(float(((sims[idx[k]] >= t) == same[idx[k]]).mean()))
    return {"accuracy": float(np.mean(accs)), "std": float(np.std(accs)),
            "threshold": best_threshold(sims, same), "pairs": int(len(pairs))}
