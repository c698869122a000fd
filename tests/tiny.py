"""A tiny random recognizer and gallery for the engine's unit tests (milliseconds each)."""
from __future__ import annotations

import torch

from gslora_core import lora
from gslora_core.config import ForgetConfig, ModelConfig
from gslora_core.data import Gallery
from gslora_core.forgetting import TaskResult, finetune_forget, forget, plan_task
from gslora_core.model import Recognizer

NAMES = ["ann", "bob", "cid", "dee"]


def tiny_model(seed: int = 0) -> Recognizer:
    torch.manual_seed(seed)
    return Recognizer(ModelConfig.tiny(), NAMES).eval()


def images(n: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def tiny_gallery(per_class: int = 6, seed: int = 2) -> Gallery:
    g = torch.Generator().manual_seed(seed)
    n = per_class * len(NAMES)
    y = torch.arange(len(NAMES)).repeat_interleave(per_class)
    return Gallery(names=list(NAMES),
                   train_x=torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                   train_y=y.clone(),
                   test_x=torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                   test_y=y.clone())


def randomise_task(model: Recognizer, task: str, seed: int = 3) -> None:
    """Give a task's B matrices non-zero values, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for group in lora.group_params(model.blocks, task):
            for p in group:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)



def forget_people(model: Recognizer, gallery: Gallery, names: list[str], cfg: ForgetConfig,
                  earlier: list[str] | None = None, **kw) -> TaskResult:
    """``forgetting.forget`` of people by name: the tests' shorthand for plan, then forget."""
    return forget(model, gallery, plan_task(model, gallery, names, earlier), cfg, **kw)


def finetune_people(model: Recognizer, gallery: Gallery, names: list[str], cfg: ForgetConfig,
                    earlier: list[str] | None = None, **kw) -> dict:
    """``forgetting.finetune_forget`` of people by name (no task history: ``earlier`` says who
    it forgot before)."""
    plan = plan_task(model, gallery, names, earlier if earlier is not None else [])
    return finetune_forget(model, gallery, plan, cfg, **kw)
