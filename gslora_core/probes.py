"""What forgetting did inside the model: is a person gone, or only gone from the answer sheet?

Three ways to forget the same people, measured the same way:
- *delete*: drop their rows from the head (what a naive system does; instant, the backbone keeps
  everything it knew about them);
- *GS-LoRA*: the task's adapters (the model as the visitor left it);
- *retrain*: enroll again from the backbone without them (the gold standard).

For each: Acc_r / Acc_f by name; **still recognizable?** (do two held-back pictures of a forgotten
person still match at the verification threshold fixed on retained people, and is a held-back
picture's nearest training picture still their own?); **can they come back?** (train only the
head on k pictures of them for a fixed small budget and see how much accuracy returns); and a
shared 2-D **embedding map** (a projection fitted on the untouched model, so before and after
share axes).
"""
from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence, TypedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.decomposition import PCA

from .config import TrainConfig
from .data import Gallery
from .metrics import accuracy_by_name, embed_all, make_pairs, verification_accuracy
from .model import Recognizer
from .training import from_backbone, train_recognizer


def untouched_copy(model: Recognizer) -> Recognizer:
    """The recognizer before any forgetting task: a copy with every task's adapters removed.
    Merged tasks are folded into the weights and cannot be taken out."""
    if any(t.merged for t in model.tasks):
        raise ValueError("a merged task cannot be taken out: give the checkpoint before export")
    out = copy.deepcopy(model)
    for rec in list(out.tasks):
        out.remove_task(rec.name)
    return out.eval()


def delete_people(model: Recognizer, names: Sequence[str]) -> Recognizer:
    """The naive way to forget: a copy whose head has no row for ``names``."""
    gone = set(names)
    keep = [c for c, n in enumerate(model.class_names) if n not in gone]
    if not keep:
        raise ValueError("deleting everyone leaves no recognizer")
    out = copy.deepcopy(model)
    out.class_names = [model.class_names[c] for c in keep]
    out.head.weight = nn.Parameter(model.head.weight.detach()[keep].clone(), requires_grad=False)
    return out.eval()


class Retrained(NamedTuple):
    model: Recognizer
    seconds: float  # the whole re-enrollment, wall clock
    train_seconds: float  # its training steps only
    pictures: int = 0  # training pictures it trained on


def retrain_without(backbone: Recognizer, gallery: Gallery, names: Sequence[str],
                    cfg: TrainConfig = TrainConfig.from_backbone(),
                    data_config=None, on_progress=None, should_cancel=None) -> Retrained:
    """Enroll again from the backbone on everyone but ``names`` (the same pictures, the app's
    enrollment recipe): the gold standard of forgetting. ``on_progress`` / ``should_cancel``
    as in ``train_recognizer``."""
    t0 = time.perf_counter()
    gone = set(names)
    sub = gallery.subset([n for n in gallery.names if n not in gone])
    model = from_backbone(backbone, sub, data_config)
    report = train_recognizer(model, sub, cfg, on_progress=on_progress,
                              should_cancel=should_cancel)
    return Retrained(model, time.perf_counter() - t0, report["train_seconds"], len(sub.train_y))


@dataclass
class Embedded:
    """Unit embeddings of a gallery's pictures by one model (CPU)."""

    train: torch.Tensor
    test: torch.Tensor


def embed_gallery(model: Recognizer, gallery: Gallery) -> Embedded:
    return Embedded(F.normalize(embed_all(model, gallery.train_x), dim=-1),
                    F.normalize(embed_all(model, gallery.test_x), dim=-1))


@torch.no_grad()
def predicted_names(model: Recognizer, emb: torch.Tensor) -> list[str]:
    """The top-1 identity name of each (unit) embedding."""
    return [model.class_names[i]
            for i in model.head.cosine(emb.to(model.device)).argmax(1).cpu().tolist()]


