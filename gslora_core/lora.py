"""LoRA adapters on the FFN linears, one adapter set per forgetting task.

``LoRALinear`` wraps a frozen ``nn.Linear`` and adds ``(lora_alpha / r) * B(A x)`` for every task
it holds. Tasks stay un-merged until export so that each task's group norms can be shown and the
last task rolled back; ``merge_tasks`` folds them into plain weights (identical outputs).

A *group* is all LoRA matrices of one transformer block for one task (A and B of fc1 and fc2).
The group lasso acts on a group's B matrices (``lasso_params``): B = 0 means the block is
untouched by the task, while A stays alive so that the block can come back.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

LORA_TARGETS = ("mlp.fc1", "mlp.fc2")
# Tasks whose adapters are skipped in this thread (``muted``): a context variable, not a field
# of the layers, so a page's other thread answering with the same model is never affected.
_MUTED: ContextVar[frozenset[str]] = ContextVar("lora_muted", default=frozenset())


def muted_now() -> frozenset[str]:
    """The tasks muted in this thread now (``muted``)."""
    return _MUTED.get()


@contextmanager
def muted(tasks: Iterable[str]) -> Iterator[None]:
    """Within the block, every LoRALinear (in this thread) leaves ``tasks``' adapters out: the
    recognizer as it was without them (``gate``'s ``e0``)."""
    token = _MUTED.set(_MUTED.get() | frozenset(tasks))
    try:
        yield
    finally:
        _MUTED.reset(token)


class LoRALinear(nn.Module):
    """A frozen linear layer plus low-rank adapters keyed by task name (peft-style)."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        self.scaling: dict[str, float] = {}

    @property
    def tasks(self) -> list[str]:
        return list(self.lora_A.keys())

    def add_adapter(self, task: str, rank: int, lora_alpha: float,
                    generator: torch.Generator | None = None) -> None:
        """A ~ kaiming-uniform(a=sqrt 5), B = 0, so a fresh adapter changes nothing."""
        if task in self.lora_A:
            raise ValueError(f"adapter {task!r} already exists")
        w = self.base.weight
        a = torch.empty(rank, self.base.in_features, device=w.device, dtype=w.dtype)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        b = torch.zeros(self.base.out_features, rank, device=w.device, dtype=w.dtype)
        self.lora_A[task] = nn.Parameter(a)
        self.lora_B[task] = nn.Parameter(b)
        self.scaling[task] = lora_alpha / rank

    def remove_adapter(self, task: str) -> None:
        del self.lora_A[task]
        del self.lora_B[task]
        del self.scaling[task]

    def delta_weight(self, task: str) -> torch.Tensor:
        return self.scaling[task] * (self.lora_B[task] @ self.lora_A[task])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        off = _MUTED.get()
        for task, a in self.lora_A.items():
            if task not in off:
                y = y + self.scaling[task] * ((x @ a.t()) @ self.lora_B[task].t())
        return y


def _get_parent(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    parent_name, _, child = dotted.rpartition(".")
    return root.get_submodule(parent_name) if parent_name else root, child


def inject_lora(blocks: nn.Sequential, targets: tuple[str, ...] = LORA_TARGETS) -> None:
    """Wrap each block's target linears in LoRALinear (idempotent)."""
    for block in blocks:
        for name in targets:
            parent, child = _get_parent(block, name)
            layer = getattr(parent, child)
            if isinstance(layer, LoRALinear):
                continue
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"{name} is {type(layer).__name__}, expected nn.Linear")
            setattr(parent, child, LoRALinear(layer))


def lora_layers(block: nn.Module) -> list[LoRALinear]:
    return [m for m in block.modules() if isinstance(m, LoRALinear)]


def has_lora(blocks: nn.Sequential) -> bool:
    return any(lora_layers(b) for b in blocks)


def add_task(blocks: nn.Sequential, task: str, rank: int, lora_alpha: float,
             seed: int = 0) -> None:
    """Add one adapter set (one group per block) for a new forgetting task."""
    inject_lora(blocks)
    gen = torch.Generator().manual_seed(seed)
    for block in blocks:
        for layer in lora_layers(block):
            # kaiming_uniform_ with a generator must draw on the generator's device (CPU).
            layer.add_adapter(task, rank, lora_alpha, generator=gen if layer.base.weight.is_cpu else None)


