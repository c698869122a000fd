"""Hidden states below a task's first active block, computed once (the sparse task's shortcut).

LoRA sits on the blocks' MLPs only. While a task's groups are exactly zero below block ``k``,
every picture's state at the input of block ``k``'s MLP (``Recognizer.mid_state``) is the same
at every step and before and after the task: computed once, it lets the task train, check its
stopping rule and measure the gallery through the active MLPs and the blocks above only. At the
top block only the class token's row is kept (``Recognizer.kept_rows``), so a one-block task runs
on one 192-wide row per picture. ``Recognizer.embed_from_mid`` finishes the pass; the result is
the full pass's, as tests/test_states.py checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .model import Recognizer

CHUNK = 128


@dataclass
class MidStates:
    """States at ``block``'s MLP input of a set of pictures, as they are and mirrored."""

    block: int
    plain: torch.Tensor  # (N, T, D) on CPU; T = 1 at the top block
    flip: torch.Tensor


@torch.no_grad()
def mid_states(model: Recognizer, images: torch.Tensor, block: int,
               chunk: int = CHUNK, on_done: Callable[[int], None] | None = None) -> MidStates:
    """Both views' states of ``images`` (uint8) at ``block`` (the evaluation pass's first half).
    ``on_done`` hears the count of pictures done after each chunk."""
    model.eval()
    plain, flip = [], []
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].to(model.device)
        plain.append(model.kept_rows(model.mid_state(x, block), block).cpu())
        flip.append(model.kept_rows(model.mid_state(x.flip(-1), block), block).cpu())
        if on_done:
            on_done(min(i + chunk, len(images)))
    empty = torch.zeros((0, 1, model.cfg.embed_dim))
    return MidStates(block, torch.cat(plain) if plain else empty,
                     torch.cat(flip) if flip else empty)


@torch.no_grad()
def embed_states(model: Recognizer, states: MidStates, chunk: int = CHUNK) -> torch.Tensor:
    """Evaluation embeddings from states: the mean of both views' unit embeddings, as
    ``Recognizer.embed_flip`` gives from the pictures."""
    model.eval()
    out = []
    for i in range(0, len(states.plain), chunk):
        a = model.embed_from_mid(states.plain[i:i + chunk].to(model.device), states.block)
        b = model.embed_from_mid(states.flip[i:i + chunk].to(model.device), states.block)
        out.append(((F.normalize(a, dim=-1) + F.normalize(b, dim=-1)) / 2).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, model.cfg.embed_dim))


class StateCache:
    """States at ``block`` of gallery pictures ``images``, per picture and view, filled on first
    use (a large gallery costs only the pictures a task draws). ``seed`` fills it from states
    computed before (a snapshot's top-block states cost a task nothing)."""

    def __init__(self, model: Recognizer, images: torch.Tensor, block: int,
                 seed: MidStates | None = None, chunk: int = CHUNK):
        self.model, self.images, self.block, self.chunk = model, images, block, chunk
        self.rows: dict[tuple[int, bool], torch.Tensor] = {}
        self.computed = 0  # pictures x views run through the blocks below (the cost it saves)
        if seed is not None and seed.block == block and len(seed.plain) == len(images):
            device = model.device
            self.rows.update({(j, False): r for j, r in enumerate(seed.plain.to(device))})
            self.rows.update({(j, True): r for j, r in enumerate(seed.flip.to(device))})

    @torch.no_grad()
    def _fill(self, missing: list[int], flip: bool) -> None:
        for i in range(0, len(missing), self.chunk):
            part = missing[i:i + self.chunk]
            x = self.images[torch.tensor(part)].to(self.model.device)
            h = self.model.mid_state(x.flip(-1) if flip else x, self.block)
            for j, row in zip(part, self.model.kept_rows(h, self.block)):
                self.rows[(j, flip)] = row
            self.computed += len(part)

    def __call__(self, idx: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """(len(idx), T, D) on the model's device, in the order of ``idx``."""
        wanted = idx.tolist()
        missing = sorted({j for j in wanted if (j, flip) not in self.rows})
        if missing:
            self._fill(missing, flip)
        if not wanted:
            return torch.zeros((0, 1, self.model.cfg.embed_dim), device=self.model.device)
        return torch.stack([self.rows[(j, flip)] for j in wanted])

    def states(self, idx: torch.Tensor) -> MidStates:
        """Both views of pictures ``idx`` as ``MidStates`` (for ``embed_states``)."""
        return MidStates(self.block, self(idx, False), self(idx, True))
