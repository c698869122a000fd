"""One forgetting request from the page (or a script calling its ``/forget`` endpoint), typed.

The page's Advanced panel shows a few of ``ForgetConfig``'s knobs; ``PAGE_KNOBS`` names them
once, in the endpoint's order, so the panel's fields, the endpoint's inputs, the scripts that
call it (``bench/load.py``, ``bench/classroom.py``) and the tests all read one list. No gradio
here: a script can build the endpoint's inputs without the page.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

from gslora_core.config import ForgetConfig, preset

# The knobs under Advanced settings, in the order the /forget endpoint takes them after
# (names, recipe). Integers are sent as numbers (a gr.Number gives floats) and cast back.
PAGE_KNOBS = ("rank", "beta", "bnd", "margin", "stage_steps", "steps", "lr", "shots")
INT_KNOBS = frozenset(f.name for f in fields(ForgetConfig)  # from the knobs' own types
                      if f.name in PAGE_KNOBS and f.type in ("int", "int | None"))
DEFAULT_RECIPE = "fast"


def panel_values(recipe: str = DEFAULT_RECIPE, **changed: Any) -> list:
    """The Advanced panel's values for a recipe (what choosing it fills in), some changed.

    ``shots`` None (every training picture) shows as 0, the panel's word for it."""
    cfg = preset(recipe)
    return [changed.get(k, getattr(cfg, k) or 0) for k in PAGE_KNOBS]


def recipe_inputs(recipe: str = DEFAULT_RECIPE, **changed: Any) -> list:
    """The /forget endpoint's inputs after the names: the recipe and its knobs, some changed
    (what a script sends: ``client.predict(names, *recipe_inputs(steps=10), api_name=...)``)."""
    return [recipe, *panel_values(recipe, **changed)]


@dataclass(frozen=True)
class ForgetRequest:
    """Who to forget and with which recipe: the page's inputs, read once."""

    names: tuple[str, ...]
    recipe: str = DEFAULT_RECIPE
    knobs: dict[str, float | int | None] = field(default_factory=dict)  # None: the recipe's

    @classmethod
    def from_page(cls, names: Sequence[str] | None, recipe: str | None,
                  *values: float | None) -> "ForgetRequest":
        """From the endpoint's inputs (``values`` in ``PAGE_KNOBS`` order; a field left empty
        is None and keeps the recipe's value)."""
        if len(values) != len(PAGE_KNOBS):
            raise TypeError(f"expected {len(PAGE_KNOBS)} settings ({', '.join(PAGE_KNOBS)}), "
                            f"got {len(values)}")
        knobs = {k: (None if v is None else int(v) if k in INT_KNOBS else v)
                 for k, v in zip(PAGE_KNOBS, values)}
        return cls(tuple(names or ()), recipe or DEFAULT_RECIPE, knobs)

    def config(self) -> ForgetConfig:
        """The recipe with the panel's values; ValueError names a setting out of range.

        ``shots`` 0 in the panel means every training picture (None), not K shots."""
        knobs = {k: v for k, v in self.knobs.items() if k != "shots"}
        cfg = preset(self.recipe).with_overrides(**knobs)
        shots = self.knobs.get("shots")
        return cfg if shots is None else replace(cfg, shots=shots or None)
