"""Hidden states at one block's input, computed once per picture (the sparse task's shortcut).

When a forgetting task's LoRA groups are exactly zero (and held there) in every block below
``block``, nothing below that block changes during the task, and a task's pictures are fixed
(no augmentation). Their tokens at ``block``'s input are then the same at every step: computed
once, they let each step run (and back-propagate) through the active blocks only. The results
are the same as the full forward pass (tests/test_engine_units.py checks it).
"""
from __future__ import annotations

import torch

from .model import Recognizer


class BlockInputCache:
    """Tokens at the input of ``blocks[block]`` for pictures of ``images``, filled on first use.

    Filled lazily, per picture drawn, so a large gallery costs only the pictures a task uses."""

    def __init__(self, model: Recognizer, images: torch.Tensor, block: int, chunk: int = 128):
        self.model, self.images, self.block, self.chunk = model, images, block, chunk
        self.rows: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def _fill(self, missing: list[int]) -> None:
        for i in range(0, len(missing), self.chunk):
            part = missing[i:i + self.chunk]
            x = self.images[torch.tensor(part)].to(self.model.device)
            for j, row in zip(part, self.model.tokens_at(x, self.block)):
                self.rows[j] = row

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """(len(idx), tokens, dim) on the model's device, in the order of ``idx``."""
        wanted = idx.tolist()
        missing = sorted(set(wanted) - self.rows.keys())
        if missing:
            self._fill(missing)
        return torch.stack([self.rows[j] for j in wanted])
