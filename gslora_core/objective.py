"""One step's objective: the batches it draws and the loss it takes.

``L = L_r (+ keep) + beta * (L_f + L_unknown) (+ replayed earlier people's own terms)
(+ w * L_pro)``, each term a pure function of ``losses``. Owned here: the order in which a step
draws from the task's generator (retain, the forget pictures still open, the rest, earlier
people) and the order in which the terms are built and summed; both decide every result bit for
bit, so they change only on purpose.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .config import PAPER_HEAD_MARGIN, PAPER_HEAD_SCALE
from .losses import (
    bounded_forget_loss,
    group_lasso,
    keep_loss,
    prototype_loss,
    retain_loss,
    unknown_loss,
)
from .task import Inputs, Task

Anchor = tuple[torch.Tensor, "torch.Tensor | None"]


def forget_gap(bnd: float) -> float:
    """BND as the cosine gap it asks of a forget picture: its best other class ahead of its own
    class by this much. BND is in the logits of the paper's face head (s 64, m 0.35), where 45
    asks 45 / 64 - 0.35 = 0.35. A task's BNDs are ``Task.bnds``."""
    return bnd / PAPER_HEAD_SCALE - PAPER_HEAD_MARGIN


def forget_bound(bnd: float, s: float, m: float) -> float:
    """BND in the margin logits of a head of scale ``s`` and margin ``m``, asking the same
    cosine gap (``forget_gap``): a picture's forget margin is about s (best other - own + m).
    The face head keeps BND as it is. The object classifier's head (s 16, m 0.1) gets 7.25: 45 unscaled
    was out of reach (its logits span 32, the forget term never rested), and scaled by s / 64
    alone it asked a gap of 0.60 instead of 0.35, which "cat" against "dog" reached only with
    5 blocks after 245 steps (bench/results/tuning/objects_rule)."""
    return s * (forget_gap(bnd) + m)


def _draw(pool: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices drawn with replacement from ``pool`` (none from an empty pool)."""
    if n == 0 or len(pool) == 0:
        return pool[:0]
    return pool[torch.randint(len(pool), (n,), generator=gen)]


class Batch(NamedTuple):
    """One step's gallery pictures, by role."""

    retain: torch.Tensor
    forget: torch.Tensor
    earlier: torch.Tensor


def draw_batch(task: Task, focus: torch.Tensor) -> Batch:
    """A retain batch, a forget batch (half of it from ``focus``, the forget pictures not yet
    past the stopping rule, so the last few are not left to chance; the rest keeps the done
    ones done) and ``replay_forgotten`` pictures of people forgotten earlier."""
    cfg, pools, gen = task.cfg, task.pools, task.gen
    retain = _draw(pools.retain, cfg.batch_size, gen)
    half = cfg.batch_size // 2 if len(focus) else 0
    forget = torch.cat([_draw(focus, half, gen), _draw(pools.forget, cfg.batch_size - half, gen)])
    return Batch(retain, forget, _draw(pools.earlier, cfg.replay_forgotten, gen))


def _retain_terms(task: Task, inputs: Inputs, idx: torch.Tensor, y: torch.Tensor,
                  anchor: Anchor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """L_r, with the keep term (each retained picture held where it was) folded in."""
    model, cfg = task.model, task.cfg
    emb = inputs.embed(idx)
    l_r = retain_loss(model.head.margin_logits(model.head.cosine(emb), y), y)
    l_keep = torch.zeros((), device=model.device)
    if cfg.keep > 0 and anchor is not None:
        l_keep = keep_loss(emb, anchor[0][idx].to(model.device))
        if cfg.keep_views > 1:  # the mirrored view too: the answer averages both
            l_keep = (l_keep + keep_loss(inputs.embed(idx, flip=True),
                                         anchor[1][idx].to(model.device))) / 2
        l_r = l_r + cfg.keep * l_keep
    return l_r, l_keep


def _add_earlier(task: Task, inputs: Inputs, idx: torch.Tensor, y: torch.Tensor,
                 answer: bool, bound: float, loss: torch.Tensor) -> torch.Tensor:
    """``loss`` plus the replayed earlier people's own bounded term (``bound``, in the head's
    logits: so this task's pictures keep their full weight in L_f), and their push below the
    threshold."""
    model, cfg = task.model, task.cfg
    cos = model.head.cosine(inputs.answer(idx) if answer else inputs.embed(idx))
    loss = loss + cfg.beta * bounded_forget_loss(model.head.margin_logits(cos, y), y, bound)
    if task.unknown:
        loss = loss + cfg.beta * unknown_loss(cos, task.tau - cfg.margin, model.head.s)
    return loss


def step_loss(task: Task, inputs: Inputs, batch: Batch, anchor: Anchor | None,
              answer: bool, bnd: float) -> tuple[torch.Tensor, dict[str, float]]:
    """One step's loss and its parts (for the curve). ``answer``: the forget terms act on the
    answer's embedding (both views) rather than the training view; ``bnd``: the BND asked now
    (``Schedule.bnd``)."""
    model, cfg, y_all = task.model, task.cfg, task.gallery.train_y
    yr, yf, yo = (y_all[i].to(model.device) for i in batch)
    model.train()
    l_r, l_keep = _retain_terms(task, inputs, batch.retain, yr, anchor)
    emb_f = inputs.answer(batch.forget) if answer else inputs.embed(batch.forget)
    cos_f = model.head.cosine(emb_f)
    bound = forget_bound(bnd, model.head.s, model.head.m)
    l_f = bounded_forget_loss(model.head.margin_logits(cos_f, yf), yf, bound)
    l_u = torch.zeros((), device=model.device)
    loss = l_r + cfg.beta * l_f
    if len(batch.earlier):
        loss = _add_earlier(task, inputs, batch.earlier, yo, answer, bound, loss)
    if task.unknown:
        l_u = unknown_loss(cos_f, task.tau - cfg.margin, model.head.s)
        loss = loss + cfg.beta * l_u
    # The lasso acts by its proximal step after the optimizer's (``lasso``): here its value only.
    l_struct = group_lasso(list(task.lasso)) if task.lasso else torch.zeros((), device=model.device)
    l_pro = torch.zeros((), device=model.device)
    if cfg.prototype_weight > 0:
        l_pro = prototype_loss(emb_f, task.prototypes[yf], cfg.bnd_pro)
        loss = loss + cfg.prototype_weight * l_pro
    parts = {"loss": loss, "retain": l_r, "forget": l_f, "unknown": l_u, "sparsity": l_struct,
             "prototype": l_pro, "keep": l_keep}
    return loss, {k: float(v.detach()) for k, v in parts.items()}


@torch.no_grad()
def keep_anchor(task: Task, inputs: Inputs) -> Anchor:
    """The retained training pictures' unit embeddings as the task starts, indexed by gallery
    picture: what ``keep_loss`` holds them to (the training view, and the mirrored one when
    ``keep_views`` is 2)."""
    model, pool = task.model, task.pools.retain
    model.eval()
    views = []
    for flip in (False, True)[:task.cfg.keep_views]:
        out = torch.zeros(len(task.gallery.train_y), model.cfg.embedding_dim)
        for i in range(0, len(pool), 256):
            idx = pool[i:i + 256]
            out[idx] = F.normalize(inputs.embed(idx, flip), dim=-1).float().cpu()
        views.append(out)
    return views[0], (views[1] if len(views) > 1 else None)