def remove_task(blocks: nn.Sequential, task: str) -> None:
    """Drop one task's adapters; with none left, the plain linears come back, so the model (and
    its saved checkpoint) is exactly what it was before the first task."""
    for block in blocks:
        for layer in lora_layers(block):
            layer.remove_adapter(task)
    if not task_names(blocks):
        _unwrap(blocks, lambda layer: layer.base)


def task_names(blocks: nn.Sequential) -> list[str]:
    for block in blocks:
        for layer in lora_layers(block):
            return layer.tasks
    return []


@torch.no_grad()
def merge_tasks(blocks: nn.Sequential, tasks: Iterable[str]) -> None:
    """Fold ``tasks``' adapters into the base weights (the others stay adapters); with none
    left, the plain linears come back."""
    tasks = list(tasks)
    for block in blocks:
        for layer in lora_layers(block):
            for task in tasks:
                layer.base.weight += layer.delta_weight(task)
                layer.remove_adapter(task)
    if not task_names(blocks):
        _unwrap(blocks, lambda layer: layer.base)


def _unwrap(blocks: nn.Sequential, plain: Callable[[LoRALinear], nn.Linear]) -> None:
    """Replace every LoRALinear wrapper by the plain linear ``plain(wrapper)`` gives."""
    for block in blocks:
        for name in LORA_TARGETS:
            parent, child = _get_parent(block, name)
            layer = getattr(parent, child)
            if isinstance(layer, LoRALinear):
                setattr(parent, child, plain(layer))


def group_params(blocks: nn.Sequential, task: str) -> list[list[nn.Parameter]]:
    """The groups of one task: per block, the A and B matrices of fc1 and fc2."""
    return [[p for layer in lora_layers(block) for p in (layer.lora_A[task], layer.lora_B[task])]
            for block in blocks]


def lasso_params(blocks: nn.Sequential, task: str) -> list[list[nn.Parameter]]:
    """What the group lasso acts on: per block, the B matrices of fc1 and fc2.

    Why B and not (A, B): the block's change is ``B A``, zero exactly when B is zero, and
    (A, B) = (0, 0) is a stationary point of LoRA (A's gradient is proportional to B and B's to
    A), so a group zeroed there could never come back. With A left alive, B's gradient
    ``dL/dy (A x)^T`` stays nonzero and a zeroed block can revive when the loss needs it."""
    return [[layer.lora_B[task] for layer in lora_layers(block)] for block in blocks]


def group_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """sqrt(sum ||M||_F^2) over a group's matrices."""
    return torch.sqrt(sum((p.pow(2).sum() for p in params), torch.zeros((), device=params[0].device)))


@torch.no_grad()
def norms_of(groups: list[list[nn.Parameter]]) -> list[float]:
    return [float(group_norm(g)) for g in groups]


@torch.no_grad()
def delta_norm(block: nn.Module, task: str) -> float:
    """The Frobenius norm of the weight change this task makes in ``block``:
    sqrt(||dW_fc1||^2 + ||dW_fc2||^2) with dW = (lora_alpha / r) B A. Exactly 0.0 for a block
    the task leaves untouched, which is what the heatmap shows."""
    return float(group_norm([layer.delta_weight(task) for layer in lora_layers(block)]))


def delta_norms(blocks: nn.Sequential, task: str) -> list[float]:
    """Per block, ``delta_norm``."""
    return [delta_norm(block, task) for block in blocks]


def group_norms(blocks: nn.Sequential) -> list[list[float]]:
    """The task x block matrix of weight-change norms (exact zeros stay exactly 0.0)."""
    return [delta_norms(blocks, t) for t in task_names(blocks)]


def iter_task_parameters(blocks: nn.Sequential, task: str) -> Iterator[nn.Parameter]:
    for group in group_params(blocks, task):
        yield from group
