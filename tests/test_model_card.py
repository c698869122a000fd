"""scripts/write_model_card.py: the card comes from the checkpoints' own files: the shipped hybrid
backbone's, and for the earlier pixel-distilled ViT any number of pretraining runs (a backbone
may continue earlier ones or be a run's best epoch)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import write_model_card as card  # noqa: E402

CK = ROOT / "checkpoints"
# The earlier ViT backbone (shipped until 2026-12-06) and its last run's history.
VIT = ROOT / "bench" / "results" / "candidates" / "pretrain_mix"


def vit_checkpoints(tmp_path: Path, *extra: str) -> None:
    """A checkpoints folder whose backbone is the earlier ViT (the card's other section)."""
    shutil.copy(VIT.with_suffix(".safetensors"), tmp_path / "backbone.safetensors")
    for f in ("sample_recognizer.safetensors", "lfw_holdout.json", *extra):
        shutil.copy(CK / f, tmp_path / f)


def full_run() -> dict:
    """The earlier ViT's history as a run that kept its last epoch, with every knob but lr and
    views at today's default, so a test sets only the knobs it checks (the run's own, such as
    ``p_mix``, would otherwise show up in every command)."""
    run = json.loads(VIT.with_suffix(".json").read_text())
    kept = {k: run["pretrain"][k] for k in ("lr", "augment") if k in run["pretrain"]}
    run["pretrain"] = {**card.PretrainConfig().to_dict(), **kept, "epochs": len(run["history"])}
    return run


def test_the_committed_card_is_what_the_files_say(tmp_path) -> None:
    assert card.main(CK, tmp_path / "card.md") == (CK / "README.md").read_text()


def test_the_hybrid_card_says_what_the_trunk_is_and_how_the_blocks_were_made() -> None:
    text = (CK / "README.md").read_text()
    assert "public domain (CC0)" in text and "frozen" in text
    assert "python -m pretraining hybrid --out checkpoints/backbone.safetensors" in text
    assert "--trunk-levels 4" in text


def test_three_runs_the_last_a_best_epoch_on_photo_validation(tmp_path) -> None:
    vit_checkpoints(tmp_path)
    base = full_run()
    earlier = {**base, "images": 11183, "validation_identities": 0, "validation_views": None,
               "history": [{"epoch": e, "seconds": 60.0 * e, "loss": 0.3} for e in range(1, 17)],
               "pretrain": {**base["pretrain"], "epochs": 16}}  # full runs, no validation
    for k in (1, 2):
        (tmp_path / f"backbone_stage{k}.json").write_text(json.dumps(earlier))
    third = full_run()
    third["pretrain"] = {**third["pretrain"], "epochs": 20, "lr": 2e-4, "augment": "robust"}
    third["history"] = [{"epoch": e, "seconds": 60.0 * e, "loss": 0.3, "validation": {"score": 0.9}}
                        for e in range(1, 14)]
    third.update(validation_identities=112, validation_views="photo", images=10589)
    (tmp_path / "backbone.json").write_text(json.dumps(third))
    text = card.main(tmp_path, tmp_path / "card.md")
    lines = text.splitlines()
    mv = [ln.strip() for ln in lines if ln.strip().startswith("mv ")]
    assert mv == ["mv checkpoints/backbone.json checkpoints/backbone_stage1.json",
                  "mv checkpoints/backbone.json checkpoints/backbone_stage2.json"]
    assert sum("--init checkpoints/backbone.safetensors" in ln for ln in lines) == 2
    assert sum("--validation-views photo" in ln for ln in lines) == 1  # only the third run
    assert any(ln.strip().startswith("cp checkpoints/backbone.best.safetensors") and "epoch 13" in ln
               for ln in lines)
    assert "20 epochs at lr 0.0002 (robust views, kept epoch 13 (best on validation))" in text
    assert "--drop-path" not in text  # no run set it
    # The first two runs never kept the validation people out: the card says they were trained on.
    assert "among the pictures of runs 1-2" in text and "run 3 kept them out" in text
    assert "11183 training pictures in runs 1-2, 10589 training pictures in run 3" in text


def test_one_run_from_scratch_with_validation(tmp_path) -> None:
    vit_checkpoints(tmp_path)
    run = full_run()
    run["history"] = [{**r, "validation": {"score": 0.9}} for r in run["history"]]
    run.update(validation_identities=112, validation_views="photo")
    (tmp_path / "backbone.json").write_text(json.dumps(run))
    text = card.main(tmp_path, tmp_path / "card.md")
    assert "--init" not in text and " mv " not in text and "backbone.best" not in text
    assert "--stem conv --width 192 --depth 6" in text
    assert "kept out too" in text and "photo shifts" in text


def test_a_knob_set_away_from_its_default_is_in_the_command(tmp_path) -> None:
    vit_checkpoints(tmp_path)
    (tmp_path / "backbone_stage1.json").write_text(json.dumps(full_run()))
    run = full_run()
    run["pretrain"] = {**run["pretrain"], "augment": "basic", "drop_path": 0.1,
                       "keep_every_epoch": True, "weight_decay": 0.05}
    (tmp_path / "backbone.json").write_text(json.dumps(run))
    text = card.main(tmp_path, tmp_path / "card.md")
    last = [ln for ln in text.splitlines() if "--epochs" in ln][-1]
    assert last.strip().endswith("--augment basic --drop-path 0.1")  # not the default wd
    assert "(basic views, stochastic depth 0.1)" in text


def test_a_run_with_mixed_faces_says_so_and_gives_the_flag(tmp_path) -> None:
    vit_checkpoints(tmp_path)
    run = full_run()
    run["pretrain"] = {**run["pretrain"], "augment": "basic", "p_mix": 0.25}
    (tmp_path / "backbone.json").write_text(json.dumps(run))
    text = card.main(tmp_path, tmp_path / "card.md")
    last = [ln for ln in text.splitlines() if "--epochs" in ln][-1]
    assert last.strip().endswith("--augment basic --p-mix 0.25")
    assert "25 % of each batch mixed faces" in text
