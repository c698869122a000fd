"""One GS-LoRA forgetting task: add a fresh adapter set, train it, measure before and after.

Per step: a retain batch and a forget batch, ``L = L_r + beta*L_f (+ w*L_pro)``, an AdamW step,
then the group lasso ``sum_g lambda_g ||B_g||`` as its exact proximal operator (a group
soft-threshold on each block's B matrices), so unneeded blocks end exactly untouched. The
threshold is taken in Adam's own metric and ``lambda_g`` is relative to the task's strongest
block (see ``lasso_thresholds``), so one ``alpha`` suits every gallery. A refit then trains the
chosen blocks only, from cached tokens below them (see ``_steps``).
With ``proximal=False`` the group lasso is a plain (sub)gradient term ``alpha * L_struct`` in the
loss, as in the authors' code (there alpha is an absolute weight, theirs 1e-4 to 1e-2), which
never reaches exact zeros.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from . import lora
from .activations import BlockInputCache
from .config import ForgetConfig, TaskRecord
from .data import Gallery
from .evaluation import ForgetReport, Roles, Snapshot, TaskOutcome, accuracy, build_report, snapshot
from .losses import bounded_forget_loss, group_lasso, prototype_loss, proximal_group_step, retain_loss
from .metrics import class_prototypes
from .model import Recognizer, count_parameters, resolve_device
from .training import check_labels

ProgressFn = Callable[[dict], None]
CancelFn = Callable[[], bool]


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


@torch.no_grad()
def adam_group_scale(opt: torch.optim.Optimizer, groups: list[list[torch.Tensor]]) -> list[float]:
    """Per group, the mean of Adam's denominator sqrt(v_hat) + eps over its entries.

    Adam divides each gradient by this; the proximal step of ``alpha * ||g||`` taken in the same
    metric therefore has threshold ``lr * alpha / scale``. A block whose gradients are small
    (it does not matter for the task) gets a large threshold and is zeroed; a block that matters
    keeps its weights."""
    beta2, eps = opt.param_groups[0]["betas"][1], opt.param_groups[0]["eps"]
    out = []
    for g in groups:
        total, count = 0.0, 0
        for p in g:
            state = opt.state.get(p, {})
            if "exp_avg_sq" not in state:
                continue
            v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
            total += float((v_hat.sqrt() + eps).sum())
            count += p.numel()
        out.append(total / count if count else float("inf"))
    return out


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
    params: list[torch.Tensor] = field(default_factory=list)  # what trains
    groups: list[list[torch.Tensor]] = field(default_factory=list)  # LoRA groups (none: full)
    lasso: list[list[torch.Tensor]] = field(default_factory=list)  # their B matrices
    task: str = ""
    cache: BlockInputCache | None = None  # tokens below the first active block (refit)


def _draw(pool: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices drawn with replacement from ``pool`` (none from an empty pool)."""
    if n == 0 or len(pool) == 0:
        return pool[:0]
    return pool[torch.randint(len(pool), (n,), generator=gen)]


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


def _embed_batch(run: _Run, idx: torch.Tensor) -> torch.Tensor:
    """Training embeddings of gallery pictures ``idx``: through the whole backbone, or from the
    cached tokens at the first active block once the lower blocks are held at zero."""
    if run.cache is not None:
        return run.model.embed_from(run.cache(idx), run.cache.block)
    return run.model.embed(run.gallery.train_x[idx].to(run.model.device))


