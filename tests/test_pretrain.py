"""Backbone pretraining pieces on tiny random data: pairs, verification, conv stem, distillation."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch

from gslora_core.config import ModelConfig, PretrainConfig
from gslora_core.metrics import make_pairs, verification_accuracy
from gslora_core.model import Recognizer, load_recognizer
from gslora_core.pretrain import DistillSet, pretrain, split_holdout


def test_pairs_are_balanced_spread_and_deterministic() -> None:
    labels = [0] * 30 + [1] * 2 + [2] * 2 + [3] * 1
    pairs, same = make_pairs(labels, 40, seed=3)
    again = make_pairs(labels, 40, seed=3)
    assert np.array_equal(pairs, again[0]) and np.array_equal(same, again[1])
    assert same.sum() == (~same).sum()  # chance is 50 %
    lab = np.array(labels)
    assert (lab[pairs[same, 0]] == lab[pairs[same, 1]]).all()
    assert (lab[pairs[~same, 0]] != lab[pairs[~same, 1]]).all()
    same_ids = set(lab[pairs[same, 0]].tolist())
    assert {1, 2} <= same_ids  # small identities get their pair, not only the big one
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)


def test_verification_accuracy_separable_and_random() -> None:
    labels = np.repeat(np.arange(20), 4)
    pairs, same = make_pairs(labels, 200, seed=0)
    perfect = torch.nn.functional.one_hot(torch.from_numpy(labels), 20).float()
    assert verification_accuracy(perfect, pairs, same)["accuracy"] == 1.0
    noise = torch.randn(len(labels), 16, generator=torch.Generator().manual_seed(0))
    assert verification_accuracy(noise, pairs, same)["accuracy"] < 0.75


def test_conv_stem_keeps_tokens_and_has_no_running_stats() -> None:
    cfg = replace(ModelConfig.tiny(), stem="conv")
    model = Recognizer(cfg, ["a", "b"])
    x = torch.rand(2, 3, cfg.img_size, cfg.img_size)
    assert model.embed(x).shape == (2, cfg.embed_dim)
    assert model.backbone.patch_embed.num_patches == (cfg.img_size // cfg.patch_size) ** 2
    assert not any("running" in name for name, _ in model.named_buffers())


def test_pretrain_saves_a_loadable_backbone_each_epoch(tmp_path) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (48, 40, 40, 3), dtype=torch.uint8, generator=gen)
    targets = torch.randn(48, 8, generator=gen)
    ids = [f"p{i % 12}" for i in range(48)]
    train, held = split_holdout(DistillSet(images, targets, ids), {"p0", "p1", "p2", "p3"})
    assert len(held.images) == 16 and not set(train.identities) & {"p0", "p1", "p2", "p3"}
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(epochs=2, batch_size=8, device="cpu")
    model, report = pretrain(train, held, replace(ModelConfig.tiny(), stem="conv"), cfg, out=out)
    assert [r["epoch"] for r in report["history"]] == [1, 2]
    assert 0 <= report["history"][-1]["verification"]["accuracy"] <= 1
    assert json.loads(out.with_suffix(".json").read_text())["history"] == report["history"]
    loaded = load_recognizer(out)
    assert loaded.class_names == [] and loaded.cfg.stem == "conv"
    x = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(loaded.embed(x), model.embed(x), atol=1e-6)
    # Continuing from it starts from its weights, not from a fresh initialisation.
    again, _ = pretrain(train, None, loaded.cfg, replace(cfg, epochs=1, lr=1e-12), init=loaded)
    assert torch.allclose(again.embed(x), loaded.embed(x), atol=1e-4)
