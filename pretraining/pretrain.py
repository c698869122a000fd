"""Backbone pretraining: distil a face-embedding teacher into the Face Transformer.

The input is a *face cache* (see ``facecache``): aligned 112x112 crops of a folder of faces plus
the teacher's embedding of each (and, in newer caches, the same crops with context around them).
The student is the ViT backbone followed by a linear map to the teacher's dimension; the map is
thrown away afterwards and the backbone is saved as a recognizer with no classes, which
``enroll`` then gives a CosFace head for a gallery.

The student sees varied views of each face (``augment``: basic flips, framings and
brightness by default; robust adds resolution, blur, colour, greyscale, JPEG and tight crops)
and matches the teacher's embedding of the clean picture; mixed faces (``p_mix``) are the
exception, matched to the teacher's embedding of the blend itself. A long
run on one CPU core is stopped and restarted: every epoch saves the backbone, the best one on
the validation people so far (``<out>.best.safetensors``) and the whole training state
(``<out>.state.pt``), from which ``resume=True`` continues the same schedule exactly.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from gslora_core.config import DataConfig, ModelConfig
from gslora_core.metrics import embed_all, make_pairs, verification_accuracy
from gslora_core.model import Recognizer, resolve_device, save_recognizer
from gslora_core.training import decay_groups, lr_at

from .augment import (
    brightness_contrast,
    colour_cast,
    greyscale,
    jpeg,
    low_resolution,
    robust_views,
    tight_crop,
    uniform,
)
from .config import PretrainConfig
from .mixbank import MixBank, bank_faces, bank_rows, blend_faces

ProgressFn = Callable[[dict], None]
# The teacher as pretraining calls it: one uint8 (H, W, 3) picture whose aligned face is the
# central ``inner`` share of its side -> its embedding, or None where the teacher fails.
TeacherFn = Callable[[np.ndarray, float], "np.ndarray | None"]


@dataclass
class DistillSet:
    """Aligned crops (N, H, W, 3) uint8, teacher embeddings (N, D) and each row's identity;
    optionally ``wide`` (N, H', W', 3): the same alignment with context on every side."""

    images: torch.Tensor
    targets: torch.Tensor
    identities: list[str]
    wide: torch.Tensor | None = None

    def subset(self, keep: Sequence[bool] | np.ndarray) -> DistillSet:
        idx = torch.from_numpy(np.flatnonzero(np.asarray(keep)))
        return DistillSet(self.images[idx], self.targets[idx],
                          [self.identities[i] for i in idx.tolist()],
                          None if self.wide is None else self.wide[idx])

    def views_source(self) -> tuple[torch.Tensor, float]:
        """(uint8 crops to draw training views from, share of their side that is the standard
        crop): the wide crops where the cache has them, so zooming out shows the real picture."""
        if self.wide is None:
            return self.images, 1.0
        return self.wide, self.images.shape[1] / self.wide.shape[1]


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


def validation_views(images: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fixed degraded copies of the validation crops (uint8 (N, 3, S, S)), made once per run.

    Checkpoints are chosen on the mean verification accuracy over these, so a student that
    gets robust without getting worse on clean photos wins. Cheap stand-ins for
    bench/robustness.py's shifts (those go through MTCNN; these act on the aligned crops)."""
    gen = torch.Generator().manual_seed(seed)
    x = images.float() / 255.0
    every = torch.ones(len(x), dtype=torch.bool)
    small = max(4, round(32 * x.shape[-1] / 112))
    views = {"clean": x, "tight": tight_crop(x, every, gen), "grey": greyscale(x, every),
             "lowres32": low_resolution(x, every, gen, small, small),
             "jpeg20": jpeg(x, every, gen, 20, 20),
             "cast": brightness_contrast(colour_cast(x, every, gen, 0.35), 0.2, gen)}
    return {k: (v * 255).round().clamp(0, 255).to(torch.uint8) for k, v in views.items()}


