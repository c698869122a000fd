"""The Markdown report and the "how it works" text render a report's own numbers."""
from __future__ import annotations

from dataclasses import asdict

from demo.explain import how_it_works
from gslora_core.config import PRESETS
from gslora_core.report import to_markdown, without_curve

REPORT = {"task": "task2", "forgotten": ["Ann"], "task_names": ["task1", "task2"],
          "group_norms": [[1.0, 2.0, 3.0], [0.0, 0.5, 0.0]], "seconds": 3.25, "device": "cpu",
          "trainable_params": 1234, "trainable_share": 0.012, "zero_groups": 2,
          "acc_r_before": 0.9, "acc_r_after": 0.85, "acc_f_before": 1.0, "acc_f_after": 0.0,
          "acc_o_before": 0.0, "acc_o_after": 0.0, "h_mean": 0.8947,
          "membership_before": {"power": {"auc": 0.71}, "has_power": True, "member_rate": 0.625},
          "membership_after": {"power": {"auc": 0.52}, "has_power": False, "member_rate": 0.5},
          "forgotten_cos_to_prototype_before": 0.88, "forgotten_cos_to_prototype_after": 0.27,
          "per_identity": [{"identity": "Ann", "role": "forgotten", "before": 1.0, "after": 0.0}],
          "config": asdict(PRESETS["fast"]), "curve": [{"step": 1}]}


def test_markdown_has_the_task_its_groups_and_its_numbers():
    md = to_markdown([REPORT])
    assert "## task2: forget Ann" in md
    assert "2 of 3 LoRA groups exactly zero" in md  # this task's row, not task1's
    assert "LoRA group norms, block 1 → 3: 0, 0.5, 0" in md
    assert "| Acc_f (people forgotten now) | 100.0 % | 0.0 % |" in md
    # A number only where the attack has power; otherwise it says it has none.
    assert ("| membership attack: forgotten people's training pictures called members | "
            "62.5 % (AUC 0.71) | no power (AUC 0.52) |") in md
    assert "| Ann | forgotten | 100.0 % | 0.0 % |" in md
    assert "curve" not in without_curve(REPORT) and "curve" in REPORT


def test_a_report_stored_in_the_older_words_reads_as_today_s(tmp_path, capsys):
    """Reports written before one vocabulary (``acc_o``, ``membership``, roles "forget" and
    "retain") read back as today's: ``read_report``, and the CLI's ``report`` on such a file."""
    import json

    from gslora_core import cli
    from gslora_core.evaluation import read_report

    old = {k: v for k, v in REPORT.items() if k not in ("acc_o_after", "membership_after")}
    old |= {"acc_o": REPORT["acc_o_after"], "membership": REPORT["membership_after"],
            "per_identity": [{"identity": "Ann", "role": "forget", "before": 1.0, "after": 0.0},
                             {"identity": "Bo", "role": "retain", "before": 1.0, "after": 1.0}]}
    new = read_report(old)
    assert new["acc_o_after"] == 0.0 and new["membership_after"] == REPORT["membership_after"]
    assert "acc_o" not in new and "membership" not in new
    assert [r["role"] for r in new["per_identity"]] == ["forgotten", "retained"]
    assert read_report(REPORT) == REPORT  # today's pass through
    evaluation = {"acc_r": 0.9, "acc_o": 0.0, "per_identity": [{"identity": "Ann",
                                                                "role": "forgotten"}]}
    assert read_report(evaluation) == evaluation  # an evaluation's acc_o is its one state
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert cli.main(["report", "--json", str(path)]) == 0
    assert to_markdown([REPORT]).split("\n")[:12] == capsys.readouterr().out.split("\n")[:12]


def test_how_it_works_quotes_the_run():
    text = how_it_works(REPORT, asdict(PRESETS["fast"]))
    assert "**2 of 3** adapter groups ended exactly zero" in text
    assert "Acc_f went from **100.0 %** to **0.0 %**" in text and "0.88 → 0.27" in text


def test_how_it_works_says_what_a_gated_task_asked():
    """The BND and its fallback as the run's config had them; a report from before the
    fallback (no ``gate_bnd_fallback``) reads as one BND."""
    cfg = asdict(PRESETS["fast"])
    assert "BND 70, eased to 65 if the top block cannot reach it" in how_it_works(None, cfg)
    old = {k: v for k, v in cfg.items() if k != "gate_bnd_fallback"} | {"gate_bnd": 65.0}
    assert "ask more (BND 65)" in how_it_works(None, old)


def test_blocks_text_names_the_blocks_changed_and_of_how_many():
    """"6" under "blocks used" read as six blocks; the text says which, of how many."""
    from gslora_core.report import blocks_text

    assert blocks_text([0.0] * 5 + [4.2]) == "block 6 of 6"
    assert blocks_text([0.0] * 4 + [1.0, 4.2]) == "blocks 5, 6 of 6"
    assert blocks_text([0.0] * 6) == "none of 6"
