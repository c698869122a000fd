"""LoRA adapters per task (gslora_core/lora.py) on a tiny random model."""
from __future__ import annotations

import torch
from tiny import NAMES, forget_people, images, randomise_task, tiny_gallery, tiny_model

from gslora_core import lora
from gslora_core.config import ForgetConfig, TaskRecord
from gslora_core.model import merged_copy


def test_fresh_adapter_leaves_outputs_identical():
    model = tiny_model()
    x = images()
    before = model(x)
    lora.add_task(model.blocks, "task1", rank=4, lora_alpha=1.0)
    assert torch.equal(model(x), before)
    # A is random, B is zero: the adapter exists but adds nothing.
    layer = lora.lora_layers(model.blocks[0])[0]
    assert layer.lora_A["task1"].abs().sum() > 0 and layer.lora_B["task1"].abs().sum() == 0


def test_only_current_task_lora_gets_gradients():
    model = tiny_model()
    gallery = tiny_gallery()
    cfg = ForgetConfig(schedule="fixed", steps=2, batch_size=4, eval_every=0,
                       sparsity_warmup=1.0, refit=0.0)
    forget_people(model, gallery, ["ann"], cfg)
    with_grad: set[str] = set()

    def spy(point: dict) -> None:
        # Called right after the optimizer step, while this step's gradients are still there.
        with_grad.update(n for n, p in model.named_parameters()
                         if p.grad is not None and bool(p.grad.abs().sum() > 0))

    forget_people(model, gallery, ["bob"], cfg, on_progress=spy)
    task2 = {n for n, _ in model.named_parameters() if "lora_" in n and n.endswith(".task2")}
    assert with_grad == task2


def test_merged_outputs_equal_unmerged():
    model = tiny_model()
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0))
    randomise_task(model, "task1", seed=3)
    model.add_task(TaskRecord("task2", ["bob"], 4, 1.0))
    randomise_task(model, "task2", seed=4)
    x = images()
    merged = merged_copy(model)
    assert not lora.has_lora(merged.blocks)
    assert torch.allclose(merged(x), model(x), atol=1e-5)
    assert all(t.merged for t in merged.tasks)


def test_a_zero_group_keeps_a_live_A_so_the_loss_can_bring_it_back():
    """B = 0 with A alive: B's gradient is not zero (the group can revive). (A, B) = (0, 0),
    what zeroing both matrices did before, is a stationary point: no gradient at all."""
    model = tiny_model()
    lora.add_task(model.blocks, "task1", rank=4, lora_alpha=1.0)
    x, y = images(8), torch.arange(8) % len(NAMES)
    layer = lora.lora_layers(model.blocks[1])[1]
    A, B = layer.lora_A["task1"], layer.lora_B["task1"]
    assert float(B.detach().abs().sum()) == 0.0 and lora.delta_norms(model.blocks, "task1")[1] == 0.0
    A.requires_grad_(True)
    B.requires_grad_(True)
    torch.nn.functional.cross_entropy(model(x, y), y).backward()
    assert float(B.grad.abs().sum()) > 0
    with torch.no_grad():
        A.zero_()
    A.grad = B.grad = None
    torch.nn.functional.cross_entropy(model(x, y), y).backward()
    assert float(A.grad.abs().sum()) == 0.0 and float(B.grad.abs().sum()) == 0.0

