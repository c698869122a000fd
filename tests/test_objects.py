"""The object-class setting (issue 36): the classifier's training script, on tiny data."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("train_objects",
                                                  ROOT / "scripts" / "train_objects.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_objects"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _data(n: int = 48) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    def part(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, 256, (k, 3, 32, 32), dtype=torch.uint8, generator=g),
                torch.arange(k) % 10)
    (tx, ty), (vx, vy), (sx, sy) = part(n), part(20), part(20)
    return {"train_x": tx, "train_y": ty, "val_x": vx, "val_y": vy, "test_x": sx, "test_y": sy}


def test_crop_flip_takes_a_shifted_window_of_the_picture_or_its_mirror() -> None:
    t = _script()
    x = torch.arange(32, dtype=torch.uint8).repeat(2, 3, 32, 1) * 8  # columns 0, 8, ..., 248
    out = t.crop_flip(x, torch.Generator().manual_seed(0), pad=4)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    for row in out[:, 0, 0]:  # each picture: 32 consecutive columns (reflected at the edges)
        cols = (row * 255 / 8).round().long()
        steps = (cols[1:] - cols[:-1]).abs()
        assert steps.max() <= 1 and cols.min() >= 0 and cols.max() <= 31


def test_a_run_split_over_two_sittings_equals_one_run(tmp_path: Path) -> None:
    """Resuming from state.pt continues exactly where the first sitting stopped."""
    t = _script()
    r = t.ObjectsRecipe(width=64, depth=2, patch=8, epochs=2, batch=16, warmup=1)
    data = _data()
    one = t.train(r, tmp_path / "one", "cpu", data=data)
    split = tmp_path / "split"
    first = t.train(r, split, "cpu", max_minutes=1e-9, data=data)  # stops after epoch 1
    assert len(first["epochs"]) == 1
    both = t.train(r, split, "cpu", data=data)
    assert len(both["epochs"]) == 2
    for a, b in zip(one["epochs"], both["epochs"]):
        assert abs(a["loss"] - b["loss"]) < 1e-6 and a["val_accuracy"] == b["val_accuracy"]
    sa = torch.load(tmp_path / "one" / "state.pt", weights_only=True)["model"]
    sb = torch.load(split / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (split / "best.safetensors").exists()


CLASSIFIER = ROOT / "checkpoints" / "objects_classifier.safetensors"


@pytest.mark.slow
@pytest.mark.skipif(not CLASSIFIER.exists(), reason="the object classifier is not shipped yet "
                    "(issue 36: scripts/train_objects.py is training it)")
def test_the_objects_sample_forgets_a_class_and_keeps_the_others(tmp_path: Path) -> None:
    """The app's second sample through the workspace: CIFAR-10 pictures used whole with the
    shipped classifier; forgetting "cat" stops by the rule with no held-back cat answered
    "cat" while the other classes stay (a forgotten class may be taken for another: the
    default pushes object classes by the gap only, ``stopping.pushes_unknown``); Compare runs
    without a retrain, which is refused in words."""
    from demo.workspace import Workspace
    from gslora_core.config import PRESETS, StudioConfig

    ws = Workspace(StudioConfig(sessions_root=str(tmp_path / "sessions")))
    ws.load_sample(kind="objects")
    assert ws.source == "objects" and ws.gallery.names == CIFAR
    assert set(ws.gallery.methods.values()) == {"whole"} and not ws.gallery.rejected
    before = ws.recognizer_report
    job = ws.start_forget(["cat"], PRESETS["fast"])
    assert job.wait(300) and job.error is None, job.error
    rep = ws.reports[-1]
    assert rep["stop"]["reason"] == "done", rep["stop"]
    assert rep["blocks_used"] <= 2 and rep["acc_r_after"] >= rep["acc_r_before"] - 0.02
    gone = rep["open_set"]["forgotten"]["after"]  # the answers the page gives (at the threshold)
    assert gone["recognized"] == 0.0 and gone["unknown"] + gone["other"] == pytest.approx(1.0)
    # top-1 without the threshold: at most one of the ~13 held-back cats (the benchmark judges
    # Acc_f <= 1 % on 300 pictures a class: docs/objects.md)
    assert rep["acc_f_after"] <= 0.1, rep["acc_f_after"]
    with pytest.raises(ValueError, match="about 2 h"):
        ws.start_inspect(retrain=True)
    job = ws.start_inspect(retrain=False)
    assert job.wait(300) and job.error is None, job.error
    assert before["acc_all"] is not None
    ws.close()


CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_an_unknown_or_unshipped_sample_is_refused_in_words(tmp_path: Path) -> None:
    from demo.workspace import Workspace
    from gslora_core.config import StudioConfig

    ws = Workspace(StudioConfig(sessions_root=str(tmp_path / "s"),
                                objects_recognizer=str(tmp_path / "none.safetensors")))
    with pytest.raises(ValueError, match="unknown sample 'dogs'"):
        ws.load_sample(kind="dogs")
    with pytest.raises(ValueError, match="objects sample's model .* is not in this copy"):
        ws.load_sample(kind="objects")
    assert ws.gallery is None  # nothing half-loaded
    ws.close()


def test_the_forget_bound_asks_one_cosine_gap_of_any_head() -> None:
    """BND is in the logits of the paper's face head (s 64, m 0.35): the face head keeps 45, and
    the object classifier's head (s 16, m 0.1) gets the bound that asks the same gap between a
    forget picture's best other class and its own. Unscaled (45 at s = 16) no forget margin
    could ever pass it: the logits span only 2 s = 32."""
    from gslora_core.config import ForgetConfig
    from gslora_core.objective import forget_bound, forget_gap

    cfg = ForgetConfig()
    assert forget_bound(cfg.bnd, 64.0, 0.35) == pytest.approx(cfg.bnd)
    assert forget_gap(cfg.bnd) == pytest.approx(45 / 64 - 0.35)
    s, m = 16.0, 0.1
    bound = forget_bound(cfg.bnd, s, m)
    assert bound < 2 * s < cfg.bnd
    # a picture whose best other class leads its own by exactly the gap sits on the bound
    own, other = 0.2, 0.2 + forget_gap(cfg.bnd)
    assert s * (other - (own - m)) == pytest.approx(bound)


def test_a_report_on_object_classes_speaks_of_classes() -> None:
    from gslora_core.report import forgotten_line, metric_rows

    open_set = {"threshold": 0.15,
                "forgotten": {"before": {"unknown": 0.0, "other": 0.0, "pictures": 10},
                              "after": {"unknown": 0.9, "other": 0.1, "pictures": 10}},
                "retained": {"before": {"recognized": 0.9}, "after": {"recognized": 0.9}}}
    rep = {"acc_r_before": 0.9, "acc_r_after": 0.89, "acc_f_before": 0.8, "acc_f_after": 0.0,
           "h_mean": 0.8, "open_set": open_set,
           "per_identity": [{"identity": "cat", "role": "forgotten", "before": 0.8, "after": 0.0}]}
    faces = [row[0] for row in metric_rows(rep)]
    objects = [row[0] for row in metric_rows({**rep, "kind": "objects"})]
    assert "Acc_r (retained people)" in faces and "Acc_r (retained classes)" in objects
    assert not any("people" in t or "someone" in t for t in objects), objects
    assert "taken for another class" in objects[-1]
    assert forgotten_line({**rep, "kind": "objects"}) == (
        "of the 10 held-back pictures of the forgotten classes, 0 still named as themselves, "
        "9 answered \"not recognized\", 1 taken for another class")


def test_the_objects_bench_forgets_each_class_once_and_pairs_disjoint_classes() -> None:
    from bench.cifar10 import CLASSES
    from bench.objects import add_reference_ratios, plans

    todo = plans(["single", "three", "continual"], draws=3, sequences=2, seed=0)
    single = [t for p, _, t in todo if p == "single"]
    assert sorted(t[0][0] for t in single) == sorted(CLASSES)
    assert all(len(t[0]) == 3 for p, _, t in todo if p == "three")
    for p, _, tasks in todo:
        if p == "continual":
            assert len(tasks) == 3 and all(len(t) == 2 for t in tasks)
            assert len({c for t in tasks for c in t}) == 6  # no class twice in a sequence
    rows = [{"method": "gslora", "forgotten": ["cat"], "earlier": ["dog"], "seconds": 10.0,
             "train_seconds": 5.0}, {"method": "untouched", "forgotten": ["cat"], "earlier": [],
                                     "seconds": 0.0, "train_seconds": 0.0}]
    add_reference_ratios(rows, {"train_hours": 1.0})
    assert rows[0]["retrain_reference_seconds"] == pytest.approx(3600 * 0.8)
    assert rows[0]["speedup_vs_retrain"] == pytest.approx(288.0)
    assert rows[1]["speedup_vs_retrain"] is None