def verification_scores(model: Recognizer, views: dict[str, torch.Tensor],
             pairs: tuple[np.ndarray, np.ndarray]) -> dict:
    """Verification accuracy on every view; ``score`` is their mean (what chooses checkpoints)."""
    accs = {k: verification_accuracy(embed_all(model, v), *pairs)["accuracy"] for k, v in views.items()}
    return {"views": accs, "score": float(np.mean(list(accs.values())))}


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, relation_weight: float,
                 pairs: int = 0, pair_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """1 - cosine to the teacher, plus the gap between the two batch similarity matrices; with
    ``pairs``, rows 2i and 2i+1 (i < pairs) are one person's, and the squared gap between
    their student and teacher cosines is added with ``pair_weight`` (``same_person_rows``)."""
    s, t = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    point = (1 - (s * t).sum(-1)).mean()
    relation = F.mse_loss(s @ s.T, t @ t.T)
    parts = {"point": float(point.detach()), "relation": float(relation.detach())}
    loss = point + relation_weight * relation
    if pairs > 0:
        a, b = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        pair = ((s[a] * s[b]).sum(-1) - (t[a] * t[b]).sum(-1)).pow(2).mean()
        parts["pair"] = float(pair.detach())
        loss = loss + pair_weight * pair
    return loss, parts


@dataclass
class PersonGroups:
    """The training rows of every person with at least two pictures, flat, with each person's
    start and count in ``rows``: what ``same_person_rows`` draws pairs from."""

    rows: torch.Tensor
    start: torch.Tensor
    count: torch.Tensor

    @classmethod
    def of(cls, identities: Sequence[str]) -> PersonGroups:
        by: dict[str, list[int]] = {}
        for i, name in enumerate(identities):
            by.setdefault(name, []).append(i)
        groups = [rows for rows in by.values() if len(rows) >= 2]
        count = torch.tensor([len(g) for g in groups], dtype=torch.long)
        start = torch.cumsum(count, 0) - count
        rows = torch.tensor([i for g in groups for i in g], dtype=torch.long)
        return cls(rows, start, count)


def same_person_rows(groups: PersonGroups, pairs: int, gen: torch.Generator) -> torch.Tensor:
    """2 * ``pairs`` row indices: rows 2i and 2i+1 are two different pictures of one person,
    the people drawn uniformly (so the 1,341 people with several pictures, not Bush's 530,
    make the pairs)."""
    who = torch.randint(0, len(groups.count), (pairs,), generator=gen)
    size = groups.count[who]
    first = (torch.rand(pairs, generator=gen) * size).long().clamp(max=size - 1)
    other = (first + 1 + (torch.rand(pairs, generator=gen) * (size - 1)).long()
             .clamp(max=size - 2)) % size
    out = torch.stack([first, other], 1) + groups.start[who, None]
    return groups.rows[out.flatten()]


