"""The hybrid backbone's distillation (pretraining/hybrid.py) on a few synthetic chips: the bank
holds dlib's own maps and descriptors of each view, and a run trains, keeps its best epoch and
resumes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gslora_core.dlib_resnet import DlibResNet, teacher
from gslora_core.model import load_recognizer
from pretraining.chips import CHIPS, INDEX
from pretraining.config import HybridConfig
from pretraining.hybrid import build_bank, chip_views, distill, load_bank

PEOPLE = ["ann", "bob", "cid", "dee"]


@pytest.fixture(scope="module")
def chips_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chips")
    rng = np.random.default_rng(0)
    margin = 4
    n = 3 * len(PEOPLE)
    np.save(folder / CHIPS, rng.integers(0, 256, (n, 150 + 2 * margin, 150 + 2 * margin, 3),
                                         dtype=np.uint8))
    rows = [{"file": f"{p}/{p}_{i}.jpg", "identity": p, "n_faces": 1}
            for p in PEOPLE for i in range(3)]
    (folder / INDEX).write_text(json.dumps({"margin": margin, "rule": "app", "rows": rows}))
    return folder


@pytest.fixture(scope="module")
def bank_dir(chips_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bank")
    build_bank(chips_dir, out, exclude={"dee"}, views=3, workers=1, chunk=4, log=lambda m: None)
    return out


def test_the_bank_holds_dlibs_maps_and_descriptors_of_each_view(chips_dir, bank_dir):
    bank = load_bank(bank_dir, 4)
    assert bank.identities == [p for p in PEOPLE[:3] for _ in range(3)]  # the test person left out
    assert bank.feats.shape == (9, 3, 256, 4, 4) and bank.teacher.shape == (9, 3, 128)
    wide = torch.from_numpy(np.load(chips_dir / CHIPS)[:1]).permute(0, 3, 1, 2)
    chip = wide[:, :, 4:154, 4:154]
    net = teacher()
    with torch.no_grad():
        x = DlibResNet.normalize(chip)
        assert torch.allclose(bank.teacher[0, 0], net(x)[0], atol=1e-5)  # view 0: the chip
        assert torch.allclose(bank.teacher[0, 1], net(x.flip(-1))[0], atol=1e-5)  # its mirror
        assert torch.allclose(bank.feats[0, 0].float(), net.features(x, 4)[0], rtol=2e-3, atol=2e-3)
    assert load_bank(bank_dir, 3).feats.shape == (9, 3, 128, 8, 8)


def test_views_after_the_first_two_differ_from_the_chip():
    wide = torch.randint(0, 256, (2, 3, 166, 166), dtype=torch.uint8)
    v = chip_views(wide, 8, 4, torch.Generator().manual_seed(0))
    assert v.shape == (2, 4, 3, 150, 150)
    assert torch.equal(v[:, 1], v[:, 0].flip(-1))
    assert (v[:, 2] - v[:, 0]).abs().mean() > 0.01


def test_an_interrupted_bank_resumes_where_it_stopped(chips_dir, bank_dir, tmp_path):
    meta = json.loads((bank_dir / "index.json").read_text())
    assert meta["complete"] and meta["done"] == 9
    logs = []
    build_bank(chips_dir, bank_dir, exclude={"dee"}, views=3, workers=1, chunk=4, log=logs.append)
    assert logs == ["9 chips x 3 views, 9 done"]  # nothing to redo


def test_a_run_trains_keeps_its_best_and_resumes(bank_dir, tmp_path):
    bank = load_bank(bank_dir, 4)
    cfg = HybridConfig(width=64, depth=2, epochs=2, batch_size=4, p_clean=0.5)
    out = tmp_path / "hybrid.safetensors"
    report = distill(bank, {"bob", "cid"}, cfg, out, log=lambda m: None)
    assert len(report["history"]) == 2
    model = load_recognizer(out)
    assert model.cfg.stem == "dlib" and model.cfg.embed_dim == 64 and model.class_names == []
    assert load_recognizer(out.with_suffix(".best.safetensors")).cfg == model.cfg
    longer = distill(bank, {"bob", "cid"}, HybridConfig(width=64, depth=2, epochs=3, batch_size=4,
                                                 p_clean=0.5), out, resume=True, log=lambda m: None)
    assert [r["epoch"] for r in longer["history"]] == [1, 2, 3]
    assert longer["history"][:2] == report["history"]
    with pytest.raises(ValueError, match="another run"):
        distill(bank, {"bob", "cid"}, HybridConfig(width=64, depth=2, epochs=3, lr=0.1), out,
                resume=True, log=lambda m: None)
