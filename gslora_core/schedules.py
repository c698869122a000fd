"""The two schedules as small policies over the one training loop (``loop.train``): which blocks
train, what learning rate and group-sparsity alpha a step gets, when the stopping rule is
checked, and when a task ends.

"release" (the default) trains the top block's adapter alone; if the blocks in use have made no
progress on the stopping rule for ``stage_steps``, the task first asks its next, lower BND if it
has one (a gated task: ``gate_bnd_fallback``), and then releases the next block down (its
adapter starts from B = 0, so nothing jumps); it ends as soon as the rule holds, or at a cap on
steps or seconds. Its rate is constant, or (``anneals``) a cosine from ``lr`` to 0 at the step
cap, and then no block is released. "fixed" is the earlier schedule, the authors' shape: a group lasso
over every block picks the blocks, then a refit of a fixed count of steps trains the ones it
kept.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import lora
from .config import ForgetConfig
from .lasso import adam_group_scale, depth_weights

# Every this many checks all the task's pictures are judged again (between them only those not
# yet past the rule): progress, the release of a block and the stop go by these full checks.
FULL_CHECK_EVERY = 4


class Blocks(NamedTuple):
    """Which groups train from now on, and where the pictures' pass starts: states cached at
    ``cache_at`` (None: the whole backbone); ``seeded``: from the "before" snapshot's states."""

    trained: list[bool]
    cache_at: int | None
    seeded: bool = False


class Schedule:
    """What the training loop asks its schedule, step by step; these answers change nothing
    (everything trains from the whole backbone, the rule is never checked, no cap)."""

    answer = False  # the forget terms act on the answer's embedding (both views)
    keeps = False  # the keep term holds retained embeddings where they started
    checks = False  # the stopping rule is checked as the task goes

    def __init__(self, cfg: ForgetConfig, depth: int, sparse: bool,
                 bnds: tuple[float, ...] = ()):
        """``sparse``: the task trains LoRA groups (not every weight), so blocks can be
        released or held; ``bnds``: the BNDs the task asks, in order (``Task.bnds``; none:
        ``cfg.bnd``)."""
        self.cfg, self.depth, self.sparse = cfg, depth, sparse
        self.bnds = list(bnds or (cfg.bnd,))  # the first is asked now

    @property
    def bnd(self) -> float:
        """The BND the loss and the stopping rule ask now."""
        return self.bnds[0]

    @property
    def blocks(self) -> int:
        """Blocks in use, as each step reports it."""
        return 0

    def start(self) -> Blocks | None:
        """Before the first step: which blocks train (None: all, from the whole backbone)."""
        return None

    def begin(self, status: dict | None) -> None:
        """The stopping rule's status before the first step (None: not checked)."""

    def rates(self, step: int) -> tuple[float, float]:
        """(learning rate, alpha) of step ``step`` (0-based)."""
        return self.cfg.lr, 0.0

    def cap(self, step: int, seconds: float) -> str | None:
        """Before step ``step + 1``, ``seconds`` into training: the cap that ends the task. Every
        schedule keeps ``max_seconds`` (on ZeroGPU it is the call's reservation)."""
        if self.cfg.max_seconds and seconds > self.cfg.max_seconds:
            return "time cap"
        return None

    def refit(self, step: int, opt: torch.optim.Optimizer, lasso) -> Blocks | None:
        """Before step ``step + 1``: other blocks to train from now on, if any."""
        return None

    def check_at(self, step: int) -> bool | None:
        """After step ``step``: None (no check), or whether the check judges every picture."""
        return None

    def after_check(self, step: int, status: dict) -> tuple[str | None, Blocks | None]:
        """After a check: the task's end ("done"), or other blocks to train from now on."""
        return None, None

    def final(self, step: int) -> str | None:
        """After step ``step``: the end of a task whose length is fixed."""
        return None

    def blocks_used(self, task_name: str, blocks) -> int:
        """Blocks the task trained, counted from the top, as its stop reports them."""
        return self.blocks


def anneals(cfg: ForgetConfig, kind: str) -> bool:
    """Whether a release task's rate decays over the task (``ForgetConfig.lr_decay``), which
    then keeps the blocks it starts with (``Release``). "auto": for object classes, whose
    one-block stage at a constant 1e-2 swings between 1 and 130 pictures left for 300 steps and
    never settles, so the task released blocks that cost 10x a step; decayed, it ends in one
    block (docs/objects.md). Not for faces: on their validation pictures it left more held-back
    pictures named (bench/results/tuning/large_tasks)."""
    if cfg.schedule != "release":
        return False
    return cfg.lr_decay == "cosine" or (cfg.lr_decay == "auto" and kind == "objects")


