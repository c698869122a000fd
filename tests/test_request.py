"""demo.request: the page's forgetting request, read once from the /forget endpoint's inputs."""
from __future__ import annotations

import inspect
from dataclasses import replace

import pytest

from demo.request import PAGE_KNOBS, ForgetRequest, panel_values, recipe_inputs
from gslora_core.config import PRESETS, ForgetConfig


def test_the_default_inputs_give_back_the_default_recipe_exactly():
    req = ForgetRequest.from_page(["Ana_Lima"], *recipe_inputs())
    assert req.names == ("Ana_Lima",) and req.recipe == "fast"
    assert req.config() == PRESETS["fast"]
    for name in PRESETS:  # every recipe survives the round trip through the panel
        assert ForgetRequest.from_page([], *recipe_inputs(name)).config() == PRESETS[name]


def test_panel_values_cast_integers_and_read_zero_shots_as_every_picture():
    values = dict(zip(PAGE_KNOBS, recipe_inputs(steps=12.0, rank=4.0, shots=0)[1:]))
    cfg = ForgetRequest.from_page(["a"], "fast", *values.values()).config()
    assert cfg.steps == 12 and isinstance(cfg.steps, int) and cfg.rank == 4
    assert cfg.shots is None  # 0 in the panel: every training picture, not K shots
    few = ForgetRequest.from_page(["a"], "fast", *panel_values("fast", shots=3.0)).config()
    assert few.shots == 3 and few == replace(PRESETS["fast"], shots=3)


def test_an_empty_field_keeps_the_recipes_value_and_an_empty_request_the_default():
    cleared = [None] * len(PAGE_KNOBS)
    assert ForgetRequest.from_page(["a"], "dense", *cleared).config() == PRESETS["dense"]
    empty = ForgetRequest.from_page(None, None, *cleared)
    assert empty == ForgetRequest((), "fast", dict.fromkeys(PAGE_KNOBS))


def test_a_bad_setting_or_recipe_is_refused_with_its_name():
    with pytest.raises(ValueError, match="margin"):
        ForgetRequest.from_page(["a"], *recipe_inputs(margin=-1)).config()
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        ForgetRequest.from_page(["a"], "nope", *panel_values()).config()
    with pytest.raises(TypeError, match="expected 8 settings"):
        ForgetRequest.from_page(["a"], "fast", 8, 0.25)


def test_every_page_knob_is_a_forget_config_field_with_help():
    fields = ForgetConfig.__dataclass_fields__
    assert all(k in fields and fields[k].metadata.get("help") for k in PAGE_KNOBS)


def test_the_forget_endpoint_takes_flat_inputs_and_hands_one_request_to_its_handler():
    """gradio reads the endpoint's parameters (the progress tracker by its default): names,
    recipe, one per knob, progress; the handler gets one ForgetRequest."""
    gr = pytest.importorskip("gradio")
    from demo.handlers import forget_endpoint

    got = []

    def handler(ws, req, progress):
        got.append((ws, req, progress))
        yield {}

    endpoint = forget_endpoint(handler)
    params = inspect.signature(endpoint).parameters
    assert list(params) == ["ws", "names", "preset_name", *PAGE_KNOBS, "progress"]
    assert isinstance(params["progress"].default, gr.Progress)
    assert inspect.isgeneratorfunction(endpoint)
    list(endpoint("ws", ["Ana_Lima"], *recipe_inputs(steps=9), "tracker"))
    ws, req, progress = got[0]
    assert (ws, progress) == ("ws", "tracker") and req.config().steps == 9
    assert req.names == ("Ana_Lima",)
