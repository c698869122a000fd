"""The object-class setting (issue 36): the classifier's training script, on tiny data."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("train_objects",
                                                  ROOT / "scripts" / "train_objects.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_objects"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _data(n: int = 48) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    def part(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, 256, (k, 3, 32, 32), dtype=torch.uint8, generator=g),
                torch.arange(k) % 10)
    (tx, ty), (vx, vy), (sx, sy) = part(n), part(20), part(20)
    return {"train_x": tx, "train_y": ty, "val_x": vx, "val_y": vy, "test_x": sx, "test_y": sy}


def test_crop_flip_takes_a_shifted_window_of_the_picture_or_its_mirror() -> None:
    t = _script()
    x = torch.arange(32, dtype=torch.uint8).repeat(2, 3, 32, 1) * 8  # columns 0, 8, ..., 248
    out = t.crop_flip(x, torch.Generator().manual_seed(0), pad=4)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    for row in out[:, 0, 0]:  # each picture: 32 consecutive columns (reflected at the edges)
        cols = (row * 255 / 8).round().long()
        steps = (cols[1:] - cols[:-1]).abs()
        assert steps.max() <= 1 and cols.min() >= 0 and cols.max() <= 31


def test_a_run_split_over_two_sittings_equals_one_run(tmp_path: Path) -> None:
    """Resuming from state.pt continues exactly where the first sitting stopped."""
    t = _script()
    r = t.ObjectsRecipe(width=64, depth=2, patch=8, epochs=2, batch=16, warmup=1)
    data = _data()
    one = t.train(r, tmp_path / "one", "cpu", data=data)
    split = tmp_path / "split"
    first = t.train(r, split, "cpu", max_minutes=1e-9, data=data)  # stops after epoch 1
    assert len(first["epochs"]) == 1
    both = t.train(r, split, "cpu", data=data)
    assert len(both["epochs"]) == 2
    for a, b in zip(one["epochs"], both["epochs"]):
        assert abs(a["loss"] - b["loss"]) < 1e-6 and a["val_accuracy"] == b["val_accuracy"]
    sa = torch.load(tmp_path / "one" / "state.pt", weights_only=True)["model"]
    sb = torch.load(split / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (split / "best.safetensors").exists()
