"""States kept beside a checkpoint (``states.save_kept``): the snapshot they give equals the
measured one exactly, they are used only for the weights and pictures they were made from, and
the CLI carries them from enrollment to task to task (tiny random model, seconds in all)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import NAMES, randomise_task, tiny_gallery, tiny_model

from gslora_core import cli, lora
from gslora_core.config import DataConfig, TaskRecord
from gslora_core.data import load_gallery, load_gallery_for
from gslora_core.evaluation import keep_snapshot, kept_snapshot, snapshot
from gslora_core.model import save_recognizer
from gslora_core.openset import Threshold
from gslora_core.states import load_kept, model_key, states_path


def test_kept_states_give_the_measured_snapshot_exactly(tmp_path):
    model, gallery = tiny_model(), tiny_gallery()
    snap = snapshot(model, gallery)
    path = keep_snapshot(states_path(tmp_path / "m.safetensors"), snap, model, gallery)
    assert path == tmp_path / "m.states.safetensors"
    kept = kept_snapshot(path, model, gallery)
    assert kept is not None and kept.fits(model, gallery)
    for name in ("test_cos", "train_cos", "test_emb", "train_emb", "pred"):
        assert torch.equal(getattr(kept, name), getattr(snap, name)), name


def test_the_key_follows_the_weights_below_the_top_mlp_only():
    model = tiny_model()
    top = len(model.blocks) - 1
    key = model_key(model)
    model.add_task(TaskRecord(name="t1", forgotten=["ann"], rank=4, lora_alpha=4.0))
    assert model_key(model) == key  # fresh adapters (B = 0) add exactly nothing
    randomise_task(model, "t1")
    with torch.no_grad():  # the task changed its top block only
        for p in [p for g in lora.group_params(model.blocks, "t1")[:top] for p in g]:
            p.zero_()
    assert model_key(model) == key
    with torch.no_grad():
        model.blocks[top].mlp.fc1.base.weight.add_(1.0)
        model.head.weight.add_(1.0)
        model.backbone.norm.weight.add_(1.0)
    assert model_key(model) == key  # nothing that shapes the top MLP's input
    randomise_task(model, "t1")  # now the lower blocks' groups are nonzero too
    assert model_key(model) != key
    other = tiny_model()
    with torch.no_grad():
        other.blocks[top].attn.qkv.weight.add_(1e-3)
    assert model_key(other) != key


def test_kept_states_of_other_pictures_or_weights_are_ignored(tmp_path):
    model, gallery = tiny_model(), tiny_gallery()
    path = keep_snapshot(tmp_path / "m.states.safetensors", snapshot(model, gallery), model,
                         gallery)
    assert load_kept(path, model, gallery) is not None
    pictures = gallery.test_x.clone()
    pictures[0, 0, 0, 0] ^= 1
    assert load_kept(path, model, replace(gallery, test_x=pictures)) is None
    assert load_kept(path, model, replace(gallery, train_y=gallery.train_y.flip(0))) is None
    changed = tiny_model()
    with torch.no_grad():
        changed.blocks[0].mlp.fc2.weight.mul_(1.01)
    assert load_kept(path, changed, gallery) is None
    assert load_kept(tmp_path / "none.states.safetensors", model, gallery) is None
    path.write_bytes(b"not a safetensors file")
    assert load_kept(path, model, gallery) is None


def test_an_older_revision_is_not_kept(tmp_path):
    model, gallery = tiny_model(), tiny_gallery()
    snap = snapshot(model, gallery)
    model.freeze()  # a training ended: the model may have changed since
    assert keep_snapshot(tmp_path / "m.states.safetensors", snap, model, gallery) is None
    test_only = snapshot(model, gallery, with_train=False)
    assert keep_snapshot(tmp_path / "m.states.safetensors", test_only, model, gallery) is None


@pytest.fixture
def tiny_checkpoint(tmp_path) -> tuple[Path, Path]:
    """A tiny recognizer (with a threshold) and a folder gallery of random pictures for it."""
    folder = tmp_path / "gallery"
    rng = np.random.default_rng(0)
    for name in NAMES:
        (folder / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{name}_{i:04d}.png")
    model = tiny_model()
    model.data_config = DataConfig(preprocess="center")
    model.threshold = Threshold(tau=0.0, keep=0.99, part="test", pictures=8, false_accept=1.0)
    path = save_recognizer(model, tmp_path / "enrolled.safetensors")
    return path, folder


def run(argv: list[str], capsys) -> dict:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_the_cli_keeps_states_from_task_to_task(tiny_checkpoint, tmp_path, capsys):
    ckpt, folder = tiny_checkpoint
    flags = ["--gallery", str(folder), "--steps", "4", "--batch-size", "4", "--device", "cpu"]
    first = run(["forget", "--checkpoint", str(ckpt), "--forget", "ann",
                 "--out", str(tmp_path / "t1.safetensors"), *flags], capsys)
    assert first["before_seconds"] > 0  # nothing kept beside the enrolled checkpoint
    assert first["states"] == str(tmp_path / "t1.states.safetensors")
    second = run(["forget", "--checkpoint", str(tmp_path / "t1.safetensors"), "--forget", "bob",
                  "--out", str(tmp_path / "t2.safetensors"), *flags], capsys)
    assert second["before_seconds"] == 0.0  # task 1's "after" is task 2's "before"
    after_1 = {r["identity"]: r["after"] for r in first["per_identity"]}
    assert {r["identity"]: r["before"] for r in second["per_identity"]} == after_1
    run(["rollback", "--checkpoint", str(tmp_path / "t2.safetensors"),
         "--out", str(tmp_path / "back.safetensors")], capsys)
    assert second["blocks_used"] == 1  # 4 steps: the top block alone
    back = tmp_path / "back.states.safetensors"  # so task 1's states still fit, and are carried
    assert back.exists()
    gallery = load_gallery(folder, 32, DataConfig(preprocess="center"), names=NAMES)
    ours = cli.load_recognizer(tmp_path / "back.safetensors")
    kept = kept_snapshot(back, ours, gallery)
    assert kept is not None
    assert torch.equal(kept.test_cos, snapshot(ours, gallery).test_cos)


def _sample(kind: str):
    from gslora_core.config import StudioConfig, project_path
    from gslora_core.model import load_recognizer

    cfg = StudioConfig()
    folder, weights = ((cfg.sample_gallery, cfg.sample_recognizer) if kind == "faces"
                       else (cfg.objects_gallery, cfg.objects_recognizer))
    model = load_recognizer(project_path(weights))
    gallery = load_gallery_for(model, project_path(folder), ingest=cfg.ingest)
    return model, gallery, states_path(project_path(weights))


@pytest.mark.slow
def test_the_object_sample_ships_states_that_fit_it():
    """The page loads the object sample from its shipped states (no measuring pass): whole
    pictures, resized by PIL, are the same pixels on every machine, so the states must fit.
    After a new classifier: ``python -m gslora_core evaluate --checkpoint M --gallery G
    --keep-states``."""
    model, gallery, path = _sample("objects")
    kept = kept_snapshot(path, model, gallery)
    assert kept is not None, f"{path} does not fit the shipped classifier; remake it"
    measured = snapshot(model, gallery)
    assert torch.allclose(kept.test_cos, measured.test_cos, atol=1e-5)
    assert torch.allclose(kept.train_cos, measured.train_cos, atol=1e-5)


@pytest.mark.slow
def test_the_face_sample_s_states_are_used_only_for_the_crops_they_were_made_from():
    """MTCNN's crops differ by one grey level in a few pixels with the torch thread count (2
    threads made the shipped states; a test worker runs 1): states made from other crops must
    not be used, and whatever the page loads is what measuring gives on this machine."""
    model, gallery, path = _sample("faces")
    measured = snapshot(model, gallery)
    kept = kept_snapshot(path, model, gallery)
    if kept is not None:  # these crops are the ones the states were made from
        assert torch.allclose(kept.test_cos, measured.test_cos, atol=1e-5)
    nudged = gallery.train_x.clone()
    nudged[0, 0, 0, 0] ^= 1  # one grey level in one pixel, as another thread count gives
    assert kept_snapshot(path, model, replace(gallery, train_x=nudged)) is None


def test_the_sample_ships_its_crops_and_its_kept_states_fit_them_without_aligning():
    """A fresh clone loads the sample without MTCNN (its crops ship beside it,
    scripts/ship_sample_crops.py) and on any core count gets the crops the shipped states
    were measured on."""
    from gslora_core.config import project_path
    from gslora_core.data import shipped_crops
    from gslora_core.model import load_recognizer

    class NoAligning:
        def align_many(self, images, on_done=None):
            raise AssertionError("the sample was aligned: a shipped crop is missing")

    weights = project_path("checkpoints/sample_recognizer.safetensors")
    folder = project_path("assets/sample_gallery")
    assert shipped_crops(folder) == project_path("assets/sample_gallery_crops")
    model = load_recognizer(weights)
    gallery = load_gallery_for(model, folder, cache_dir=None, aligner=NoAligning())
    assert len(gallery.train_y) + len(gallery.test_y) == 300
    assert kept_snapshot(states_path(weights), model, gallery) is not None