def _start_refit(run: _Run, opt: torch.optim.Optimizer) -> list[list[torch.Tensor]]:
    """Freeze the groups that are exactly zero (their block stays untouched) and, when every
    block below the first active one is frozen, switch to cached tokens at that block.

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
        run.cache = BlockInputCache(run.model, run.gallery.train_x, first_active)
    return frozen


def depth_weights(groups: int, power: float) -> list[float]:
    """w_g = (blocks from g to the top)^power: an edit in block g changes the input of every
    block above it, so its footprint on everyone else grows with that count."""
    return [float(groups - g) ** power for g in range(groups)]


@torch.no_grad()
def lasso_thresholds(opt: torch.optim.Optimizer, lasso: list[list[torch.Tensor]], lr: float,
                     alpha: float, depth_power: float) -> list[float]:
    """Per group, the soft-threshold of one proximal step of ``sum_g lambda_g ||B_g||``, taken in
    Adam's metric: ``lr * lambda_g / d_g`` with ``d_g`` Adam's per-entry gradient scale.

    lambda_g = alpha * w_g * max_h(||grad_h|| / w_h), with ||grad_h|| estimated as
    ``d_h * sqrt(entries)``. At a fixed point of the proximal steps a group is zero exactly when
    its gradient norm is at most lambda_g, so alpha reads as a share of the strongest
    (depth-weighted) block's gradient: 0 = no sparsity, 1 = even that block is at the edge.
    Why relative: a task's gradients differ by orders of magnitude between galleries and people
    (a recognizer sure of a face gives tiny ones), so any absolute alpha zeroes every block on one
    task and none on another; relative to the task's own scale, one alpha fits all."""
    scales = adam_group_scale(opt, lasso)
    weights = depth_weights(len(lasso), depth_power)
    entries = math.sqrt(sum(p.numel() for p in lasso[0]))
    ref = max(d / w for d, w in zip(scales, weights))
    return [lr * alpha * w * entries * ref / d for w, d in zip(weights, scales)]


