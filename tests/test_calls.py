"""The engine's long calls across a process boundary (``gslora_core.calls``): what crosses is
pickled both ways, the caller's recognizer changes only when it applies the result, and a
cancelled or failed call leaves it exactly as it was. Tiny random models; the page's calls
through ZeroGPU's real wrappers are in test_zerogpu.py."""
from __future__ import annotations

import pickle
import threading

import pytest
import torch
from tiny import forget_people, images, tiny_gallery, tiny_model

from gslora_core import lora
from gslora_core.calls import CompareCall, Done, EnrollCall, ForgetCall, apply_task, result_of, run, stream
from gslora_core.config import ForgetConfig, TrainConfig
from gslora_core.evaluation import Roles
from gslora_core.forgetting import plan_task

CFG = ForgetConfig(steps=6, batch_size=4, eval_every=0)


def crossed(items):
    """Each item as a forked worker's queue hands it back: pickled and read again."""
    for item in items:
        yield pickle.loads(pickle.dumps(item))


def forget_call(model, gallery, names: list[str], cfg: ForgetConfig) -> ForgetCall:
    """The call a caller makes: the request planned first, here."""
    return ForgetCall(model, gallery, plan_task(model, gallery, names), cfg)


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_pickled_forget_call_applied_gives_the_model_forgetting_in_place_gives():
    gallery, x = tiny_gallery(), images()
    in_place, caller = tiny_model(), tiny_model()
    expected = forget_people(in_place, gallery, ["ann"], CFG).report
    untouched = weights(caller)

    call = pickle.loads(pickle.dumps(forget_call(caller, gallery, ["ann"], CFG)))
    seen = []
    delta = result_of(crossed(run(call)), seen.append, lambda: False)
    assert any("step" in p for p in seen), "no step progress came back"
    assert same(weights(caller), untouched) and caller.tasks == []  # nothing until applied

    revision = caller.revision
    after = apply_task(caller, delta)
    assert caller.revision != revision and after.fits(caller, gallery)
    assert [t.name for t in caller.tasks] == ["task1"] and caller.forgotten() == ["ann"]
    assert torch.equal(caller(x), in_place(x))  # the same adapters, bit for bit
    assert same(weights(caller), weights(in_place))
    assert delta.report["acc_f_after"] == expected["acc_f_after"]
    assert not any(p.requires_grad for p in caller.parameters())
    assert caller.threshold is not None and caller.threshold == in_place.threshold


def test_closing_a_forget_call_cancels_it_and_the_caller_keeps_its_model():
    gallery, caller = tiny_gallery(), tiny_model()
    untouched = weights(caller)
    steps = 0

    def cancel_after_two() -> bool:
        return steps >= 2

    def count(p: dict) -> None:
        nonlocal steps
        steps += "step" in p

    with pytest.raises(InterruptedError):
        result_of(run(forget_call(caller, gallery, ["ann"], ForgetConfig(steps=400, batch_size=4,
                                                                         eval_every=0))),
                  count, cancel_after_two)
    assert steps == 2
    assert same(weights(caller), untouched) and caller.tasks == []
    assert not any(t.name == "gslora-call" for t in threading.enumerate())  # it stopped


def test_a_failing_call_raises_in_the_caller_and_changes_nothing():
    gallery, caller = tiny_gallery(), tiny_model()
    untouched = weights(caller)
    nobody_kept = Roles(forgotten=[0], earlier=[], retained=[])
    with pytest.raises(ValueError, match="retained identities"):
        list(run(ForgetCall(caller, gallery, nobody_kept, CFG)))
    assert same(weights(caller), untouched)

    def boom(progress, cancelled):
        progress({"stage": "working"})
        raise ValueError("bad value")
    items = stream(boom)
    assert next(items) == {"stage": "working"}
    with pytest.raises(ValueError, match="bad value"):
        next(items)


def test_adapters_that_do_not_fit_are_refused_and_leave_no_task():
    gallery, a, b = tiny_gallery(), tiny_model(), tiny_model()
    delta = result_of(run(forget_call(a, gallery, ["ann"], CFG)), lambda p: None, lambda: False)
    key = next(iter(delta.adapters))
    delta.adapters[key] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        apply_task(b, delta)
    assert b.tasks == [] and not lora.task_names(b.blocks)


def test_enroll_and_compare_calls_return_results_on_the_cpu_and_touch_no_input():
    gallery, backbone = tiny_gallery(), tiny_model()
    untouched = weights(backbone)
    cfg = TrainConfig(epochs=1, batch_size=8, warmup_epochs=0)
    items = list(crossed(run(EnrollCall(backbone, gallery, backbone.data_config, cfg))))
    done = items[-1]
    assert isinstance(done, Done) and any("step" in p for p in items[:-1])
    model = done.result.model
    assert model.device.type == "cpu" and done.result.state.fits(model, gallery)
    assert model.threshold is not None and done.result.report["steps"] >= 1
    assert same(weights(backbone), untouched)

    original = pickle.loads(pickle.dumps(model))
    apply_task(model, result_of(run(forget_call(model, gallery, ["ann"], CFG)), lambda p: None,
                                lambda: False))
    before = weights(model)
    compared = result_of(crossed(run(CompareCall(model, original, gallery, 1.0, backbone, cfg))),
                         lambda p: None, lambda: False)
    methods = [row["method"] for row in compared.inspection["methods"]]
    assert len(methods) == 3 and compared.inspection["forgotten"] == ["ann"]
    assert compared.retrain_seconds > 0 and compared.retrain_pictures == 18
    assert same(weights(model), before)
