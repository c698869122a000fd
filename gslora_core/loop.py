"""The one training loop of a forgetting task: draw -> loss -> step -> check -> release or stop.

Its state is local to ``train``: the step count, the rule's last status, the curve. The
schedule (``schedules``) decides each step's learning rate and alpha, which blocks train and
when the task ends; the objective (``objective``) draws the batches and takes the loss; the
stopping rule (``stopping``) says how far the task's people are from forgotten. GS-LoRA trains a
task's adapters (``Task.groups``); the full fine-tuning baseline, every weight, through the same
loop.
"""
from __future__ import annotations

import time

import torch

from . import lora
from .lasso import lasso_thresholds
from .losses import proximal_group_step
from .metrics import subset_accuracy
from .objective import draw_batch, keep_anchor, step_loss
from .progress import CancelFn, ForgetStep, ProgressFn
from .schedules import Blocks, Schedule, anneals, schedule_for
from .stopping import Rule, Stop
from .task import Inputs, Task


def _use(task: Task, inputs: Inputs, blocks: Blocks | None) -> None:
    """Train the groups ``blocks`` names (the others stay exactly as they are: no gradient) and
    start the pictures' pass where it says."""
    if blocks is None:
        return
    for on, group in zip(blocks.trained, task.groups):
        for p in group:
            p.requires_grad_(on)
    inputs.start_at(blocks.cache_at, blocks.seeded)


def _group_norms(task: Task, last: list[float] | None) -> list[float]:
    """Per block, the norm of the task's weight change there (``lora.delta_norm``): a group
    that does not train now is as it was, so its norm is carried from ``last``, the previous
    step's (a one-block task computes one norm a step, not one per block)."""
    return [lora.delta_norm(block, task.name)
            if last is None or group[0].requires_grad else last[g]
            for g, (block, group) in enumerate(zip(task.model.blocks, task.groups))]


def _point(task: Task, step: int, lr: float, alpha: float, blocks: int, parts: dict,
           started: float, last: ForgetStep | None) -> ForgetStep:
    """One step of the curve (what the page plots live); ``last``: the step before it."""
    point: ForgetStep = {"step": step, "steps": task.cfg.steps, "lr": lr, "alpha": alpha,
                         "blocks": blocks, "seconds": time.perf_counter() - started,
                         **parts}  # type: ignore[typeddict-item]
    if task.groups:
        point["group_norms"] = _group_norms(task, last["group_norms"] if last else None)
        point["zero_groups"] = sum(n == 0.0 for n in point["group_norms"])
    return point


@torch.no_grad()
def _live_accuracy(task: Task, inputs: Inputs) -> dict:
    """Acc_r and Acc_f on the test pictures, for the live plot only (never a decision)."""
    task.model.eval()
    pred, y = inputs.test_cosines().argmax(1), task.gallery.test_y
    return {"acc_r": subset_accuracy(pred, y, task.roles.retained),
            "acc_f": subset_accuracy(pred, y, task.roles.forgotten)}


def _sparsify(task: Task, opt: torch.optim.Optimizer, lr: float, alpha: float) -> None:
    """The group lasso's proximal step after the optimizer's (fixed schedule: alpha > 0)."""
    if alpha > 0 and task.lasso:
        lasso = list(task.lasso)
        proximal_group_step(lasso, lasso_thresholds(opt, lasso, lr, alpha))


def _optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _check(task: Task, inputs: Inputs, rule: Rule, plan: Schedule, step: int,
           point: ForgetStep) -> tuple[str | None, dict | None]:
    """After step ``step``, when the schedule asks: the stopping rule's status (into ``point``)
    and the schedule's answer to it: "done", a lower BND from the next step, or one more block
    released."""
    full = plan.check_at(step)
    if full is None:
        return None, None
    task.model.eval()
    status = rule.check(plan.bnd, full)
    point.update(status)  # type: ignore[typeddict-item]
    reason, blocks = plan.after_check(step, status)
    if plan.bnd != status["bnd"]:
        point["eased"] = plan.bnd
    if blocks is not None:
        _use(task, inputs, blocks)
        point["released"] = blocks.trained.index(True)
    return reason, status


def train(task: Task, on_progress: ProgressFn | None = None,
          should_cancel: CancelFn | None = None) -> tuple[list[ForgetStep], Stop | None]:
    """Train ``task`` until its schedule ends it: the curve and why it stopped (None if
    cancelled, the model then as the loop left it: the caller removes the task)."""
    model, cfg = task.model, task.cfg
    started = time.perf_counter()
    plan = schedule_for(cfg, len(model.blocks), bool(task.groups), anneals(cfg, model.kind),
                        task.bnds)
    inputs = Inputs(task)
    rule = Rule(task, inputs)
    _use(task, inputs, plan.start())
    anchor = keep_anchor(task, inputs) if plan.keeps and cfg.keep > 0 else None
    status = rule.check(plan.bnd) if plan.checks else None
    plan.begin(status)
    opt = torch.optim.AdamW(task.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    curve: list[ForgetStep] = []
    step, reason = 0, None
    while reason is None:
        if reason := plan.cap(step, time.perf_counter() - started):
            break
        if should_cancel and should_cancel():
            return curve, None
        _use(task, inputs, plan.refit(step, opt, task.lasso))
        lr, alpha = plan.rates(step)
        # draw -> loss -> step
        loss, parts = step_loss(task, inputs, draw_batch(task, rule.focus), anchor, plan.answer,
                                plan.bnd)
        _optimizer_step(opt, loss, lr)
        _sparsify(task, opt, lr, alpha)
        step += 1
        point = _point(task, step, lr, alpha, plan.blocks, parts, started,
                       curve[-1] if curve else None)
        # check -> release or stop
        reason, checked = _check(task, inputs, rule, plan, step, point)
        status = checked or status
        reason = reason or plan.final(step)
        if cfg.eval_every and (step % cfg.eval_every == 0 or reason):
            point.update(_live_accuracy(task, inputs))  # type: ignore[typeddict-item]
        curve.append(point)
        if on_progress:
            on_progress(point)
    if status is None:  # a schedule that never checked: how far the people are now
        model.eval()
        status = rule.check(plan.bnd)
    blocks_used = plan.blocks_used(task.name, model.blocks)
    return curve, Stop.at(reason, step, time.perf_counter() - started, blocks_used, status)