class Recognizability(TypedDict):
    threshold: float  # cosine, fixed on retained people's held-back pairs
    retained_verification: float  # accuracy of those pairs at that threshold (10-fold)
    forgotten_same_match: float | None  # forgotten people's same-person pairs above threshold
    forgotten_pairs: int
    forgotten_nn_identification: float | None  # nearest training picture is their own
    retained_nn_identification: float | None


def still_recognizable(emb: Embedded, gallery: Gallery, forgotten: Sequence[str],
                       seed: int = 0) -> Recognizability:
    """Whether the embeddings still tell the forgotten people apart, whatever the head says."""
    gone = {gallery.names.index(n) for n in forgotten}
    y_test = gallery.test_y.tolist()
    kept = [i for i, y in enumerate(y_test) if y not in gone]
    labels = [y_test[i] for i in kept]
    pairs, same = make_pairs(labels, min(1000, 2 * len(kept)), seed=seed)
    ver = verification_accuracy(emb.test[kept], pairs, same)
    t = ver["threshold"]
    fpairs = [pair for c in sorted(gone) for pair in itertools.combinations(
        [i for i, y in enumerate(y_test) if y == c], 2)]
    match = (sum(float(emb.test[i] @ emb.test[j]) >= t for i, j in fpairs) / len(fpairs)
             if fpairs else None)
    nn_own = (emb.test @ emb.train.T).argmax(1)
    hit = (gallery.train_y[nn_own] == gallery.test_y).tolist()

    def share(rows: list[int]) -> float | None:
        return sum(hit[i] for i in rows) / len(rows) if rows else None
    return Recognizability(
        threshold=t, retained_verification=ver["accuracy"], forgotten_same_match=match,
        forgotten_pairs=len(fpairs),
        forgotten_nn_identification=share([i for i, y in enumerate(y_test) if y in gone]),
        retained_nn_identification=share(kept))


class Relearn(TypedDict):
    shots: int
    acc_f: float | None
    acc_r: float | None


def relearn(model: Recognizer, emb: Embedded, gallery: Gallery, forgotten: Sequence[str],
            shots: Sequence[int] = (1, 2, 4), steps: int = 30, lr: float = 1e-2,
            seed: int = 0) -> list[Relearn]:
    """Can they come back? Train only the head, over every person of the gallery, on ``k``
    pictures of each forgotten person (and as many of retained people) for ``steps`` Adam steps,
    then measure Acc_f / Acc_r. Rows the model has keep their weights; people without a row
    (deleted, or never enrolled by retrain) get a fresh random one. The backbone is frozen, so
    what returns is what its embeddings still hold about them."""
    gen = torch.Generator().manual_seed(seed)
    d = emb.train.shape[1]
    base = torch.randn(len(gallery.names), d, generator=gen) * 0.01
    for c, n in enumerate(gallery.names):
        if n in model.class_names:
            base[c] = model.head.weight.detach().cpu()[model.class_names.index(n)]
    gone = torch.tensor([gallery.names.index(n) for n in forgotten])
    f_mask_tr = torch.isin(gallery.train_y, gone)
    r_pool = torch.nonzero(~f_mask_tr).flatten()
    s, m = model.head.s, model.head.m
    out: list[Relearn] = []
    for k in [0, *shots]:
        w = base.clone()
        if k:
            picked = torch.cat([torch.nonzero(gallery.train_y == c).flatten()[
                torch.randperm(int((gallery.train_y == c).sum()), generator=gen)[:k]]
                for c in gone.tolist()])
            w.requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)
            for _ in range(steps):
                idx = torch.cat([picked, r_pool[torch.randint(len(r_pool), (len(picked),),
                                                               generator=gen)]])
                cos = emb.train[idx] @ F.normalize(w, dim=-1).T
                y = gallery.train_y[idx]
                logits = s * (cos - m * F.one_hot(y, cos.shape[1]))
                loss = F.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = (emb.test @ F.normalize(w, dim=-1).T).argmax(1)
        f_te = torch.isin(gallery.test_y, gone)
        ok = pred == gallery.test_y
        out.append(Relearn(shots=k, acc_f=float(ok[f_te].float().mean()) if f_te.any() else None,
                           acc_r=float(ok[~f_te].float().mean()) if (~f_te).any() else None))
    return out


