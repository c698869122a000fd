"""The train / validation / test split: deterministic, per file, stable when pictures are added."""
from __future__ import annotations

import pytest
import torch

from gslora_core.config import DataConfig
from gslora_core.data import Gallery, split_labels

LABELS = [f"Ada/pic_{i:04d}.jpg" for i in range(40)]


def parts(labels, cfg):
    train, val, test = split_labels(labels, cfg)
    return {**{s: "train" for s in train}, **{s: "val" for s in val}, **{s: "test" for s in test}}


@pytest.mark.parametrize("val", [0.0, 0.15])
def test_adding_pictures_never_moves_another(val):
    cfg = DataConfig(val_fraction=val)
    before = parts(LABELS, cfg)
    for extra in range(1, 30):
        after = parts(LABELS + [f"Ada/new_{j}.jpg" for j in range(extra)], cfg)
        assert {s: after[s] for s in LABELS} == before


def test_the_old_rank_rule_did_move_pictures():
    """Why the rule changed: with "rank", one added picture moved another between parts."""
    cfg = DataConfig(split="rank")
    before = parts(LABELS, cfg)
    moved = any({s: parts(LABELS + [f"Ada/new_{j}.jpg"], cfg)[s] for s in LABELS} != before
                for j in range(10))
    assert moved


def test_shares_and_disjoint_parts():
    many = [f"Bo/{i}.jpg" for i in range(2000)]
    train, val, test = split_labels(many, DataConfig(test_fraction=0.25, val_fraction=0.15))
    assert set(train) | set(val) | set(test) == set(many)
    assert len(set(train) & set(val)) == len(set(train) & set(test)) == len(set(val) & set(test)) == 0
    assert abs(len(test) / 2000 - 0.25) < 0.03 and abs(len(val) / 2000 - 0.15) < 0.03


def test_minimums_are_lent_from_train_and_train_never_empty():
    four = LABELS[:4]
    for seed in range(20):
        train, val, test = split_labels(four, DataConfig(min_test=2, min_val=1, split_seed=seed,
                                                         val_fraction=0.1))
        assert len(test) >= 2 and len(val) >= 1 and len(train) >= 1
    train, val, test = split_labels(LABELS[:2], DataConfig(test_fraction=0.9, min_test=0))
    assert len(train) == 1


def test_old_checkpoints_read_with_their_rule():
    assert DataConfig.from_dict({"preprocess": "mtcnn"}).split == "rank"
    assert DataConfig.from_dict(DataConfig().to_dict()).split == "hash"
    with pytest.raises(ValueError, match="leave pictures"):
        DataConfig(test_fraction=0.6, val_fraction=0.5)


def test_scored_on_validation_swaps_the_scored_pictures():
    x = torch.zeros((3, 3, 4, 4), dtype=torch.uint8)
    g = Gallery(names=["a"], train_x=x, train_y=torch.zeros(3, dtype=torch.long), test_x=x[:1],
                test_y=torch.zeros(1, dtype=torch.long), val_x=x[:2],
                val_y=torch.zeros(2, dtype=torch.long), val_files=["a/1", "a/2"])
    v = g.scored_on("val")
    assert len(v.test_y) == 2 and v.test_files == ["a/1", "a/2"] and g.scored_on("test") is g
    with pytest.raises(ValueError, match="no validation"):
        Gallery(names=["a"], train_x=x, train_y=torch.zeros(3, dtype=torch.long), test_x=x[:1],
                test_y=torch.zeros(1, dtype=torch.long)).scored_on("val")


def test_subset_keeps_the_pictures_of_the_named_people_relabelled():
    x = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 2, 2).clone()
    g = Gallery(names=["a", "b", "c"], train_x=x, train_y=torch.tensor([0, 1, 2, 2, 1, 0]),
                test_x=x[:3], test_y=torch.tensor([2, 1, 0]),
                train_files=["a/0", "b/1", "c/2", "c/3", "b/4", "a/5"],
                test_files=["c/t", "b/t", "a/t"])
    sub = g.subset(["c", "a"])
    assert sub.names == ["c", "a"] and sub.train_y.tolist() == [1, 0, 0, 1]
    assert sub.train_files == ["a/0", "c/2", "c/3", "a/5"]
    assert sub.train_x[:, 0, 0, 0].tolist() == [0, 2, 3, 5]
    assert sub.test_y.tolist() == [0, 1] and sub.test_files == ["c/t", "a/t"]
    assert len(sub.val_y) == 0


@pytest.mark.parametrize("split", ["hash", "rank"])
def test_enroll_writes_the_split_it_was_asked_for(tmp_path, split) -> None:
    """``enroll --split rank`` re-enrolls a first-generation checkpoint on its own test pictures."""
    import numpy as np
    from PIL import Image

    from gslora_core.cli import main
    from gslora_core.model import read_metadata

    rng = np.random.default_rng(0)
    for person in ("ann", "bob", "cy"):
        (tmp_path / "g" / person).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "g" / person / f"{person}_{i:04d}.png")
    out = tmp_path / "r.safetensors"
    assert main(["enroll", "--gallery", str(tmp_path / "g"), "--out", str(out), "--preprocess",
                 "center", "--model-size", "tiny", "--epochs", "1", "--split", split]) == 0
    assert read_metadata(out)["data"]["split"] == split
