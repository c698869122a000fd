"""One GS-LoRA forgetting task from request to report: plan, prepare, train, measure.

Owned here: a task's life around its training loop. ``plan_task`` says who is forgotten,
forgotten earlier and retained (the caller plans once and passes the plan); ``forget`` draws the
task's pictures, adds a fresh adapter set (``Recognizer.add_task``), trains it (``loop.train``:
the schedules, the objective and the stopping rule live there and beside it), measures the
gallery after it and builds the report. A task that fails or is cancelled takes its adapters
out again: the model is exactly as it was. ``finetune_forget`` is the baseline that trains every
weight through the same loop.

Per step: a retain batch and a forget batch (and a few pictures of people forgotten earlier),
``L = L_r + beta * (L_f + L_unknown) (+ w * L_pro)``, an AdamW step on the task's LoRA
(``objective``). The default schedule ("release", ``schedules``) spends blocks only as the task
needs them and stops as soon as the stopping rule (``stopping``) holds on the task's own
training pictures, never on test pictures; every block below the first released one stays
exactly zero, so the task runs from states cached at that block (``task.Inputs``) and measures
the gallery from the states its "before" kept.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple, Sequence

import torch

from . import lora
from .config import LORA_ALPHA, ForgetConfig, TaskRecord
from .data import Gallery
from .evaluation import (
    Cancelled,
    ForgetReport,
    Roles,
    Snapshot,
    TaskOutcome,
    build_report,
    snapshot,
)
from .gate import SHUT, Gate, gated_bnds, gates
from .loop import train
from .metrics import class_prototypes
from .model import Recognizer, count_parameters, resolve_device
from .progress import CancelFn, ProgressFn, Stage
from .states import Grids
from .stopping import pushes_unknown
from .task import Pools, Task, after_snapshot
from .training import check_labels, fix_threshold

__all__ = ["forget", "TaskResult", "finetune_forget", "plan_task", "rollback",
           "select_train_indices", "shot_prototypes"]


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
    """Forget F, earlier-forgotten O and retain R class indices, with readable errors: a
    request is planned once, by the caller, and the plan passed to ``forget``.

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
    return Roles(forgotten=f_idx, earlier=o_idx, retained=r_idx)


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


def _prepare(model: Recognizer, gallery: Gallery, roles: Roles, cfg: ForgetConfig,
             before: Snapshot | None) -> Task:
    """Checks, device, seeds, the before snapshot (unless the caller has the model's current
    one: the state the previous task left) and the pools of one task, drawn in this order."""
    check_labels(model, gallery)
    model.to(resolve_device(cfg.device)).eval().requires_grad_(False)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if before is None or not before.fits(model, gallery):
        before = snapshot(model, gallery)
    tau = ensure_threshold(model, gallery, before)
    pools = Pools(select_train_indices(gallery, roles.retained, cfg, gen),
                  select_train_indices(gallery, roles.forgotten, cfg, gen),
                  select_train_indices(gallery, roles.earlier, cfg, gen)
                  if cfg.replay_forgotten else torch.zeros(0, dtype=torch.long))
    if len(pools.retain) == 0:
        raise ValueError("no training images of retained identities in the gallery")
    prototypes = (shot_prototypes(model, gallery, pools.forget) if cfg.prototype_weight > 0
                  else torch.zeros(0))
    return Task(model, gallery, cfg, roles, before, pools, prototypes, gen, tau,
                unknown=pushes_unknown(cfg, model.kind), grids=before.grids or Grids(),
                bnds=(cfg.bnd,))


def _trains(task: Task, params: list[torch.Tensor], name: str = "") -> Task:
    """``task`` training ``params``: a task's adapters (``name``) or, without, every weight."""
    for p in params:
        p.requires_grad_(True)
    if not name:
        return replace(task, params=tuple(params))
    blocks = task.model.blocks
    return replace(task, name=name, params=tuple(params),
                   groups=tuple(lora.group_params(blocks, name)),
                   lasso=tuple(lora.lasso_params(blocks, name))
                   if task.cfg.schedule == "fixed" else ())


def _start_task(task: Task, name: str) -> tuple[Task, TaskRecord]:
    """Give the model the task (its record and fresh adapters, ``Recognizer.add_task``) and
    make the adapters what ``task`` trains; a gated task asks ``gate_bnd``, then its fallback."""
    model, cfg = task.model, task.cfg
    forgotten = [model.class_names[c] for c in task.roles.forgotten]
    record = TaskRecord(name=name, forgotten=forgotten, rank=cfg.rank, lora_alpha=LORA_ALPHA,
                        config=cfg.to_dict(), gate=_gate(task, forgotten))
    model.add_task(record, seed=cfg.seed)
    if record.gate is not None:
        task = replace(task, bnds=gated_bnds(cfg.gate_bnd, cfg.gate_bnd_fallback))
    return _trains(task, list(lora.iter_task_parameters(model.blocks, name)), name), record