class MethodRow(TypedDict):
    method: str  # "delete", "gslora" or "retrain"
    seconds: float | None
    acc_r: float | None
    acc_f: float | None
    recognizable: Recognizability
    relearn: list[Relearn]


def assess(method: str, model: Recognizer, gallery: Gallery, forgotten: Sequence[str],
           seconds: float | None, shots: Sequence[int] = (1, 2, 4), seed: int = 0) -> MethodRow:
    """One row of the side-by-side table."""
    emb = embed_gallery(model, gallery)
    gone = set(forgotten)
    pred = predicted_names(model, emb.test)
    truth = [gallery.names[y] for y in gallery.test_y.tolist()]
    return MethodRow(method=method, seconds=seconds,
                     acc_r=accuracy_by_name(pred, truth, set(gallery.names) - gone),
                     acc_f=accuracy_by_name(pred, truth, gone),
                     recognizable=still_recognizable(emb, gallery, forgotten, seed),
                     relearn=relearn(model, emb, gallery, forgotten, shots, seed=seed))


def compare(after: Recognizer, gallery: Gallery, gslora_seconds: float | None = None,
            retrained: Retrained | None = None,
            shots: Sequence[int] = (1, 2, 4),
            on_method: Callable[[str, int], None] | None = None) -> list[MethodRow]:
    """delete, GS-LoRA (``after``, with its task history) and, if given, retrain, on the people
    ``after`` has forgotten, measured alike. ``on_method(name, k)`` hears each method before
    it is measured (k from 0): each takes seconds on a CPU."""
    forgotten = after.forgotten()
    if not forgotten:
        raise ValueError("this recognizer has forgotten no one yet: run a forgetting task first")
    tell = on_method or (lambda name, k: None)
    t0 = time.perf_counter()
    tell("delete", 0)
    deleted = delete_people(untouched_copy(after), forgotten)
    rows = [assess("delete", deleted, gallery, forgotten, time.perf_counter() - t0, shots)]
    tell("GS-LoRA", 1)
    rows.append(assess("gslora", after, gallery, forgotten, gslora_seconds, shots))
    if retrained is not None:
        tell("retrain", 2)
        rows.append(assess("retrain", retrained.model, gallery, forgotten, retrained.seconds,
                           shots))
    return rows


@torch.no_grad()
def embedding_map(before: Recognizer, after: Recognizer, gallery: Gallery,
                  forgotten: Sequence[str]) -> dict:
    """The held-back pictures' embeddings before and after, projected on the two principal axes
    of the *untouched* model's embeddings (so both maps share axes and a move is a real move).
    Returns {"points": [{stage, x, y, identity, forgotten, file}], "explained": [share, share]}."""
    e_b = F.normalize(embed_all(before, gallery.test_x), dim=-1).numpy()
    e_a = F.normalize(embed_all(after, gallery.test_x), dim=-1).numpy()
    pca = PCA(n_components=2, svd_solver="full").fit(e_b)
    gone = set(forgotten)
    files = gallery.test_files or [""] * len(gallery.test_y)
    points = []
    for stage, e in (("before", e_b), ("after", e_a)):
        xy = pca.transform(e)
        for i, y in enumerate(gallery.test_y.tolist()):
            name = gallery.names[y]
            points.append({"stage": stage, "x": float(xy[i, 0]), "y": float(xy[i, 1]),
                           "identity": name, "forgotten": name in gone, "file": files[i]})
    return {"points": points, "explained": [float(v) for v in pca.explained_variance_ratio_]}
