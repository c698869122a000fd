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
                                 {"sparsity_warmup": 1.5}, {"bnd": 0.0}])
def test_impossible_forget_settings_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=list(bad)[0].split("_")[0]):
        ForgetConfig().with_overrides(**bad)

