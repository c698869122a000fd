"""One GS-LoRA forgetting task: add a fresh adapter set, train it until the task is done, measure.

Per step: a retain batch and a forget batch (and a few pictures of people forgotten earlier),
``L = L_r + beta * (L_f + L_unknown) (+ w * L_pro)``, an AdamW step on the task's LoRA.

The default schedule ("release") spends blocks only as the task needs them. It trains the top
block's adapter alone; if the blocks in use have not finished the task after ``stage_steps``,
the next block down is released (its adapter starts from B = 0, so nothing jumps). It stops
as soon as the stopping rule holds on the task's own training pictures, never on test pictures:
every forget picture (and every replayed picture of an earlier task) is neither answered as
its own person nor clears the open-set threshold minus ``margin`` for anyone, as the recognizer
sees it (evaluation embeddings, both views). A cap on steps or seconds ends a task that cannot
get there, and the report says so in words. Every block below the first released one stays
exactly zero, so the task runs from states cached at that block (``states``): a one-block task
trains on one row per picture and measures the gallery from the states its "before" kept.

The "fixed" schedule is the earlier one (``lasso``): a group lasso over every block picks the
blocks, then a refit of a fixed count of steps.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from . import lora
from .config import PAPER_HEAD_MARGIN, PAPER_HEAD_SCALE, ForgetConfig, TaskRecord
from .data import Gallery
from .evaluation import (
    Cancelled,
    ForgetReport,
    Roles,
    Snapshot,
    TaskOutcome,
    build_report,
    snapshot,
    snapshot_from,
)
from .lasso import adam_group_scale, depth_weights, lasso_thresholds
from .losses import (
    bounded_forget_loss,
    group_lasso,
    keep_loss,
    prototype_loss,
    proximal_group_step,
    retain_loss,
    unknown_loss,
)
from .metrics import class_prototypes, embed_all, subset_accuracy
from .model import Recognizer, count_parameters, resolve_device
from .openset import own_and_other
from .progress import CancelFn, ForgetStep, ProgressFn
from .states import StateCache, embed_states
from .training import check_labels, fix_threshold

__all__ = ["adam_group_scale", "depth_weights", "lasso_thresholds", "forget", "TaskResult",
           "finetune_forget", "plan_task", "pushes_unknown", "rollback",
           "select_train_indices", "shot_prototypes"]

# Every this many checks all the task's pictures are judged again (between them only those not
# yet past the rule): progress, the release of a block and the stop go by these full checks.
FULL_CHECK_EVERY = 4


def select_train_indices(gallery: Gallery, classes: Sequence[int], cfg: ForgetConfig,
                         gen: torch.Generator) -> torch.Tensor:
    """Per class: K shots, or a fraction (at least one image) of its training images."""
    picked = []
    for c in classes:
        idx = torch.nonzero(gallery.train_y == c).flatten()
        if len(idx) == 0:
            continue
        k = cfg.shots if cfg.shots else max(1, int(round(cfg.data_fraction * len(idx))))
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    return torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)


def plan_task(model: Recognizer, gallery: Gallery, forget: Sequence[str],
              earlier: Sequence[str] | None = None) -> Roles:
    """Forget F, earlier-forgotten O and retain R class indices, with readable errors.

    ``earlier`` names the people forgotten before this task; by default the model's own task
    history. Methods that keep no history (full fine-tuning) must pass it, or the people they
    forgot before would be trained as retained people again."""
    if not forget:
        raise ValueError("choose at least one identity to forget")
    f_idx = [model.class_index(n) for n in dict.fromkeys(forget)]
    gone = list(model.forgotten() if earlier is None else dict.fromkeys(earlier))
    again = [n for n in forget if n in set(gone)]
    if again:
        raise ValueError(f"already forgotten in an earlier task: {', '.join(again)}")
    o_idx = [model.class_index(n) for n in gone]
    r_idx = [c for c in range(len(model.class_names)) if c not in set(f_idx) | set(o_idx)]
    if not r_idx:
        raise ValueError("at least one identity must be retained")
    has_train = set(gallery.train_y.tolist())
    if not any(c in has_train for c in f_idx):
        raise ValueError("the gallery has no training images of the identities to forget")
    return Roles(forget=f_idx, earlier=o_idx, retain=r_idx)


@dataclass
class _Run:
    """One task's plan and the state its training loop needs (GS-LoRA or the full baseline)."""

    model: Recognizer
    gallery: Gallery
    cfg: ForgetConfig
    roles: Roles
    before: Snapshot
    retain_pool: torch.Tensor
    forget_pool: torch.Tensor
    earlier_pool: torch.Tensor  # pictures of identities forgotten in earlier tasks
    prototypes: torch.Tensor  # GS-LoRA++: per class, the mean embedding of its K-shot pictures
    gen: torch.Generator
    tau: float  # the recognizer's open-set threshold
    params: list[torch.Tensor] = field(default_factory=list)  # what trains
    groups: list[list[torch.Tensor]] = field(default_factory=list)  # LoRA groups (none: full)
    lasso: list[list[torch.Tensor]] = field(default_factory=list)  # their B matrices
    task: str = ""
    cache: StateCache | None = None  # training pictures' states at the first active block
    test_cache: StateCache | None = None  # test pictures' (live evaluation only)
    # retained pictures' unit embeddings at the task's start (training view, mirrored view)
    anchor: tuple[torch.Tensor, torch.Tensor | None] | None = None
    # forget pictures not yet past the stopping rule at the last check: the forget batch is
    # drawn from these (the rest are done), so the last few are not left to chance
    focus: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    judged: tuple | None = None  # (pictures, past the rule, still recognized) at the last check
    unknown: bool = False  # pushes_unknown(): forget pictures pushed to "not recognized" too
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Stop:
    """Why a task's training ended, and how far its people were from forgotten then."""

    reason: str  # "done", "step cap", "time cap" or "fixed schedule"
    steps: int
    seconds: float
    people: int  # this task's people
    people_left: int  # of them, with a training picture not yet past the stopping rule
    recognized_left: int  # of them, with a training picture still answered as themselves
    pictures_left: int  # pictures (this task's and replayed earlier ones) not yet past it
    earlier_left: int  # earlier-forgotten people with a replayed picture not past it
    blocks: int  # blocks the task trained (from the top)

    @property
    def text(self) -> str:
        """The outcome in a sentence, for the report and the page."""
        if self.reason == "done":
            return (f"all {self.people} forgotten on their training pictures after "
                    f"{self.steps} steps ({self.seconds:.1f} s), {self.blocks} block"
                    f"{'s' if self.blocks != 1 else ''} used")
        if self.reason == "fixed schedule":
            return (f"fixed schedule of {self.steps} steps: {self.people_left} of "
                    f"{self.people} not yet past the stopping rule on their training pictures")
        cap = f"{self.steps} steps" if self.reason == "step cap" else f"{self.seconds:.0f} s"
        return (f"stopped at the cap ({cap}): {self.recognized_left} of {self.people} still "
                f"recognized on their own training pictures, {self.people_left} not yet past "
                f"the margin" + (f"; {self.earlier_left} earlier-forgotten back within reach"
                                 if self.earlier_left else ""))

    def to_dict(self) -> dict:
        return {"reason": self.reason, "steps": self.steps, "seconds": self.seconds,
                "people": self.people, "people_left": self.people_left,
                "recognized_left": self.recognized_left, "pictures_left": self.pictures_left,
                "earlier_left": self.earlier_left, "blocks": self.blocks, "text": self.text}


