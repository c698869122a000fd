"""The fixed schedule's group sparsity: a group lasso over every block as exact proximal steps.

Per step, after AdamW, the group lasso ``sum_g lambda_g ||B_g||`` is applied as its exact proximal
operator (a group soft-threshold on each block's B matrices), so unneeded blocks end exactly
untouched. The threshold is taken in Adam's own metric and ``lambda_g`` is relative to the task's
strongest block (``lasso_thresholds``), so one ``alpha`` suits every gallery. (The authors'
code adds ``alpha * L_struct`` to the loss as a plain (sub)gradient term, which never reaches
exact zeros.) The default ("release") schedule needs none of this: it never opens a block it does not need.
"""
from __future__ import annotations

import math

import torch

# The depth weighting's power (``depth_weights``): 1, a block's lasso weight is the count of
# blocks from it to the top. Never changed in any stored result, so a constant.
ALPHA_DEPTH = 1.0


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




def depth_weights(groups: int, power: float = ALPHA_DEPTH) -> list[float]:
    """w_g = (blocks from g to the top)^power: an edit in block g changes the input of every
    block above it, so its footprint on everyone else grows with that count."""
    return [float(groups - g) ** power for g in range(groups)]


@torch.no_grad()
def lasso_thresholds(opt: torch.optim.Optimizer, lasso: list[list[torch.Tensor]], lr: float,
                     alpha: float, depth_power: float = ALPHA_DEPTH) -> list[float]:
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