def mixed_faces(source: torch.Tensor, targets: torch.Tensor, inner: float,
                center: torch.Tensor, teacher: TeacherFn, cfg: PretrainConfig,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A batch with a ``cfg.p_mix`` share of its faces replaced by blends of two of its faces,
    each blend's target being the teacher's embedding *of the blend* (centred as all targets).

    Why: the student underfits new people because 10.6k pictures are few (bench/fit_gap.py); a
    blend of two aligned faces is a new, face-like picture, and only the teacher can say what
    its embedding is (the mean of the two targets is not: the teacher is not linear). This is
    distillation's "function matching" on mixup. ``source`` is uint8 (N, 3, S, S) as views are
    drawn from; returns (source, targets, blends made). A blend the teacher fails on keeps the
    original face."""
    n = source.shape[0]
    k = round(cfg.p_mix * n)
    if k == 0 or n < 2:
        return source, targets, 0
    rows = torch.randperm(n, generator=gen)[:k]
    partner = (rows + torch.randint(1, n, (k,), generator=gen)) % n  # never the face itself
    lam = uniform(k, cfg.mix_min, cfg.mix_max, gen)
    blend = blend_faces(source[rows], source[partner], lam)
    source, targets = source.clone(), targets.clone()
    made = 0
    for j, r in enumerate(rows.tolist()):
        vec = teacher(np.ascontiguousarray(blend[j].permute(1, 2, 0).numpy()), inner)
        if vec is None:
            continue
        source[r] = blend[j]
        targets[r] = torch.as_tensor(vec, dtype=targets.dtype) - center
        made += 1
    return source, targets, made


def validation_pairs(held: DistillSet, n_pairs: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(set(held.identities))
    labels = [names.index(i) for i in held.identities]
    return make_pairs(labels, n_pairs, seed)


def validation_set(held: DistillSet, img_size: int, seed: int = 0,
                   photo_views: dict[str, torch.Tensor] | None = None
                   ) -> tuple[dict[str, torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    """(views, pairs) that score a backbone on the validation people, as ``evaluate`` takes them:
    the same for every epoch of a run and for ``average``, so their scores compare.

    ``photo_views`` (uint8 (N, S, S, 3) per shift, ``facecache.shifted_views``, rows as
    ``held``'s) are the robustness benchmark's own shifts; without them, the aligned-crop
    stand-ins of ``validation_views`` (what runs before 2026-11-25 chose on)."""
    if photo_views is None:
        views = validation_views(resized(held.images, img_size).permute(0, 3, 1, 2), seed)
    else:
        if any(len(v) != len(held.images) for v in photo_views.values()):
            raise ValueError("the photo views are not the validation people's pictures")
        views = {k: resized(v, img_size).permute(0, 3, 1, 2) for k, v in photo_views.items()}
    return views, validation_pairs(held)


def views_kind(photo_views: dict | None) -> str:
    """How a run's checkpoints are chosen: 'photo' (benchmark shifts) or 'aligned' (stand-ins)."""
    return "aligned" if photo_views is None else "photo"


def set_drop_path(backbone: nn.Module, rate: float) -> None:
    """Stochastic depth on every block's two residual branches, rising linearly with depth to
    ``rate`` in the top block; 0 puts plain identities back.

    Why: the student fits the people it was distilled on better than new people once trained
    longer (bench/fit_gap.py); randomly skipping branches is the usual regulariser of small
    ViTs on small data (DeiT). It is a training-time module with no weights, so saved
    backbones, forgetting and inference never see it."""
    blocks = list(backbone.blocks)
    for i, block in enumerate(blocks):
        p = rate * i / max(1, len(blocks) - 1)
        block.drop_path1 = DropPath(p) if p > 0 else nn.Identity()
        block.drop_path2 = DropPath(p) if p > 0 else nn.Identity()


def state_path(out: str | Path) -> Path:
    """Where a run's whole training state lives next to its backbone."""
    return Path(out).with_suffix(".state.pt")


def best_path(out: str | Path) -> Path:
    """The checkpoint with the best validation score so far."""
    return Path(out).with_suffix(".best.safetensors")


@dataclass
class _Distill:
    """One distillation run: what it learns from, what it trains, and where it stands."""

    model: Recognizer
    proj: nn.Linear  # student embedding -> teacher space
    opt: torch.optim.Optimizer
    gen: torch.Generator  # every draw of the run (resumed with it)
    source: torch.Tensor  # (N, 3, S, S) faces the views are drawn from
    inner: float  # share of ``source``'s side the aligned face covers
    center: torch.Tensor  # the teacher embeddings' mean direction
    targets: torch.Tensor  # centred teacher embeddings
    bank_source: torch.Tensor | None  # a mix bank's blends (``mixbank``) and their targets
    bank_targets: torch.Tensor | None
    groups: PersonGroups | None  # people with two or more pictures (same-person pairs)
    n_pairs: int  # same-person pairs a batch
    views: dict[str, torch.Tensor] | None  # validation people's views and pairs
    pairs: tuple[np.ndarray, np.ndarray] | None
    meta: dict  # validation views, identities and bank size (saved with every checkpoint)
    images: int  # training pictures
    per_epoch: int
    total: int  # steps of the whole schedule
    warmup: int
    device: torch.device
    epoch: int = 0
    step: int = 0
    best: float = -1.0  # best validation score so far
    history: list[dict] = field(default_factory=list)


def _check_inputs(data: DistillSet, cfg: PretrainConfig, teacher: TeacherFn | None,
                  bank: MixBank | None) -> None:
    if len(data.images) == 0:
        raise ValueError("no training pictures")
    if cfg.p_mix > 0 and teacher is None:
        raise ValueError("p_mix needs the teacher (pretraining/requirements.txt) to embed the blends")
    if cfg.p_bank > 0 and bank is None:
        raise ValueError("p_bank needs a mix bank (--mix-bank, scripts/build_mix_bank.py)")


def _bank_parts(bank: MixBank | None, cfg: PretrainConfig, source: torch.Tensor, inner: float,
                center: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The mix bank's blends as views sources, and their targets centred like the real faces'
    (None without a bank); a bank of other crops than this cache's is refused."""
    if bank is None or cfg.p_bank <= 0:
        return None, None
    if tuple(bank.images.shape[1:]) != tuple(source.shape[2:]) + (3,) or abs(bank.inner - inner) > 1e-6:
        raise ValueError(f"the mix bank's faces ({tuple(bank.images.shape[1:3])}, inner "
                         f"{bank.inner:.3f}) are not this cache's views source "
                         f"({tuple(source.shape[2:])}, inner {inner:.3f})")
    return bank.images.permute(0, 3, 1, 2), bank.targets - center


def _student(model_cfg: ModelConfig, cfg: PretrainConfig, targets_dim: int,
             init: Recognizer | None, device: torch.device
             ) -> tuple[Recognizer, nn.Linear, torch.optim.Optimizer]:
    """The backbone (fresh, or ``init``'s weights), its projection to the teacher's space and
    AdamW over both (weight decay on matrices only)."""
    model = Recognizer(model_cfg, [], DataConfig(preprocess="mtcnn"))
    if init is not None:
        if init.cfg != model_cfg:
            raise ValueError("--init must be a backbone of the same model size")
        model.backbone.load_state_dict(init.backbone.state_dict())
    set_drop_path(model.backbone, cfg.drop_path)
    model.to(device)
    proj = nn.Linear(model_cfg.embed_dim, targets_dim, bias=False).to(device)
    params = list(model.backbone.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(decay_groups(params, cfg.weight_decay), lr=cfg.lr)
    return model, proj, opt


def _setup(data: DistillSet, held: DistillSet | None, model_cfg: ModelConfig,
           cfg: PretrainConfig, init: Recognizer | None,
           photo_views: dict[str, torch.Tensor] | None, bank: MixBank | None) -> _Distill:
    """Everything a run needs before its first step, made in a fixed order (the random
    streams, and so a resumed run, depend on it)."""
    device = resolve_device(cfg.device)
    source, inner = data.views_source()
    source = source.permute(0, 3, 1, 2)  # views are drawn from (N, 3, S, S)
    # Teacher embeddings share one big mean direction (mean cosine between any two faces ~0.83):
    # matching it teaches nothing. Centred targets keep only what tells faces apart.
    center = data.targets.mean(0)
    bank_source, bank_targets = _bank_parts(bank, cfg, source, inner, center)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model, proj, opt = _student(model_cfg, cfg, data.targets.shape[1], init, device)
    meta = {"validation_views": views_kind(photo_views),
            "validation_identities": len(set(held.identities)) if held is not None else 0,
            "mix_bank": len(bank_source) if bank_source is not None else 0}
    views = pairs = None
    if held is not None and len(held.images) and len(set(held.identities)) >= 2:
        views, pairs = validation_set(held, model_cfg.img_size, cfg.seed, photo_views)
    per_epoch = max(1, len(data.images) // cfg.batch_size)  # no ragged last batch: its relation loss is noisy
    n_pairs = min(round(cfg.p_pairs * cfg.batch_size / 2), cfg.batch_size // 2)
    groups = PersonGroups.of(data.identities) if n_pairs else None
    if groups is not None and len(groups.count) == 0:
        raise ValueError("p_pairs needs people with at least two training pictures")
    return _Distill(model=model, proj=proj, opt=opt, gen=gen, source=source, inner=inner,
                    center=center, targets=data.targets - center, bank_source=bank_source,
                    bank_targets=bank_targets, groups=groups, n_pairs=n_pairs, views=views,
                    pairs=pairs, meta=meta, images=len(data.images), per_epoch=per_epoch,
                    total=cfg.epochs * per_epoch, warmup=cfg.warmup_epochs * per_epoch,
                    device=device)


def _resume(run: _Distill, out: str | Path, model_cfg: ModelConfig) -> float:
    """Continue from ``out``'s saved state (same run only); the seconds it had spent."""
    st = torch.load(state_path(out), map_location="cpu", weights_only=True)
    if st["model_cfg"] != model_cfg.to_dict() or st["images"] != run.images:
        raise ValueError(f"{state_path(out)} is another run's state (model or data differ)")
    kind = run.meta["validation_views"]
    if st.get("validation_views", "aligned") != kind:
        raise ValueError(f"{state_path(out)} chose its checkpoints on "
                         f"{st.get('validation_views', 'aligned')} validation views: resume "
                         "it with the same (--validation-views)")
    if st.get("mix_bank", run.meta["mix_bank"]) != run.meta["mix_bank"]:
        raise ValueError(f"{state_path(out)} drew from a mix bank of {st['mix_bank']} blends, "
                         f"this run from {run.meta['mix_bank']}: resume it with the same bank")
    run.model.backbone.load_state_dict(st["backbone"])
    run.proj.load_state_dict(st["proj"])
    run.opt.load_state_dict(st["opt"])
    run.gen.set_state(st["gen"])
    run.epoch, run.step, run.best, run.history = st["epoch"], st["step"], st["best"], st["history"]
    return run.history[-1]["seconds"] if run.history else 0.0


def _batch(run: _Distill, idx: torch.Tensor, cfg: PretrainConfig, model_cfg: ModelConfig,
           teacher: TeacherFn | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One batch's student views and centred targets (same-person pairs first, mixed and bank
    faces where the recipe asks), and how many faces the teacher blended."""
    gen, made = run.gen, 0
    if run.groups is not None:  # the first 2 * n_pairs rows: same-person pairs
        idx = torch.cat([same_person_rows(run.groups, run.n_pairs, gen), idx[2 * run.n_pairs:]])
    src, tgt = run.source[idx], run.targets[idx]
    if cfg.p_mix > 0 and teacher is not None:
        src, tgt, made = mixed_faces(src, tgt, run.inner, run.center, teacher, cfg, gen)
    if run.bank_source is not None and run.bank_targets is not None:
        src, tgt = bank_faces(src, tgt, run.bank_source, run.bank_targets, cfg.p_bank, gen,
                              keep=2 * run.n_pairs)
    x = robust_views(src, model_cfg.img_size, run.inner, cfg, gen).to(run.device)
    return x, tgt.to(run.device), made


def _epoch(run: _Distill, cfg: PretrainConfig, model_cfg: ModelConfig,
           teacher: TeacherFn | None, t0: float) -> dict:
    """One epoch of distillation steps; its history row (mean loss parts, seconds, counts)."""
    run.model.train()
    order = torch.randperm(run.images, generator=run.gen)
    sums = {"loss": 0.0, "point": 0.0, "relation": 0.0}  # and every other part of the loss
    mixed = 0
    for b in range(run.per_epoch):
        x, tgt, made = _batch(run, order[b * cfg.batch_size:(b + 1) * cfg.batch_size], cfg,
                              model_cfg, teacher)
        mixed += made
        for g in run.opt.param_groups:
            g["lr"] = lr_at(run.step, run.total, run.warmup, cfg.lr)
        loss, parts = distill_loss(run.proj(run.model.embed(x)), tgt, cfg.relation_weight,
                                   run.n_pairs, cfg.pair_weight)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.step += 1
        sums["loss"] += float(loss.detach())
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
    run.epoch += 1
    row = {"epoch": run.epoch, "seconds": round(time.perf_counter() - t0, 1),
           "lr_end": lr_at(run.step - 1, run.total, run.warmup, cfg.lr),
           **{k: v / run.per_epoch for k, v in sums.items()}}
    if cfg.p_mix > 0:
        row["mixed_faces"] = mixed
    if run.bank_source is not None:
        row["bank_faces"] = bank_rows(cfg.batch_size, cfg.p_bank, 2 * run.n_pairs) * run.per_epoch
    if run.views is not None and run.pairs is not None:
        ev = verification_scores(run.model, run.views, run.pairs)
        row["verification"] = {"accuracy": ev["views"]["clean"]}
        row["validation"] = ev
    return row


def _save(run: _Distill, out: str | Path, cfg: PretrainConfig, model_cfg: ModelConfig) -> None:
    """After an epoch: the backbone, the best one so far, the epoch's copy if asked, and the
    state a resumed run continues from."""
    n, meta, history = run.images, run.meta, run.history
    save_backbone(run.model, out, history, cfg, model_cfg, images=n, **meta)
    score = history[-1].get("validation", {}).get("score", -1.0)
    if score > run.best:
        run.best = score
        save_backbone(run.model, best_path(out), history, cfg, model_cfg, images=n, **meta)
    if cfg.keep_every_epoch:
        shutil.copyfile(out, Path(out).with_suffix(f".epoch{run.epoch:03d}.safetensors"))
    save_state(out, {"epoch": run.epoch, "step": run.step, "best": run.best, "history": history,
                     "backbone": run.model.backbone.state_dict(), "proj": run.proj.state_dict(),
                     "opt": run.opt.state_dict(), "gen": run.gen.get_state(),
                     "model_cfg": model_cfg.to_dict(), "cfg": cfg.to_dict(), "images": n,
                     "validation_views": meta["validation_views"], "mix_bank": meta["mix_bank"]})


def pretrain(data: DistillSet, held: DistillSet | None, model_cfg: ModelConfig,
             cfg: PretrainConfig = PretrainConfig(), out: str | Path | None = None,
             on_progress: ProgressFn | None = None,
             init: Recognizer | None = None, resume: bool = False,
             photo_views: dict[str, torch.Tensor] | None = None,
             teacher: TeacherFn | None = None,
             bank: MixBank | None = None) -> tuple[Recognizer, dict]:
    """Train a backbone on ``data``; score ``held`` (validation people) after every epoch, on
    ``photo_views`` of them where given (``validation_set``). ``teacher`` embeds the mixed
    faces of ``cfg.p_mix`` (``mixed_faces``); ``bank`` holds blends the teacher embedded
    beforehand, a ``cfg.p_bank`` share of each batch (``mixbank``).

    With ``out`` the backbone is saved after every epoch (so a long run can be stopped at any
    time) with ``<out>.json`` (the history), ``<out>.best.safetensors`` (best validation score)
    and ``<out>.state.pt``. ``resume`` continues from that state: same schedule, optimiser,
    random stream and history, as if never stopped (``cfg.epochs`` may be raised). ``init``
    instead starts a fresh schedule from an earlier backbone of the same size."""
    _check_inputs(data, cfg, teacher, bank)
    run = _setup(data, held, model_cfg, cfg, init, photo_views, bank)
    spent = (_resume(run, out, model_cfg)
             if resume and out is not None and state_path(out).exists() else 0.0)
    t0 = time.perf_counter() - spent
    while run.epoch < cfg.epochs:
        run.history.append(_epoch(run, cfg, model_cfg, teacher, t0))
        if out is not None:
            _save(run, out, cfg, model_cfg)
        if on_progress:
            on_progress(run.history[-1])
    set_drop_path(run.model.backbone, 0.0)
    run.model.eval().requires_grad_(False)
    return run.model, {"history": run.history, "seconds": time.perf_counter() - t0,
                       "images": run.images, "best_score": run.best if run.best >= 0 else None,
                       "validation_views": run.meta["validation_views"]}


def require_backbones(models: Sequence[Recognizer], what: str) -> None:
    """Only pretrained backbones may be grown or averaged: a head or a task's adapters would be
    carried into (or averaged across) models they do not belong to."""
    if any(m.class_names or m.tasks for m in models):
        raise ValueError(f"{what} only (no classes, no forgetting tasks)")


def deepened(init: Recognizer, depth: int) -> Recognizer:
    """``init``'s backbone with blocks appended up to ``depth`` that start as the identity.

    Why: a deeper student may distil better (issue 15), and training one from scratch costs
    hours of CPU; a new pre-norm block whose output projections (attention ``proj``, MLP
    ``fc2``) are zero adds nothing to the residual stream, so the grown model starts exactly
    where ``init`` ended and only learns what the extra depth buys. Each block stays one LoRA
    group, so GS-LoRA gets one more group per new block."""
    require_backbones([init], "grow a backbone")
    if depth < init.cfg.depth:
        raise ValueError(f"depth {depth} is below the backbone's {init.cfg.depth}")
    model = Recognizer(replace(init.cfg, depth=depth), [], init.data_config)
    result = model.backbone.load_state_dict(init.backbone.state_dict(), strict=False)
    assert not result.unexpected_keys  # every old weight has its place; only new blocks miss
    with torch.no_grad():
        for block in list(model.backbone.blocks)[init.cfg.depth:]:
            for layer in (block.attn.proj, block.mlp.fc2):
                layer.weight.zero_()
                layer.bias.zero_()
    return model


def average_backbones(models: Sequence[Recognizer]) -> Recognizer:
    """One backbone whose every weight is the mean of ``models``' (weight averaging, SWA-style).

    Why: at a high learning rate the epoch-to-epoch checkpoints wander around a flat valley and
    their mean sits nearer its middle (+0.4 points over the best of epochs 4-9 of the robust run
    on the validation views); late in a cosine schedule it gains nothing. Exact here: the
    model has no BatchNorm statistics to recompute. The models must be classless backbones of
    one size (epochs of one run, or runs from one ``--init``)."""
    if not models:
        raise ValueError("nothing to average")
    first = models[0]
    for m in models[1:]:
        if m.cfg != first.cfg:
            raise ValueError("backbones of different sizes cannot be averaged")
    require_backbones(models, "average backbones")
    states = [m.backbone.state_dict() for m in models]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype)
            for k in states[0]}
    out = Recognizer(first.cfg, [], first.data_config)
    out.backbone.load_state_dict(mean)
    return out.eval().requires_grad_(False)


def save_state(out: str | Path, state: dict) -> None:
    """Atomic: a run killed while writing keeps the previous epoch's state."""
    path = state_path(out)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def save_backbone(model: Recognizer, out: str | Path, history: list[dict],
                  cfg: PretrainConfig, model_cfg: ModelConfig, images: int,
                  validation_views: str = "aligned", validation_identities: int = 0,
                  mix_bank: int = 0) -> None:
    """The backbone and ``<out>.json``: recipe, size, data and history (the model card's source);
    ``mix_bank``: the blends the run drew from (0: none)."""
    out = Path(out)
    tmp = out.with_suffix(".tmp.safetensors")
    save_recognizer(model, tmp)
    tmp.replace(out)
    out.with_suffix(".json").write_text(json.dumps(
        {"pretrain": cfg.to_dict(), "model": model_cfg.to_dict(), "images": images,
         "validation_identities": validation_identities, "validation_views": validation_views,
         **({"mix_bank": mix_bank} if mix_bank else {}), "history": history}, indent=1))