def _gate(task: Task, forgotten: list[str]) -> dict | None:
    """The task's gate (``gate.Gate``), over its forgotten classes and the earlier ones."""
    cfg, model = task.cfg, task.model
    if not gates(cfg.gate, cfg.schedule, model.kind):
        return None
    earlier = [model.class_names[c] for c in task.roles.earlier]
    return Gate(tuple(forgotten + earlier), cfg.gate_k, cfg.gate_c, task.tau,
                cfg.gate_lead, SHUT).to_dict()


def _lowest_changed(task: Task) -> int:
    """The lowest block the task changed (every block under it exactly untouched)."""
    norms = lora.delta_norms(task.model.blocks, task.name)
    return next((b for b, n in enumerate(norms) if n != 0.0), len(norms))


class TaskResult(NamedTuple):
    """What one forgetting task gives back: its report, and the recognizer's snapshot after
    it (None if cancelled), the next task's ``before``."""

    report: ForgetReport | Cancelled
    after: Snapshot | None


def _release(task: Task) -> None:
    """Drop gradients and freeze a task that will be taken out (its revision untouched)."""
    for p in task.params:
        p.grad = None
    task.model.eval().requires_grad_(False)


def _stage(on_progress: ProgressFn | None, stage: str) -> None:
    if on_progress:
        on_progress(Stage(stage=stage))


def forget(model: Recognizer, gallery: Gallery, plan: Roles, cfg: ForgetConfig, *,
           before: Snapshot | None = None, on_progress: ProgressFn | None = None,
           should_cancel: CancelFn | None = None) -> TaskResult:
    """Run one forgetting task on ``model`` in place: ``forget(...).report`` is its report.

    ``plan``: the task's roles (``plan_task``: the request checked, once, by the caller).
    ``before``: the model's snapshot on this gallery, if the caller kept the previous task's
    ``after``: the "before" of a task is the "after" of the one before it, so the gallery is
    not measured twice. ``on_progress`` hears every step (``progress.ForgetStep``) and, in
    words, the work around the steps (``progress.Stage``). A cancelled task removes its
    adapters, leaving the model exactly as before; the report is then ``Cancelled``."""
    t0 = time.perf_counter()
    kept = before is not None and before.fits(model, gallery)
    _stage(on_progress, "preparing" if kept else "measuring the recognizer before the task")
    task = _prepare(model, gallery, plan, cfg, before)
    before_seconds = time.perf_counter() - t0 if task.before is not before else 0.0
    task, record = _start_task(task, f"task{len(model.tasks) + 1}")
    t_train = time.perf_counter()
    try:  # a failed task (out of memory, a bad value) leaves the model as it was
        curve, stop = train(task, on_progress, should_cancel)
    except BaseException:
        _release(task)
        model.remove_task(task.name)
        raise
    train_seconds = time.perf_counter() - t_train
    if stop is None:  # the model is exactly as before: its revision (and snapshot) still hold
        _release(task)
        model.remove_task(task.name)
        return TaskResult(Cancelled(cancelled=True, task=task.name, step=len(curve),
                                    seconds=time.perf_counter() - t0), None)
    model.freeze()
    _stage(on_progress, "measuring the recognizer after the task")
    after = after_snapshot(task, lowest=_lowest_changed(task))
    report = build_report(model, gallery, TaskOutcome(
        record=record, roles=plan, before=task.before, after=after, cfg=cfg,
        seconds=time.perf_counter() - t0, train_seconds=train_seconds, curve=curve,
        stop=stop.to_dict(), tau=task.tau, before_seconds=before_seconds))
    return TaskResult(report, after)


def finetune_forget(model: Recognizer, gallery: Gallery, plan: Roles, cfg: ForgetConfig, *,
                    before: Snapshot | None = None) -> dict:
    """The baseline GS-LoRA is measured against: the same losses, schedule and stopping rule,
    but every weight of the model trained (no adapters, no sparsity, no cached states). It
    changes the weights in place, keeps no task history and cannot be rolled back; it is for
    benchmarks, not for the app.

    ``plan``: it records no task, so in a sequence the people it forgot in previous tasks must
    be planned as earlier (``plan_task(..., earlier=...)``), else they would be trained as
    retained, and not replayed. Returns its cost and who played which role."""
    t0 = time.perf_counter()
    task = _trains(_prepare(model, gallery, plan, cfg, before), list(model.parameters()))
    t_train = time.perf_counter()
    try:
        curve, stop = train(task)
    finally:
        model.freeze()
    total = count_parameters(model)
    return {"train_seconds": time.perf_counter() - t_train, "seconds": time.perf_counter() - t0,
            "trainable_params": total, "total_params": total, "trainable_share": 1.0,
            "earlier_forgotten": [model.class_names[c] for c in plan.earlier],
            "replayed_pictures": len(task.pools.earlier), "curve": curve,
            "stop": stop.to_dict() if stop else None}


def rollback(model: Recognizer) -> str:
    """Remove the last (un-merged) task's adapters: the model behaves as before that task."""
    if not model.tasks or model.tasks[-1].merged:
        raise ValueError("no un-merged task to roll back")
    return model.remove_task(model.tasks[-1].name).name
