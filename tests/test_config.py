"""Forgetting settings (gslora_core/config.py): presets and refusals by name."""
from __future__ import annotations

import pytest

from gslora_core.config import ForgetConfig, preset


def test_presets_exist_and_unknown_is_refused():
    assert preset("fast").rank == 8
    assert preset("fewshot").shots == 4
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")


@pytest.mark.parametrize("bad", [{"rank": 0}, {"steps": 0}, {"lr": -1.0}, {"alpha": -0.1},
                                 {"data_fraction": 0.0}, {"shots": 0},
                                 {"sparsity_warmup": 1.5}, {"bnd": 0.0}, {"gate_bnd": -1.0}])
def test_impossible_forget_settings_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=list(bad)[0].split("_")[0]):
        ForgetConfig().with_overrides(**bad)



def test_knob_overrides_type_each_knob_and_refuse_what_is_not_one():
    """The benchmarks' --set / --recipe pairs, typed as the knobs are (one parser for both)."""
    import pytest

    from gslora_core.cli import knob_overrides

    assert knob_overrides(["keep=50", "keep_views=2", "shots=4", "unknown=on"]) == {
        "keep": 50.0, "keep_views": 2, "shots": 4, "unknown": "on"}
    for bad in ("nope=1", "keep=", "keep"):
        with pytest.raises(SystemExit, match=f"--set '{bad}': give NAME=VALUE"):
            knob_overrides([bad])


def test_a_stored_config_naming_knobs_that_are_now_constants_still_reads():
    """Results stored before ``proximal``, ``alpha_depth``, ``lora_alpha`` and ``cache_hidden``
    became constants (none ever left its default) read back into today's config."""
    old = {**ForgetConfig(steps=12).to_dict(), "proximal": True, "alpha_depth": 1.0,
           "lora_alpha": 1.0, "cache_hidden": True}
    assert ForgetConfig.from_dict(old) == ForgetConfig(steps=12)
