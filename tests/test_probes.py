"""gslora_core.probes: delete vs GS-LoRA vs retrain, "still recognizable?", relearning and the
embedding map. Units on a tiny random model; the claims about real faces on the sample gallery."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import NAMES, images, randomise_task, tiny_gallery, tiny_model

from gslora_core.config import ForgetConfig
from gslora_core.probes import (
    compare,
    delete_people,
    embed_gallery,
    embedding_map,
    relearn,
    still_recognizable,
    untouched_copy,
)

ROOT = Path(__file__).resolve().parents[1]


def test_delete_drops_the_rows_and_keeps_everything_else():
    model = tiny_model()
    gone = delete_people(model, ["bob"])
    assert gone.class_names == [n for n in NAMES if n != "bob"]
    x = images()
    keep = [NAMES.index(n) for n in gone.class_names]
    assert torch.allclose(gone(x), model(x)[:, keep])
    assert model.class_names == list(NAMES)  # the original is untouched
    with pytest.raises(ValueError, match="no recognizer"):
        delete_people(model, NAMES)


def test_untouched_copy_removes_every_task():
    model = tiny_model()
    x = images()
    before = model(x)
    from gslora_core.config import TaskRecord
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0))
    randomise_task(model, "task1")
    assert not torch.allclose(model(x), before)
    clean = untouched_copy(model)
    assert torch.allclose(clean(x), before) and not clean.tasks and model.tasks


def test_recognizability_and_relearning_shapes_on_a_tiny_model():
    model, gallery = tiny_model(), tiny_gallery()
    emb = embed_gallery(model, gallery)
    rec = still_recognizable(emb, gallery, ["ann"])
    assert rec["forgotten_pairs"] == 15  # 6 held-back pictures: 6 * 5 / 2 same-person pairs
    assert 0 <= rec["forgotten_same_match"] <= 1 and rec["forgotten_nn_identification"] is not None
    rows = relearn(delete_people(model, ["ann"]), emb, gallery, ["ann"], shots=(1, 2), steps=5)
    assert [r["shots"] for r in rows] == [0, 1, 2]
    assert rows[0]["acc_f"] is not None


def test_compare_needs_a_forgetting_task():
    with pytest.raises(ValueError, match="forgotten no one"):
        compare(tiny_model(), tiny_gallery())


@pytest.mark.slow
def test_three_ways_to_forget_on_real_faces():
    """The issue's check on the sample gallery (2 people forgotten): deleting the head rows
    leaves the embeddings as they were, so the forgotten people's held-back pictures still match
    each other (>= 90 %) and 4 pictures bring them back. Measured (README): GS-LoRA and even
    retraining keep that too on this gallery (a face embedding recognizes people it was never
    trained on), which the table shows as it is."""
    from gslora_core.data import load_gallery_for
    from gslora_core.forgetting import forget, plan_task
    from gslora_core.model import load_recognizer
    from gslora_core.probes import retrain_without

    model = load_recognizer(ROOT / "checkpoints" / "sample_recognizer.safetensors")
    gallery = load_gallery_for(model, ROOT / "assets" / "sample_gallery")
    forgotten = ["Bill_Clinton", "Serena_Williams"]
    rep = forget(model, gallery, plan_task(model, gallery, forgotten), ForgetConfig()).report
    backbone = load_recognizer(ROOT / "checkpoints" / "backbone.safetensors")
    retrained = retrain_without(backbone, gallery, forgotten, data_config=model.data_config)
    rows = {r["method"]: r for r in compare(model, gallery, rep["seconds"], retrained,
                                            shots=(1, 4))}
    assert set(rows) == {"delete", "gslora", "retrain"}
    for r in rows.values():
        assert r["acc_f"] == 0 and r["acc_r"] >= 0.85, r["method"]
        assert [x["shots"] for x in r["relearn"]] == [0, 1, 4] and r["relearn"][0]["acc_f"] == 0
    delete = rows["delete"]
    assert delete["seconds"] < 5 and rows["retrain"]["seconds"] > delete["seconds"]
    assert delete["recognizable"]["forgotten_same_match"] >= 0.9
    assert delete["recognizable"]["forgotten_nn_identification"] >= 0.75
    assert delete["relearn"][-1]["acc_f"] >= 0.75  # their knowledge never left the backbone
    m = embedding_map(untouched_copy(model), model, gallery, forgotten)
    assert len(m["points"]) == 2 * len(gallery.test_y) and 0 < sum(m["explained"]) <= 1
    before = [p for p in m["points"] if p["stage"] == "before"]
    after = [p for p in m["points"] if p["stage"] == "after"]
    moved = [abs(a["x"] - b["x"]) + abs(a["y"] - b["y"]) for a, b in zip(after, before)
             if a["forgotten"]]
    assert max(moved) > 0  # GS-LoRA moved the forgotten people's embeddings on the shared axes
