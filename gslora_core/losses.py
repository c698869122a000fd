"""GS-LoRA's losses: retain CE, bounded forget loss, group lasso, the GS-LoRA++ prototype term,
and the proximal group soft-threshold that turns group lasso into exact zeros."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .lora import group_norm


def retain_loss(margin_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_r: plain CE on CosFace margin logits of retained identities."""
    return F.cross_entropy(margin_logits, labels)


def forget_margin(margin_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per picture, ``logsumexp_{j != y} z_j - z_y``: how far the picture is from being its own
    class. CE = softplus(this), so once a picture is misrecognized the two agree (CE 30 ~ 30).

    Why not the CE itself: at s = 64 a face the recognizer is sure of has CE ~ 1e-14 and a
    gradient of the same size, which Adam's epsilon then erases: such faces were never
    forgotten. This margin has a gradient of 1 on the true logit however sure the model is."""
    true = margin_logits.gather(1, labels[:, None]).squeeze(1)
    others = margin_logits.scatter(1, labels[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - true


def bounded_forget_loss(margin_logits: torch.Tensor, labels: torch.Tensor,
                        bnd: float) -> torch.Tensor:
    """L_f = mean_i ReLU(BND - m_i), m_i = ``forget_margin``: push each forget picture away from
    its class, but stop pushing a picture once its margin (its CE, by then) passes BND.

    Without the bound the loss grows without limit and wrecks the retained identities. The
    authors bound the batch-mean CE instead; then a few pictures far past BND end the push while
    others are still recognized (on the sample gallery that left 1 of 8 test pictures of a
    second task recognized; the per-picture bound left none)."""
    return F.relu(bnd - forget_margin(margin_logits, labels)).mean()


def keep_loss(emb: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """mean_i (1 - cos(e_i, a_i)): a retained picture's embedding held where it was when the
    task started (``anchor``: unit embeddings then).

    Why: the retain CE only keeps each retained face nearer its own person than the others; its
    cosine to its person can still sink, and at an open-set threshold a retained face below it
    is "not recognized". Holding the embedding itself keeps the answer and the score."""
    return (1 - F.cosine_similarity(emb, anchor, dim=1)).mean()


def unknown_loss(cos: torch.Tensor, goal: float, s: float) -> torch.Tensor:
    """Push a forget picture to "not recognized": ``s * mean_i ReLU(smax_j cos_ij - goal)``,
    ``smax`` the log-sum-exp maximum at the head's scale ``s`` over *every* person, ``goal`` a
    margin below the recognizer's open-set threshold.

    Why: the bounded margin loss only moves a picture away from its own person, and it does so
    by raising the others; a forgotten face then comes out as someone else's name. This term
    lowers whichever person the picture is nearest, its own or another, until none clears the
    threshold; at zero loss the picture is answered "not recognized"."""
    smax = torch.logsumexp(s * cos, dim=1) / s
    return (s * F.relu(smax - goal)).mean()


def group_lasso(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """L_struct = sum_g sqrt(sum_{M in g} ||M||_F^2)."""
    return torch.stack([group_norm(g) for g in groups]).sum()


@torch.no_grad()
def proximal_group_step(groups: list[list[torch.Tensor]],
                        threshold: float | list[float]) -> list[bool]:
    """Group soft-threshold g <- g * max(0, 1 - t_g/||g||), in place.

    It is the exact proximal operator of ``t_g * ||g||``: groups whose norm is at most their
    threshold become exactly zero, larger ones shrink by ``t_g`` in norm. ``threshold`` is one
    value for all groups or one per group. Returns which groups are zero afterwards."""
    thresholds = threshold if isinstance(threshold, list) else [threshold] * len(groups)
    zero = []
    for g, t in zip(groups, thresholds):
        norm = float(group_norm(g))
        scale = max(0.0, 1.0 - t / norm) if norm > 0 else 0.0
        for p in g:
            p.mul_(scale)
        zero.append(scale == 0.0)
    return zero


def prototype_loss(emb: torch.Tensor, prototypes: torch.Tensor, bnd_pro: float) -> torch.Tensor:
    """GS-LoRA++ (the authors' term): ReLU(BND_pro - KL(softmax(p_y) || softmax(z))) on forget
    pictures, with ``z`` the picture's backbone embedding and ``p_y`` its class's prototype (mean
    embedding of the task's K-shot pictures, see ``forgetting.shot_prototypes``).

    Raising the KL moves a forgotten face's embedding away from where its class sits, not only
    its answer; the softmax is over embedding dimensions, as in the authors' code. (A KL over head
    logits at s = 64 would be near one-hot: a second bounded CE, not a prototype term.)"""
    kl = F.kl_div(F.log_softmax(emb, dim=1), F.log_softmax(prototypes, dim=1),
                  reduction="batchmean", log_target=True)
    return F.relu(bnd_pro - kl)