def _draw(pool: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices drawn with replacement from ``pool`` (none from an empty pool)."""
    if n == 0 or len(pool) == 0:
        return pool[:0]
    return pool[torch.randint(len(pool), (n,), generator=gen)]


def _embed_batch(run: _Run, idx: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Training embeddings of gallery pictures ``idx`` (mirrored if ``flip``): from the cached
    states at the first active block, or through the whole backbone (full fine-tuning,
    ``cache_hidden`` off)."""
    if run.cache is not None:
        return run.model.embed_from_mid(run.cache(idx, flip), run.cache.block)
    x = run.gallery.train_x[idx].to(run.model.device)
    return run.model.embed(x.flip(-1) if flip else x)


def _answer_embedding(run: _Run, idx: torch.Tensor) -> torch.Tensor:
    """The embedding the recognizer answers with (both views' unit embeddings averaged, as
    ``Recognizer.embed_flip``), with gradients: the forget terms act on what the stopping rule
    and every answer read, not on one view of it."""
    a, b = (F.normalize(_embed_batch(run, idx, flip), dim=-1) for flip in (False, True))
    return (a + b) / 2


def forget_gap(cfg: ForgetConfig) -> float:
    """BND as the cosine gap it asks of a forget picture: its best other class ahead of its own
    class by this much. The knob is in the logits of the paper's face head (s 64, m 0.35),
    where 45 asks 45 / 64 - 0.35 = 0.35."""
    return cfg.bnd / PAPER_HEAD_SCALE - PAPER_HEAD_MARGIN


def forget_bound(cfg: ForgetConfig, s: float, m: float) -> float:
    """BND in the margin logits of a head of scale ``s`` and margin ``m``, asking the same
    cosine gap (``forget_gap``): a picture's forget margin is about s (best other - own + m).
    The face head keeps 45. The object classifier's head (s 16, m 0.1) gets 7.25: 45 unscaled
    was out of reach (its logits span 32, the forget term never rested), and scaled by s / 64
    alone it asked a gap of 0.60 instead of 0.35, which "cat" against "dog" reached only with
    5 blocks after 245 steps (bench/results/tuning/objects_rule)."""
    return s * (forget_gap(cfg) + m)


def pushes_unknown(cfg: ForgetConfig, kind: str) -> bool:
    """Whether a release task pushes its pictures below the open-set threshold (and its stopping
    rule asks it). "auto": for faces, where a forgotten person must come out unknown rather than
    as another person's name; not for object classes, whose measure (the paper's) is Acc_f, and
    whose few classes share so much that the threshold hardly separates (a forgotten cat is
    taken for a dog; docs/objects.md)."""
    if cfg.schedule != "release":
        return False
    return cfg.unknown == "on" or (cfg.unknown == "auto" and kind != "objects")


def _step_loss(run: _Run, alpha: float) -> tuple[torch.Tensor, dict]:
    """One step's loss on freshly drawn batches, and its parts (for the curve)."""
    model, cfg, y_all = run.model, run.cfg, run.gallery.train_y
    ri = _draw(run.retain_pool, cfg.batch_size, run.gen)
    half = cfg.batch_size // 2 if len(run.focus) else 0  # the rest keeps the done ones done
    fi = torch.cat([_draw(run.focus, half, run.gen),
                    _draw(run.forget_pool, cfg.batch_size - half, run.gen)])
    oi = _draw(run.earlier_pool, cfg.replay_forgotten, run.gen)
    yr, yf, yo = (y_all[i].to(model.device) for i in (ri, fi, oi))
    model.train()
    emb_r = _embed_batch(run, ri)
    l_r = retain_loss(model.head.margin_logits(model.head.cosine(emb_r), yr), yr)
    l_keep = torch.zeros((), device=model.device)
    if cfg.keep > 0 and run.anchor is not None:
        l_keep = keep_loss(emb_r, run.anchor[0][ri].to(model.device))
        if cfg.keep_views > 1:  # the mirrored view too: the answer averages both
            l_keep = (l_keep + keep_loss(_embed_batch(run, ri, flip=True),
                                         run.anchor[1][ri].to(model.device))) / 2
        l_r = l_r + cfg.keep * l_keep
    release = cfg.schedule == "release"
    emb_f = _answer_embedding(run, fi) if release else _embed_batch(run, fi)
    cos_f = model.head.cosine(emb_f)
    bnd = forget_bound(cfg, model.head.s, model.head.m)
    l_f = bounded_forget_loss(model.head.margin_logits(cos_f, yf), yf, bnd)
    l_u = torch.zeros((), device=model.device)
    loss = l_r + cfg.beta * l_f
    if len(oi):  # a term of its own, so this task's pictures keep their full weight in l_f
        emb_o = _answer_embedding(run, oi) if release else _embed_batch(run, oi)
        cos_o = model.head.cosine(emb_o)
        loss = loss + cfg.beta * bounded_forget_loss(model.head.margin_logits(cos_o, yo), yo, bnd)
        if run.unknown:
            loss = loss + cfg.beta * unknown_loss(cos_o, run.tau - cfg.margin, model.head.s)
    if run.unknown:
        l_u = unknown_loss(cos_f, run.tau - cfg.margin, model.head.s)
        loss = loss + cfg.beta * l_u
    l_struct = group_lasso(run.lasso) if run.lasso else torch.zeros((), device=model.device)
    if not cfg.proximal:
        loss = loss + alpha * l_struct
    l_pro = torch.zeros((), device=model.device)
    if cfg.prototype_weight > 0:
        l_pro = prototype_loss(emb_f, run.prototypes[yf], cfg.bnd_pro)
        loss = loss + cfg.prototype_weight * l_pro
    parts = {"loss": loss, "retain": l_r, "forget": l_f, "unknown": l_u, "sparsity": l_struct,
             "prototype": l_pro, "keep": l_keep}
    return loss, {k: float(v.detach()) for k, v in parts.items()}


@torch.no_grad()
def _judge(run: _Run, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For pictures ``idx``: (past the stopping rule, still answered as themselves), as the
    recognizer answers (evaluation embeddings, both views)."""
    model = run.model
    if run.cache is not None:
        emb = embed_states(model, run.cache.states(idx))
    else:
        emb = embed_all(model, run.gallery.train_x[idx])
    cos = model.head.cosine(emb.to(model.device)).cpu()
    own, other = own_and_other(cos, run.gallery.train_y[idx])
    best = cos.max(1).values
    # Half of each margin the loss pushes to: the loss goes past the rule, so the rule is met
    # while the push goes on, and held-back pictures, which follow less far, still clear it.
    cfg = run.cfg
    apart = max(0.0, forget_gap(cfg)) / 2
    done = other - own > apart
    if run.unknown:
        done &= best < run.tau - cfg.margin / 2
    return done, (own >= other) & (own >= run.tau)


@torch.no_grad()
def _check(run: _Run, full: bool = True) -> dict:
    """The stopping rule on the task's own training pictures and the replayed pictures of
    earlier tasks. Between full checks only the pictures not yet past it are judged again (a
    50-person task has hundreds of pictures, most of them done early); when none is left, all
    are judged again before the task may stop."""
    if full or run.judged is None:
        idx = torch.cat([run.forget_pool, run.earlier_pool.unique()])
        run.judged = (idx, *_judge(run, idx))
    idx, done, recognized = run.judged
    if not full:
        open_ = ~done
        done[open_], recognized[open_] = _judge(run, idx[open_])
        if bool(done.all()):
            return _check(run, full=True)
    y = run.gallery.train_y[idx]
    mine = torch.isin(y, torch.tensor(run.roles.forget))
    run.focus = idx[mine & ~done]
    return {"full": full, "people": len(run.roles.forget), "pictures_left": int((~done).sum()),
            "people_left": len(set(y[mine & ~done].tolist())),
            "recognized_left": len(set(y[mine & recognized].tolist())),
            "earlier_left": len(set(y[~mine & ~done].tolist()))}


def _live_accuracy(run: _Run) -> dict:
    """Acc_r and Acc_f on the test pictures, for the live plot only (never a decision)."""
    model, g = run.model, run.gallery
    block = run.cache.block if run.cache is not None else None
    if block is None:
        cos = model.head.cosine(embed_all(model, g.test_x).to(model.device)).cpu()
    else:
        if run.test_cache is None or run.test_cache.block != block:
            seed = run.before.top_test
            run.test_cache = StateCache(model, g.test_x, block, seed=seed)
        emb = embed_states(model, run.test_cache.states(torch.arange(len(g.test_y))))
        cos = model.head.cosine(emb.to(model.device)).cpu()
    pred = cos.argmax(1)
    return {"acc_r": subset_accuracy(pred, g.test_y, run.roles.retain),
            "acc_f": subset_accuracy(pred, g.test_y, run.roles.forget)}


@torch.no_grad()
def _anchor(run: _Run) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The retained training pictures' unit embeddings as the task starts, indexed by gallery
    picture: what ``keep_loss`` holds them to (the training view, and the mirrored one when
    ``keep_views`` is 2)."""
    model = run.model
    model.eval()
    views, pool = [], run.retain_pool
    for flip in (False, True)[:run.cfg.keep_views]:
        out = torch.zeros(len(run.gallery.train_y), model.cfg.embedding_dim)
        for i in range(0, len(pool), 256):
            idx = pool[i:i + 256]
            out[idx] = F.normalize(_embed_batch(run, idx, flip), dim=-1).float().cpu()
        views.append(out)
    return views[0], (views[1] if len(views) > 1 else None)


def _use_block(run: _Run, first: int) -> None:
    """Train the groups from ``first`` to the top; states cached at ``first`` when they can be.

    Groups below ``first`` stay exactly zero (no gradient), so their blocks are skipped."""
    for g, group in enumerate(run.groups):
        for p in group:
            p.requires_grad_(g >= first)
    if run.cfg.cache_hidden:
        top = len(run.model.blocks) - 1
        seed = run.before.top_train if first == top else None
        run.cache = StateCache(run.model, run.gallery.train_x, first, seed=seed)


def _point(run: _Run, step: int, lr: float, alpha: float, parts: dict,
           blocks: int) -> ForgetStep:
    """One step of the curve (what the page plots live)."""
    point: ForgetStep = {"step": step, "steps": run.cfg.steps, "lr": lr, "alpha": alpha, "blocks": blocks,
             "seconds": time.perf_counter() - run.started, **parts}
    if run.groups:
        point["group_norms"] = lora.delta_norms(run.model.blocks, run.task)
        point["zero_groups"] = sum(n == 0.0 for n in point["group_norms"])
    return point


def _release_steps(run: _Run, on_progress: ProgressFn | None,
                   should_cancel: CancelFn | None) -> tuple[list[dict], Stop | None]:
    """The default loop: blocks released from the top as the task needs them, stopped as soon
    as the stopping rule holds (None if cancelled)."""
    model, cfg = run.model, run.cfg
    depth = len(model.blocks)
    first = depth - (min(cfg.start_blocks, depth) if cfg.start_blocks and run.groups else depth)
    if run.groups:
        _use_block(run, first)
    if cfg.keep > 0:
        run.anchor = _anchor(run)
    opt = torch.optim.AdamW(run.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    curve: list[dict] = []
    reason, step, status = "step cap", 0, _check(run)
    best, best_at = status["pictures_left"], 0  # progress: the fewest pictures left, and when
    while step < cfg.steps:
        if should_cancel and should_cancel():
            return curve, None
        if cfg.max_seconds and time.perf_counter() - run.started > cfg.max_seconds:
            reason = "time cap"
            break
        loss, parts = _step_loss(run, 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        point = _point(run, step, cfg.lr, 0.0, parts, depth - first)
        if step % cfg.check_every == 0 or step == cfg.steps:
            model.eval()
            every = FULL_CHECK_EVERY * cfg.check_every
            status = _check(run, full=step % every == 0 or step == cfg.steps)
            point.update(status)
            if status["full"] and status["pictures_left"] < best:
                best, best_at = status["pictures_left"], step
            if status["full"] and status["pictures_left"] == 0:
                reason = "done"
            elif (status["full"] and step - best_at >= cfg.stage_steps and first > 0
                  and run.groups):
                first -= 1  # no progress for stage_steps: the blocks in use cannot finish
                _use_block(run, first)
                best_at = step
                point["released"] = first  # 0-based index of the block released
        if cfg.eval_every and (step % cfg.eval_every == 0 or reason == "done"):
            model.eval()
            point.update(_live_accuracy(run))
        curve.append(point)
        if on_progress:
            on_progress(point)
        if reason == "done":
            break
    return curve, _stop(run, reason, step, depth - first, status)


def _stop(run: _Run, reason: str, step: int, blocks: int, status: dict) -> Stop:
    return Stop(reason=reason, steps=step, seconds=time.perf_counter() - run.started,
                people=len(run.roles.forget), people_left=status["people_left"],
                recognized_left=status["recognized_left"],
                pictures_left=status["pictures_left"], earlier_left=status["earlier_left"],
                blocks=blocks)


def _lr_at(cfg: ForgetConfig, step: int, refit_from: int) -> float:
    """Without a refit: one cosine decay of ``cfg.lr`` over the task. With one: ``cfg.lr`` held
    while the lasso selects (a decaying rate would also decay its threshold, so the selection
    would stall before it is made), then a cosine decay over the refit, from ``cfg.lr`` again
    (a warm restart: the chosen blocks finish the task at full rate)."""
    if refit_from >= cfg.steps:
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    if step < refit_from:
        return cfg.lr
    t = (step - refit_from) / (cfg.steps - refit_from)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def _start_refit(run: _Run, opt: torch.optim.Optimizer) -> list[list[torch.Tensor]]:
    """Freeze the groups that are exactly zero (their block stays untouched) and, when every
    block below the first active one is frozen, switch to cached states at that block.

    If the lasso left no block at all (alpha near 1), the strongest one (depth-weighted, the
    lasso's own reference) finishes the task alone: "at most the strongest block"."""
    zero = [n == 0.0 for n in lora.norms_of(run.lasso)]
    if all(zero):
        weights = depth_weights(len(zero), run.cfg.alpha_depth)
        scales = adam_group_scale(opt, run.lasso)
        zero[max(range(len(zero)), key=lambda g: scales[g] / weights[g])] = False
    frozen = [g for g, z in zip(run.groups, zero) if z]
    first_active = zero.index(False)
    if run.cfg.cache_hidden and first_active > 0:
        run.cache = StateCache(run.model, run.gallery.train_x, first_active)
    return frozen


def _fixed_steps(run: _Run, on_progress: ProgressFn | None,
                 should_cancel: CancelFn | None) -> tuple[list[dict], Stop | None]:
    """The fixed schedule: ``sparsity_warmup`` of the steps dense (alpha = 0), then the group
    lasso (proximal steps on each block's B matrices), then the last ``cfg.refit`` share as a
    relaxed group lasso: no sparsity, the groups that are exactly zero by then held at zero, a
    warm restart of the learning rate, and (``cache_hidden``) cached states below the first
    active block."""
    model, cfg, groups = run.model, run.cfg, run.groups
    opt = torch.optim.AdamW(run.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = int(round(cfg.sparsity_warmup * cfg.steps))
    refit_from = cfg.steps - int(round(cfg.refit * cfg.steps))
    frozen: list[list[torch.Tensor]] = []
    curve: list[dict] = []
    for step in range(cfg.steps):
        if should_cancel and should_cancel():
            return curve, None
        if step == refit_from and groups:
            frozen = _start_refit(run, opt)
        lr = _lr_at(cfg, step, refit_from)
        alpha = cfg.alpha if warm <= step < refit_from else 0.0
        for g in opt.param_groups:
            g["lr"] = lr
        loss, parts = _step_loss(run, alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in frozen:
            for p in g:
                p.grad = None  # AdamW skips parameters without a gradient: they stay as they are
        opt.step()
        if cfg.proximal and alpha > 0 and groups:
            proximal_group_step(run.lasso, lasso_thresholds(opt, run.lasso, lr, alpha,
                                                             cfg.alpha_depth))
        point = _point(run, step + 1, lr, alpha, parts, 0)
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            model.eval()
            point.update(_live_accuracy(run))
        curve.append(point)
        if on_progress:
            on_progress(point)
    model.eval()
    norms = lora.delta_norms(model.blocks, run.task) if groups else []
    used = len(norms) - next((i for i, n in enumerate(norms) if n != 0.0), len(norms))
    return curve, _stop(run, "fixed schedule", cfg.steps, used, _check(run))


@torch.no_grad()
def shot_prototypes(model: Recognizer, gallery: Gallery, pool: torch.Tensor) -> torch.Tensor:
    """GS-LoRA++'s prototypes: per class, the mean backbone embedding (the training-time
    ``embed``, not unit-normalised) of the task's own pictures of it, i.e. of the K-shot pool in
    a few-shot task: the authors' protocol sees no other picture. Zeros for other classes."""
    model.eval()
    emb = torch.cat([model.embed(gallery.train_x[pool[i:i + 128]].to(model.device)).float().cpu()
                     for i in range(0, len(pool), 128)] or [torch.zeros(0, model.cfg.embedding_dim)])
    return class_prototypes(emb, gallery.train_y[pool], len(model.class_names),
                            normalize=False).to(model.device)


def ensure_threshold(model: Recognizer, gallery: Gallery, before: Snapshot) -> float:
    """The recognizer's open-set threshold; a checkpoint written before thresholds existed gets
    one now, fixed on the people it still knows (kept, and saved with the model); its test
    cosines come from the snapshot already taken."""
    if model.threshold is None:
        gone = set(model.forgotten())
        fix_threshold(model, gallery, people=[c for c, n in enumerate(model.class_names)
                                              if n not in gone], test_cos=before.test_cos)
    return model.threshold.tau


def _prepare(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
             cfg: ForgetConfig, earlier: Sequence[str] | None,
             before: Snapshot | None = None, plan: Roles | None = None) -> _Run:
    """Checks, device, seeds, the before snapshot (unless the caller has the model's current
    one: the state the previous task left) and the retain / forget pools of one task.
    ``plan``: the task's roles if the caller already planned it (``plan_task``)."""
    check_labels(model, gallery)
    roles = plan if plan is not None else plan_task(model, gallery, forget_names, earlier)
    device = resolve_device(cfg.device)
    model.to(device).eval().requires_grad_(False)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if before is None or not before.fits(model, gallery):
        before = snapshot(model, gallery)
    tau = ensure_threshold(model, gallery, before)
    retain_pool = select_train_indices(gallery, roles.retain, cfg, gen)
    forget_pool = select_train_indices(gallery, roles.forget, cfg, gen)
    earlier_pool = (select_train_indices(gallery, roles.earlier, cfg, gen)
                    if cfg.replay_forgotten else torch.zeros(0, dtype=torch.long))
    if len(retain_pool) == 0:
        raise ValueError("no training images of retained identities in the gallery")
    prototypes = (shot_prototypes(model, gallery, forget_pool) if cfg.prototype_weight > 0
                  else torch.zeros(0))
    return _Run(model, gallery, cfg, roles, before, retain_pool, forget_pool, earlier_pool,
                prototypes, gen, tau, unknown=pushes_unknown(cfg, model.kind))


def _measure_after(run: _Run) -> Snapshot:
    """The gallery after the task: from the top block's states the "before" kept when the task
    changed the top block only (nothing below it moved), else a full pass."""
    model, before = run.model, run.before
    norms = lora.delta_norms(model.blocks, run.task)
    top_only = all(n == 0.0 for n in norms[:-1])
    if (run.cfg.cache_hidden and top_only and before.top_test is not None
            and before.top_train is not None):
        return snapshot_from(model, before.top_test, before.top_train)
    return snapshot(model, run.gallery)


def _start_task(run: _Run, task: str) -> TaskRecord:
    """Give the model the task (its record and fresh adapters, ``Recognizer.add_task``) and
    make the adapters what ``run`` trains."""
    model, cfg = run.model, run.cfg
    record = TaskRecord(name=task, forgotten=[model.class_names[c] for c in run.roles.forget],
                        rank=cfg.rank, lora_alpha=cfg.lora_alpha, config=cfg.to_dict())
    model.add_task(record, seed=cfg.seed)
    run.params = list(lora.iter_task_parameters(model.blocks, task))
    for p in run.params:
        p.requires_grad_(True)
    run.groups = lora.group_params(model.blocks, task)
    run.lasso = lora.lasso_params(model.blocks, task) if cfg.schedule == "fixed" else []
    run.task = task
    return record


class TaskResult(NamedTuple):
    """What one forgetting task gives back: its report, and the recognizer's snapshot after
    it (None if cancelled), the next task's ``before``."""

    report: ForgetReport | Cancelled
    after: Snapshot | None


def forget(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
           cfg: ForgetConfig = ForgetConfig(), task_name: str | None = None,
           on_progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
           earlier: Sequence[str] | None = None, before: Snapshot | None = None,
           on_stage: Callable[[str], None] | None = None, plan: Roles | None = None
           ) -> TaskResult:
    """Run one forgetting task on ``model`` in place: ``forget(...).report`` is its report.

    A cancelled task removes its adapters, leaving the model exactly as before; the report is
    then ``Cancelled``. ``earlier``: the people forgotten before (default: the model's task
    history). ``before``: the model's snapshot on this gallery, if the caller kept the previous
    task's ``after``: the "before" of a task is the "after" of the one before it, so the
    gallery is not measured twice. ``on_progress`` hears every step; ``on_stage`` the work
    around the steps, in words (a page shows it meanwhile); ``plan``: ``plan_task``'s roles when
    the caller checked the request already (planned once)."""
    t0 = time.perf_counter()
    if on_stage:
        on_stage("preparing" if before is not None and before.fits(model, gallery)
                 else "measuring the recognizer before the task")
    run = _prepare(model, gallery, forget_names, cfg, earlier, before, plan)
    before_seconds = time.perf_counter() - t0 if run.before is not before else 0.0
    record = _start_task(run, task_name or f"task{len(model.tasks) + 1}")
    task = record.name

    def release() -> None:
        """Drop gradients and freeze: the task's adapters are done training."""
        for p in run.params:
            p.grad = None
        model.eval().requires_grad_(False)

    t_train = run.started = time.perf_counter()
    loop = _release_steps if cfg.schedule == "release" else _fixed_steps
    try:  # a failed task (out of memory, a bad value) leaves the model as it was
        curve, stop = loop(run, on_progress, should_cancel)
    except BaseException:
        release()
        model.remove_task(task)
        raise
    train_seconds = time.perf_counter() - t_train
    release()
    if stop is None:  # the model is exactly as before: its revision (and snapshot) still hold
        model.remove_task(task)
        return TaskResult(Cancelled(cancelled=True, task=task, step=len(curve),
                                    seconds=time.perf_counter() - t0), None)
    if on_stage:
        on_stage("measuring the recognizer after the task")
    after = _measure_after(run)
    model.revision += 1
    after.revision = model.revision
    report = build_report(model, gallery, TaskOutcome(
        record=record, roles=run.roles, before=run.before, after=after, cfg=cfg,
        seconds=time.perf_counter() - t0, train_seconds=train_seconds, curve=curve,
        stop=stop.to_dict(), tau=run.tau, before_seconds=before_seconds))
    return TaskResult(report, after)


def finetune_forget(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
                    cfg: ForgetConfig, earlier: Sequence[str] | None = None,
                    before: Snapshot | None = None) -> dict:
    """The baseline GS-LoRA is measured against: the same losses, schedule and stopping rule,
    but every weight of the model trained (no adapters, no sparsity, no cached states). It
    changes the weights in place, keeps no task history and cannot be rolled back; it is for
    benchmarks, not for the app.

    ``earlier``: the people it forgot in previous tasks. It records no task, so in a sequence
    they must be passed here (else they would be trained as retained, and not replayed).
    Returns its cost and who played which role."""
    t0 = time.perf_counter()
    run = _prepare(model, gallery, forget_names, cfg, earlier if earlier is not None else [],
                   before)
    params = run.params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    t_train = run.started = time.perf_counter()
    loop = _release_steps if cfg.schedule == "release" else _fixed_steps
    try:
        curve, stop = loop(run, None, None)
    finally:
        for p in params:
            p.grad = None
        model.eval().requires_grad_(False)
        model.revision += 1
    total = count_parameters(model)
    return {"train_seconds": time.perf_counter() - t_train, "seconds": time.perf_counter() - t0,
            "trainable_params": total, "total_params": total, "trainable_share": 1.0,
            "earlier_forgotten": [model.class_names[c] for c in run.roles.earlier],
            "replayed_pictures": len(run.earlier_pool), "curve": curve,
            "stop": stop.to_dict() if stop else None}


def rollback(model: Recognizer) -> str:
    """Remove the last (un-merged) task's adapters: the model behaves as before that task."""
    if not model.tasks or model.tasks[-1].merged:
        raise ValueError("no un-merged task to roll back")
    rec = model.remove_task(model.tasks[-1].name)
    model.revision += 1
    return rec.name

