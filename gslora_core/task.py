"""One forgetting task as its training loop sees it: what was planned and drawn once (``Task``),
and where its pictures enter the network (``Inputs``).

``Task`` is frozen: everything in it is decided before the first step. What changes while the
task trains is which blocks train, and so where a picture's pass may start: while a task's
groups are exactly zero below block ``k``, every picture's state at block ``k`` is the same at
every step, so ``Inputs`` runs from states cached there (``states.StateCache``) instead of the
whole backbone: a one-block task trains on one row per picture. ``Inputs.start_at`` is the one
place that moves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .config import ForgetConfig
from .data import Gallery
from .evaluation import Roles, Snapshot, snapshot, snapshot_from
from .metrics import embed_all
from .model import Recognizer
from .states import (
    Grids,
    MidStates,
    StateCache,
    Stem,
    below_block,
    embed_states,
)

# The shortcut is always taken (no result ever turned it off); tests turn it off to check it
# gives the full pass's numbers.
CACHE_STATES = True


class Pools(NamedTuple):
    """Gallery training pictures a task draws its batches from, by role."""

    retain: torch.Tensor
    forget: torch.Tensor
    earlier: torch.Tensor  # identities forgotten in earlier tasks (replayed)


@dataclass(frozen=True)
class Task:
    """One task's plan, drawn once: who plays which role, the pictures it may use, the
    threshold it works against, and what trains (a task's LoRA, or every weight)."""

    model: Recognizer
    gallery: Gallery
    cfg: ForgetConfig
    roles: Roles
    before: Snapshot
    pools: Pools
    prototypes: torch.Tensor  # GS-LoRA++: per class, the mean embedding of its K-shot pictures
    gen: torch.Generator  # every batch is drawn from it, in the order ``objective`` draws
    tau: float  # the recognizer's open-set threshold
    unknown: bool  # ``stopping.pushes_unknown``: pushed to "not recognized" too
    grids: Grids  # the gallery's token grids below the top, from ``before`` or on first need
    # The BNDs it asks, in order: ``ForgetConfig.bnd``, or when its change is gated ``gate_bnd``
    # then ``gate_bnd_fallback`` (``schedules.Release`` takes the next one when stuck).
    bnds: tuple[float, ...]
    name: str = ""  # the task's adapters ("" for full fine-tuning)
    params: tuple[torch.Tensor, ...] = ()  # what trains
    groups: tuple[list[torch.Tensor], ...] = ()  # LoRA groups, one per block (none: full)
    lasso: tuple[list[torch.Tensor], ...] = ()  # their B matrices (fixed schedule only)


class Inputs:
    """Where a task's pictures enter the network: the whole backbone, or states cached at the
    first block that trains (training pictures; test pictures for the live plot)."""

    def __init__(self, task: Task):
        self.task = task
        self.cache: StateCache | None = None
        self.test_cache: StateCache | None = None
        self.seeded = False
        # Per training picture and view, the gate's e0 (``Recognizer.ungated``): no step moves
        # it, so it is computed once a task rather than by a muted pass in every step and check.
        self.e0: dict[tuple[int, bool], torch.Tensor] = {}

    def start_at(self, block: int | None, seeded: bool = False) -> None:
        """Training pictures from states at ``block`` from now on (None: the whole backbone);
        ``seeded``: every block under ``block`` is as the task found it, so states the
        "before" snapshot kept there may fill the cache."""
        if not CACHE_STATES or block is None:
            return
        block = min(block, self.task.model.gated_from())  # under every gated change
        self.seeded = seeded
        self.cache = StateCache(self.task.model, self.task.gallery.train_x, block,
                                seed=self._seed("train", block), stem=self._stem("train", block))

    def _seed(self, part: str, block: int) -> MidStates | None:
        """States kept at ``block`` that may fill a cache: the "before"'s at the top block, its
        grids' at the block below (only while ``seeded``)."""
        task, top = self.task, len(self.task.model.blocks) - 1
        if not self.seeded:
            return None
        if block == top:
            return task.before.top_train if part == "train" else task.before.top_test
        if block != below_block(task.model):
            return None
        return task.grids.below(task.model, task.gallery, part)

    def _stem(self, part: str, block: int) -> Stem | None:
        task = self.task
        if block >= len(task.model.blocks) - 1:
            return None
        return task.grids.stem(task.model, task.gallery, part)

    def embed(self, idx: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """Training embeddings of gallery pictures ``idx`` (mirrored if ``flip``)."""
        model = self.task.model
        if self.cache is not None:
            return model.embed_from_mid(self.cache(idx, flip), self.cache.block,
                                        self._e0(idx, flip))
        x = self.task.gallery.train_x[idx].to(model.device)
        return model.embed(x.flip(-1) if flip else x)

    def answer(self, idx: torch.Tensor) -> torch.Tensor:
        """The embedding the recognizer answers with (both views' unit embeddings averaged, as
        ``Recognizer.embed_flip``), with gradients: the forget terms act on what the stopping
        rule and every answer read, not on one view of it."""
        model = self.task.model
        if self.cache is not None:
            return model.answer_from_mid(self.cache(idx, False), self.cache(idx, True),
                                         self.cache.block, self._views_e0(idx))
        return model.embed_flip(self.task.gallery.train_x[idx].to(model.device))

    def _e0(self, idx: torch.Tensor, flip: bool) -> torch.Tensor | None:
        """The gate's e0 of training pictures ``idx`` (one view; kept in ``self.e0``), None
        when no task is gated, the pictures enter whole or there are none."""
        model, keys = self.task.model, idx.tolist()
        if self.cache is None or not model.gated_tasks or not keys:
            return None
        missing = [i for i in dict.fromkeys(keys) if (i, flip) not in self.e0]
        if missing:
            h = self.cache(torch.tensor(missing), flip)
            self.e0.update(zip(((i, flip) for i in missing),
                               model.ungated_from_mid(h, self.cache.block)))
        return torch.stack([self.e0[(i, flip)] for i in keys])

    def _views_e0(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        e0 = self._e0(idx, False)
        return None if e0 is None else (e0, self._e0(idx, True))

    @torch.no_grad()
    def openness(self, idx: torch.Tensor) -> torch.Tensor:
        """Per training picture ``idx``, its gate's opening from both views
        (``Recognizer.openness``; 1 where no task is gated)."""
        model = self.task.model
        e0 = self._views_e0(idx) or model.ungated(lambda: self.embed(idx),
                                                   lambda: self.embed(idx, flip=True))
        return model.openness(*e0).cpu()

    @torch.no_grad()
    def judged(self, idx: torch.Tensor) -> torch.Tensor:
        """Evaluation embeddings (both views) of training pictures ``idx``."""
        model = self.task.model
        if self.cache is not None:
            return embed_states(model, self.cache.states(idx), e0=self._views_e0(idx))
        return embed_all(model, self.task.gallery.train_x[idx])

    @torch.no_grad()
    def test_cosines(self) -> torch.Tensor:
        """Every test picture's cosines to every class, from the same block as training."""
        model, test_x = self.task.model, self.task.gallery.test_x
        if self.cache is None:
            return model.head.cosine(embed_all(model, test_x).to(model.device)).cpu()
        block = self.cache.block
        if self.test_cache is None or self.test_cache.block != block:
            self.test_cache = StateCache(model, test_x, block, seed=self._seed("test", block),
                                         stem=self._stem("test", block))
        emb = embed_states(model, self.test_cache.states(torch.arange(len(test_x))))
        return model.head.cosine(emb.to(model.device)).cpu()


def after_snapshot(task: Task, lowest: int) -> Snapshot:
    """The gallery after the task, ``lowest`` the lowest block it changed: from the top
    block's states the "before" kept when it changed the top block alone, from the token grids
    at the block below when nothing under that moved, else from the stem tokens (a hybrid's
    trunk runs no more); the grids that still hold go on to the next task."""
    before, grids, top = task.before, task.grids, len(task.model.blocks) - 1
    lowest = min(lowest, task.model.gated_from())  # a gate reads states under its change
    if not CACHE_STATES:
        return snapshot(task.model, task.gallery)
    if lowest >= top and before.top_test is not None and before.top_train is not None:
        return snapshot_from(task.model, before.top_test, before.top_train, grids)
    held = lowest >= below_block(task.model)  # the states kept under the top still hold
    return snapshot(task.model, task.gallery, grids=grids if held else grids.stems_only())
