"""The recognizer's checkpoints (gslora_core/model.py): safetensors round trips and refusals."""
from __future__ import annotations

import json

import pytest
import torch
from tiny import NAMES, forget_people, images, randomise_task, tiny_gallery, tiny_model

from gslora_core import lora
from gslora_core.config import ForgetConfig, TaskRecord
from gslora_core.forgetting import rollback
from gslora_core.model import load_recognizer, merged_copy, read_metadata, save_recognizer


def test_checkpoint_roundtrips_through_safetensors(tmp_path):
    model = tiny_model()
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0, {"steps": 3}))
    randomise_task(model, "task1")
    path = save_recognizer(model, tmp_path / "rec.safetensors")
    # The file is plain safetensors, its config readable as JSON metadata.
    meta = read_metadata(path)
    assert meta["class_names"] == NAMES and meta["tasks"][0]["forgotten"] == ["ann"]
    json.dumps(meta)
    loaded = load_recognizer(path)
    x = images()
    assert torch.equal(loaded(x), model(x))
    assert loaded.forgotten() == ["ann"]
    merged = merged_copy(loaded)
    path2 = save_recognizer(merged, tmp_path / "merged.safetensors")
    reloaded = load_recognizer(path2)
    assert not lora.has_lora(reloaded.blocks)
    assert torch.allclose(reloaded(x), model(x), atol=1e-5)


def test_load_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a GS-LoRA"):
        load_recognizer(tmp_path / "other.safetensors")


def test_rolling_back_the_only_task_gives_a_loadable_plain_checkpoint(tmp_path):
    model = tiny_model()
    forget_people(model, tiny_gallery(), ["ann"], ForgetConfig(steps=2, batch_size=4, eval_every=0))
    rollback(model)
    path = save_recognizer(model, tmp_path / "back.safetensors")
    again = load_recognizer(path)
    assert again.tasks == [] and not lora.has_lora(again.blocks)
    assert torch.equal(again(images()), tiny_model()(images()))



def test_a_task_s_adapters_and_record_come_and_go_together():
    model = tiny_model()
    x = images()
    base = model(x)
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0))
    assert lora.task_names(model.blocks) == ["task1"] and model.forgotten() == ["ann"]
    assert torch.allclose(model(x), base)  # B = 0: nothing moves until the task trains
    with pytest.raises(ValueError, match="exists already"):
        model.add_task(TaskRecord("task1", ["bob"], 4, 1.0))
    randomise_task(model, "task1")
    assert model.remove_task("task1").forgotten == ["ann"]
    assert not model.tasks and not lora.task_names(model.blocks)
    assert torch.allclose(model(x), base)
    with pytest.raises(ValueError, match="no un-merged task"):
        model.remove_task("task1")


def test_the_recognizer_moves_its_own_revision_on_every_change_of_what_it_answers():
    """Only the model's own methods move its revision, so a snapshot's freshness trusts it
    alone: a fresh adapter set (B = 0) or a task taken out untrained changes nothing; training
    (``freeze``), loaded weights, a new threshold and a trained task taken out do."""
    from gslora_core.openset import Threshold
    model = tiny_model()
    with pytest.raises(AttributeError):
        model.revision = 5  # read only
    r = model.revision
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0))
    assert model.revision == r
    model.remove_task("task1")  # cancelled before it trained: exactly as before
    assert model.revision == r
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0))
    model.freeze()  # it trained
    assert model.revision == r + 1
    assert rollback(model) == "task1" and model.revision == r + 2
    model.load_state_dict(model.state_dict())
    assert model.revision == r + 3
    threshold = Threshold(tau=0.3, keep=0.99, part="test", pictures=4, false_accept=0.0)
    model.threshold = threshold
    model.threshold = threshold  # the same one again: nothing changed
    assert model.revision == r + 4


def test_a_task_moves_the_revision_once_and_a_cancelled_one_not_at_all():
    model, gallery = tiny_model(), tiny_gallery()
    quick = ForgetConfig(steps=2, batch_size=4, eval_every=0)
    forget_people(model, gallery, ["ann"], quick)  # fixes the threshold, then trains
    r = model.revision
    _, after = forget_people(model, gallery, ["bob"], quick)
    assert model.revision == r + 1 and after.fits(model, gallery)
    cancelled = forget_people(model, gallery, ["cid"], quick, should_cancel=lambda: True)
    assert cancelled.after is None and model.revision == r + 1