class Release(Schedule):
    """Blocks released from the top as the task needs them; done when the rule holds.

    Only at a constant rate: at a decaying one (``anneals``) the task keeps the blocks it
    starts with. There the count of pictures left swings until the rate is low, so a stall is
    no sign that the blocks cannot finish, and by the time it would be, too few steps are left
    for a released block to pay for its 10x dearer steps. On CIFAR-10's continual sequences
    (validation pictures) the releases cost 1.3-1.7 blocks and 13-39 s a task on average for
    no better Acc_f, Acc_o or Acc_r than one block in 3-8 s (bench/results/tuning/
    objects_continual)."""

    answer = keeps = checks = True

    def __init__(self, cfg: ForgetConfig, depth: int, sparse: bool, anneal: bool = False,
                 bnds: tuple[float, ...] = ()):
        super().__init__(cfg, depth, sparse, bnds)
        start = min(cfg.start_blocks, depth) if cfg.start_blocks and sparse else depth
        self.first = depth - start  # the lowest block that trains
        self.best, self.best_at = 0, 0  # progress: the fewest pictures left, and when
        self.anneal = anneal

    @property
    def releases(self) -> bool:
        """Whether the task may release blocks: a sparse one at a constant rate."""
        return self.sparse and not self.anneal

    @property
    def blocks(self) -> int:
        return self.depth - self.first

    def _use(self) -> Blocks:
        trained = [g >= self.first for g in range(self.depth)]
        return Blocks(trained, self.first, seeded=True)

    def start(self) -> Blocks | None:
        return self._use() if self.sparse else None

    def begin(self, status: dict | None) -> None:
        self.best = status["pictures_left"] if status else 0

    def cap(self, step: int, seconds: float) -> str | None:
        return "step cap" if step >= self.cfg.steps else super().cap(step, seconds)

    def rates(self, step: int) -> tuple[float, float]:
        """Annealed: the fixed schedule's cosine over the task, without a refit (``lr_at``)."""
        return (lr_at(self.cfg, step, self.cfg.steps) if self.anneal else self.cfg.lr), 0.0

    def check_at(self, step: int) -> bool | None:
        """Every ``check_every`` steps and at the cap; every ``FULL_CHECK_EVERY``-th judges
        every picture again."""
        cfg = self.cfg
        if step % cfg.check_every and step != cfg.steps:
            return None
        return step % (FULL_CHECK_EVERY * cfg.check_every) == 0 or step == cfg.steps

    def after_check(self, step: int, status: dict) -> tuple[str | None, Blocks | None]:
        """"done" when the rule holds on every picture; else, if the task releases blocks and
        the blocks in use made no progress for ``stage_steps`` (a full check's count): the
        next BND if one is left (the wider gap is out of their reach), or else the next block
        down. Neither at the last step (a block released then would never train)."""
        if not status["full"]:
            return None, None
        if status["pictures_left"] < self.best:
            self.best, self.best_at = status["pictures_left"], step
        if status["pictures_left"] == 0:
            return "done", None
        stuck = step - self.best_at >= self.cfg.stage_steps
        if not (stuck and self.releases and step < self.cfg.steps):
            return None, None
        if len(self.bnds) > 1:
            self.bnds.pop(0)  # patience starts again, at the lower BND
            self.best_at = step
            return None, None
        if self.first > 0:
            self.first -= 1  # the blocks in use cannot finish: one more
            self.best_at = step
            return None, self._use()
        return None, None


def lr_at(cfg: ForgetConfig, step: int, refit_from: int) -> float:
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


class Fixed(Schedule):
    """``sparsity_warmup`` of the steps dense (alpha = 0), then the group lasso (proximal steps
    on each block's B matrices), then the last ``refit`` share as a relaxed group lasso: no
    sparsity, the groups that are exactly zero by then held at zero, a warm restart of the
    learning rate, and cached states below the first active block. Its steps report 0 blocks
    in use: the lasso decides them, not the schedule."""

    def __init__(self, cfg: ForgetConfig, depth: int, sparse: bool,
                 bnds: tuple[float, ...] = ()):
        super().__init__(cfg, depth, sparse, bnds)
        self.warm = int(round(cfg.sparsity_warmup * cfg.steps))
        self.refit_from = cfg.steps - int(round(cfg.refit * cfg.steps))

    def rates(self, step: int) -> tuple[float, float]:
        alpha = self.cfg.alpha if self.warm <= step < self.refit_from else 0.0
        return lr_at(self.cfg, step, self.refit_from), alpha

    def refit(self, step: int, opt: torch.optim.Optimizer, lasso) -> Blocks | None:
        """At the refit's first step: hold the groups that are exactly zero (their block stays
        untouched) and, when every block below the first active one is held, start from cached
        states there. If the lasso left no block at all (alpha near 1), the strongest one
        (depth-weighted, the lasso's own reference) finishes the task alone."""
        if step != self.refit_from or not self.sparse:
            return None
        zero = [n == 0.0 for n in lora.norms_of(lasso)]
        if all(zero):
            weights = depth_weights(len(zero))
            scales = adam_group_scale(opt, lasso)
            zero[max(range(len(zero)), key=lambda g: scales[g] / weights[g])] = False
        first = zero.index(False)
        return Blocks([not z for z in zero], first if first > 0 else None)

    def final(self, step: int) -> str | None:
        return "fixed schedule" if step == self.cfg.steps else None

    def blocks_used(self, task_name: str, blocks) -> int:
        """Blocks from the lowest one the task changed to the top."""
        norms = lora.delta_norms(blocks, task_name) if self.sparse else []
        return len(norms) - next((i for i, n in enumerate(norms) if n != 0.0), len(norms))


def schedule_for(cfg: ForgetConfig, depth: int, sparse: bool, anneal: bool = False,
                 bnds: tuple[float, ...] = ()) -> Schedule:
    """The policy of ``cfg.schedule`` (``anneal``: a release task's rate decays, ``anneals``;
    ``bnds``: the BNDs the task asks, ``Task.bnds``)."""
    if cfg.schedule == "release":
        return Release(cfg, depth, sparse, anneal, bnds)
    return Fixed(cfg, depth, sparse, bnds)
