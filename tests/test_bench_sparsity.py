"""Issue 13's benchmark in quick mode, on the real sample gallery with the shipped recognizer:
the default recipe leaves most blocks exactly untouched and still forgets completely, and its
alpha = 0 twin touches every block."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_quick_sparsity_benchmark(tmp_path):
    import torch

    from bench.sparsity import main

    # The worker's share of the cores (conftest), as the benchmark sets it for the process.
    main(["--quick", "--out", str(tmp_path), "--threads", str(torch.get_num_threads())])
    result = json.loads((tmp_path / "sparsity_quick.json").read_text())
    rows = result["rows"]
    assert {r["part"] for r in rows} == {"single", "continual", "sweep"}
    default = [r for r in rows if r["recipe"] == "default" and r["part"] != "sweep"]
    assert len(default) == 3  # one single-step draw, two continual tasks
    for r in default:
        assert r["zero_groups"] >= 3, r  # at least half of the 6 blocks untouched
        assert r["acc_f_after"] == 0.0, r
        assert r["config"]["alpha"] == 0.5 and r["config"]["refit"] == 0.8
    continual = [r for r in default if r["part"] == "continual"]
    assert continual[1]["earlier"] == continual[0]["forgotten"] and continual[1]["acc_o"] == 0.0
    dense = [r for r in rows if r["recipe"] == "alpha0"]
    assert dense and all(r["zero_groups"] == 0 for r in dense)
    sweep = {r["alpha"]: r for r in rows if r["part"] == "sweep"}
    assert set(sweep) == {0.0, 0.5, 1.0} and sweep[0.0]["zero_groups"] == 0
    assert sweep[1.0]["zero_groups"] >= sweep[0.5]["zero_groups"] >= 3
    assert (tmp_path / "sparsity_quick_alpha.html").stat().st_size > 10_000
    assert "| single | sample | default |" in (tmp_path / "sparsity_quick.md").read_text()


def test_set_changes_both_recipes_typed_and_refuses_unknown_names():
    from bench.sparsity import parse_changes, recipes

    changes = parse_changes(["beta=0.3", "steps=40", "proximal=false", "shots=4"])
    assert changes == {"beta": 0.3, "steps": 40, "proximal": False, "shots": 4}
    table = recipes({"beta": 0.3})
    assert table["default"].beta == table["alpha0"].beta == 0.3
    assert table["alpha0"].alpha == 0.0 and table["default"].alpha == recipes()["default"].alpha
    for bad in (["nope=1"], ["beta"]):
        with pytest.raises(SystemExit, match="NAME=VALUE"):
            parse_changes(bad)
