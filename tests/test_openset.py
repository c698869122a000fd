"""Open-set answers: the threshold, its place in the checkpoint, the verdicts and the rates
(tiny random model and hand-made cosines; milliseconds each)."""
from __future__ import annotations

import pytest
import torch
from tiny import forget_people, tiny_gallery, tiny_model

from gslora_core.config import ForgetConfig
from gslora_core.inference import verdict
from gslora_core.model import load_recognizer, save_recognizer
from gslora_core.openset import EDGE, UNKNOWN, answer, calibrate, rates
from gslora_core.training import fix_threshold

# Four held-back pictures of people 0 and 1: three answered right (own cosines 0.9, 0.5, 0.7),
# one taken for person 0 (its own cosine 0.2).
COS = torch.tensor([[0.9, 0.1, 0.0], [0.3, 0.5, 0.1], [0.2, 0.7, 0.4], [0.6, 0.2, 0.0]])
LABELS = torch.tensor([0, 1, 1, 1])


def test_the_threshold_keeps_the_asked_share_of_correct_answers():
    t = calibrate(COS, LABELS, [0, 1], "test", keep=1.0)
    assert t.tau == pytest.approx(0.5 - EDGE)  # just below the lowest correct own cosine
    assert t.pictures == 4
    # best other-person cosine per picture: 0.1, 0.3, 0.4, 0.6 -> one of four clears 0.5
    assert t.false_accept == pytest.approx(0.25)
    assert calibrate(COS, LABELS, [0, 1], "test", keep=0.5).tau == pytest.approx(0.7 - EDGE)
    assert calibrate(COS, LABELS, [1], "test", keep=1.0).tau == pytest.approx(0.5 - EDGE)
    with pytest.raises(ValueError, match="keep"):
        calibrate(COS, LABELS, [0, 1], "test", keep=0.0)
    with pytest.raises(ValueError, match="recognized"):
        calibrate(torch.tensor([[0.1, 0.9, 0.0]]), torch.tensor([0]), [0], "test")


def test_answers_and_rates_at_the_threshold():
    assert answer(COS, 0.55).tolist() == [0, -1, 1, 0]
    r = rates(COS, LABELS, [1], 0.55)
    # person 1's pictures: one not recognized (0.5), one right (0.7), one taken for 0 (0.6)
    assert r["pictures"] == 3
    assert (r["recognized"], r["unknown"], r["other"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert rates(COS, LABELS, [2], 0.5) == {"pictures": 0, "recognized": None, "unknown": None,
                                           "other": None}


def test_the_threshold_travels_in_the_checkpoint_and_drives_the_verdict(tmp_path):
    model, gallery = tiny_model(), tiny_gallery()
    t = fix_threshold(model, gallery)
    assert t.part == "test" and model.threshold == t
    again = load_recognizer(save_recognizer(model, tmp_path / "m.safetensors"))
    assert again.threshold == t
    above = [{"identity": "bob", "cosine": t.tau + 0.01}]
    below = [{"identity": "bob", "cosine": t.tau - 0.01}]
    assert verdict(again, above)["identity"] == "bob"
    out = verdict(again, below)
    assert out["identity"] == UNKNOWN and not out["recognized"] and out["threshold"] == t.tau


def test_a_task_reports_its_answers_at_the_threshold_and_why_it_stopped():
    model, gallery = tiny_model(), tiny_gallery()
    report, _ = forget_people(model, gallery, ["ann"], ForgetConfig(steps=3, batch_size=4,
                                                                   eval_every=0, check_every=1))
    assert model.threshold is not None  # fixed on the fly for a model that had none
    open_set = report["open_set"]
    assert open_set["threshold"] == model.threshold.tau
    for role in ("forgotten", "retained"):
        after = open_set[role]["after"]
        assert after["recognized"] + after["unknown"] + after["other"] == pytest.approx(1.0)
    stop = report["stop"]
    assert stop["reason"] in ("done", "step cap") and stop["steps"] <= 3
    assert stop["people"] == 1 and isinstance(stop["text"], str) and stop["text"]