def _steps(run: _Run, on_progress: ProgressFn | None,
           should_cancel: CancelFn | None) -> tuple[list[dict], bool]:
    """The optimisation loop; returns its curve and whether it was cancelled.

    Three phases: ``sparsity_warmup`` of the steps dense (alpha = 0), then the group lasso
    (proximal steps on each block's B matrices), then the last ``cfg.refit`` share as a relaxed
    group lasso: no sparsity, the groups that are exactly zero by then held at zero, a warm
    restart of the learning rate, and (``cache_hidden``) cached tokens below the first active
    block. The lasso picks the blocks; the refit lets them finish the task without the
    shrinkage's bias, and costs only the active blocks."""
    model, gallery, cfg, groups = run.model, run.gallery, run.cfg, run.groups
    device = model.device
    opt = torch.optim.AdamW(run.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = int(round(cfg.sparsity_warmup * cfg.steps))
    refit_from = cfg.steps - int(round(cfg.refit * cfg.steps))
    frozen: list[list[torch.Tensor]] = []
    curve: list[dict] = []
    for step in range(cfg.steps):
        if should_cancel and should_cancel():
            return curve, True
        if step == refit_from and groups:
            frozen = _start_refit(run, opt)
        lr = _lr_at(cfg, step, refit_from)
        alpha = cfg.alpha if warm <= step < refit_from else 0.0
        for g in opt.param_groups:
            g["lr"] = lr
        ri = _draw(run.retain_pool, cfg.batch_size, run.gen)
        fi = _draw(run.forget_pool, cfg.batch_size, run.gen)
        oi = _draw(run.earlier_pool, cfg.replay_forgotten, run.gen)
        idx = torch.cat([ri, fi, oi])
        y = gallery.train_y[idx].to(device)
        model.train()
        emb = _embed_batch(run, idx)
        margin_logits = model.head(emb, y)
        nr, nf = len(ri), len(fi)
        l_r = retain_loss(margin_logits[:nr], y[:nr])
        l_f = bounded_forget_loss(margin_logits[nr:nr + nf], y[nr:nr + nf], cfg.bnd)
        l_struct = group_lasso(run.lasso) if groups else torch.zeros((), device=device)
        loss = l_r + cfg.beta * l_f
        if len(oi):  # a term of its own, so this task's pictures keep their full weight in l_f
            loss = loss + cfg.beta * bounded_forget_loss(margin_logits[nr + nf:], y[nr + nf:], cfg.bnd)
        if not cfg.proximal:
            loss = loss + alpha * l_struct
        l_pro = torch.zeros((), device=device)
        if cfg.prototype_weight > 0:
            l_pro = prototype_loss(emb[nr:nr + nf], run.prototypes[y[nr:nr + nf]], cfg.bnd_pro)
            loss = loss + cfg.prototype_weight * l_pro
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in frozen:
            for p in g:
                p.grad = None  # AdamW skips parameters without a gradient: they stay as they are
        opt.step()
        if cfg.proximal and alpha > 0 and groups:
            proximal_group_step(run.lasso, lasso_thresholds(opt, run.lasso, lr, alpha,
                                                             cfg.alpha_depth))
        point = {"step": step + 1, "steps": cfg.steps, "loss": float(loss.detach()),
                 "retain": float(l_r.detach()), "forget": float(l_f.detach()),
                 "sparsity": float(l_struct.detach()), "prototype": float(l_pro.detach()),
                 "lr": lr, "alpha": alpha}
        if groups and (on_progress or cfg.eval_every):
            point["group_norms"] = lora.delta_norms(model.blocks, run.task)
            point["zero_groups"] = sum(n == 0.0 for n in point["group_norms"])
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            model.eval()
            snap = snapshot(model, gallery, with_train=False)
            point["acc_r"] = accuracy(snap, gallery, run.roles.retain)
            point["acc_f"] = accuracy(snap, gallery, run.roles.forget)
        curve.append(point)
        if on_progress:
            on_progress(point)
    return curve, False


@torch.no_grad()
def shot_prototypes(model: Recognizer, gallery: Gallery, pool: torch.Tensor) -> torch.Tensor:
    """GS-LoRA++'s prototypes: per class, the mean backbone embedding (the training-time
    ``embed``, not unit-normalised) of the task's own pictures of it, i.e. of the K-shot pool in
    a few-shot task: the authors' protocol sees no other picture. Zeros for other classes."""
    model.eval()
    emb = torch.cat([model.embed(gallery.train_x[pool[i:i + 128]].to(model.device)).float().cpu()
                     for i in range(0, len(pool), 128)] or [torch.zeros(0, model.cfg.embed_dim)])
    return class_prototypes(emb, gallery.train_y[pool], len(model.class_names),
                            normalize=False).to(model.device)


def _prepare(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
             cfg: ForgetConfig, earlier: Sequence[str] | None,
             before: Snapshot | None = None) -> _Run:
    """Checks, device, seeds, the before snapshot (unless given: a benchmark that has it
    already saves a pass over the gallery) and the retain / forget pools of one task."""
    check_labels(model, gallery)
    roles = plan_task(model, gallery, forget_names, earlier)
    device = resolve_device(cfg.device)
    model.to(device).eval().requires_grad_(False)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if before is None or len(before.train_cos) != len(gallery.train_y):
        before = snapshot(model, gallery)
    retain_pool = select_train_indices(gallery, roles.retain, cfg, gen)
    forget_pool = select_train_indices(gallery, roles.forget, cfg, gen)
    earlier_pool = (select_train_indices(gallery, roles.earlier, cfg, gen)
                    if cfg.replay_forgotten else torch.zeros(0, dtype=torch.long))
    if len(retain_pool) == 0:
        raise ValueError("no training images of retained identities in the gallery")
    prototypes = (shot_prototypes(model, gallery, forget_pool) if cfg.prototype_weight > 0
                  else torch.zeros(0))
    return _Run(model, gallery, cfg, roles, before, retain_pool, forget_pool, earlier_pool,
                prototypes, gen)


def forget(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
           cfg: ForgetConfig = ForgetConfig(), task_name: str | None = None,
           on_progress: ProgressFn | None = None,
           should_cancel: CancelFn | None = None,
           earlier: Sequence[str] | None = None) -> ForgetReport:
    """Run one forgetting task on ``model`` in place and return its report.

    ``earlier``: the people forgotten before (default: the model's task history).
    A cancelled task removes its adapters, leaving the model exactly as before; the report then
    has ``cancelled: True``."""
    return forget_task(model, gallery, forget_names, cfg, task_name, on_progress, should_cancel,
                       earlier)[0]


def forget_task(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
                cfg: ForgetConfig = ForgetConfig(), task_name: str | None = None,
                on_progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                earlier: Sequence[str] | None = None, before: Snapshot | None = None
                ) -> tuple[ForgetReport, Snapshot | None]:
    """``forget``, also taking the model's snapshot before the task (if the caller has it) and
    returning the one after it (None if cancelled): a benchmark measuring many tasks on a large
    gallery then passes over the gallery once per task instead of three times."""
    t0 = time.perf_counter()
    run = _prepare(model, gallery, forget_names, cfg, earlier, before)
    task = task_name or f"task{len(model.tasks) + 1}"
    lora.add_task(model.blocks, task, cfg.rank, cfg.lora_alpha, seed=cfg.seed)
    params = run.params = list(lora.iter_task_parameters(model.blocks, task))
    for p in params:
        p.requires_grad_(True)
    run.groups = lora.group_params(model.blocks, task)
    run.lasso = lora.lasso_params(model.blocks, task)
    run.task = task

    def release() -> None:
        """Drop gradients and freeze: the task's adapters are done training."""
        for p in params:
            p.grad = None
        model.eval().requires_grad_(False)

    t_train = time.perf_counter()
    try:  # a failed task (out of memory, a bad value) leaves the model as it was
        curve, cancelled = _steps(run, on_progress, should_cancel)
    except BaseException:
        release()
        lora.remove_task(model.blocks, task)
        raise
    train_seconds = time.perf_counter() - t_train
    release()
    if cancelled:
        lora.remove_task(model.blocks, task)
        return ForgetReport(cancelled=True, task=task, step=len(curve),
                            seconds=time.perf_counter() - t0), None
    after = snapshot(model, gallery)
    record = TaskRecord(name=task, forgotten=[model.class_names[c] for c in run.roles.forget],
                        rank=cfg.rank, lora_alpha=cfg.lora_alpha, config=cfg.to_dict())
    model.tasks.append(record)
    return build_report(model, gallery, TaskOutcome(
        record=record, roles=run.roles, before=run.before, after=after, cfg=cfg,
        seconds=time.perf_counter() - t0, train_seconds=train_seconds, curve=curve)), after


def finetune_forget(model: Recognizer, gallery: Gallery, forget_names: Sequence[str],
                    cfg: ForgetConfig, earlier: Sequence[str] | None = None,
                    before: Snapshot | None = None) -> dict:
    """The baseline GS-LoRA is measured against: the same losses and schedule, but every weight
    of the model trained (no adapters, no group sparsity). It changes the weights in place,
    keeps no task history and cannot be rolled back; it is for benchmarks, not for the app.

    ``earlier``: the people it forgot in previous tasks. It records no task, so in a sequence
    they must be passed here (else they would be trained as retained, and not replayed).
    Returns its cost and who played which role."""
    t0 = time.perf_counter()
    run = _prepare(model, gallery, forget_names, cfg, earlier if earlier is not None else [],
                   before)
    params = run.params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    t_train = time.perf_counter()
    try:
        curve, _ = _steps(run, None, None)
    finally:
        for p in params:
            p.grad = None
        model.eval().requires_grad_(False)
    total = count_parameters(model)
    return {"train_seconds": time.perf_counter() - t_train, "seconds": time.perf_counter() - t0,
            "trainable_params": total, "total_params": total, "trainable_share": 1.0,
            "earlier_forgotten": [model.class_names[c] for c in run.roles.earlier],
            "replayed_pictures": len(run.earlier_pool), "curve": curve}


def rollback(model: Recognizer) -> str:
    """Remove the last (un-merged) task's adapters: the model behaves as before that task."""
    if not model.tasks or model.tasks[-1].merged:
        raise ValueError("no un-merged task to roll back")
    rec = model.tasks.pop()
    lora.remove_task(model.blocks, rec.name)
    return rec.name
