"""Backbone pretraining pieces on tiny random data: pairs, verification, conv stem, distillation."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gslora_core.config import ModelConfig
from gslora_core.metrics import make_pairs, verification_accuracy
from gslora_core.model import Recognizer, load_recognizer
from pretraining.config import PretrainConfig
from pretraining.pretrain import DistillSet, pretrain, split_holdout


def test_pairs_are_balanced_spread_and_deterministic() -> None:
    labels = [0] * 30 + [1] * 2 + [2] * 2 + [3] * 1
    pairs, same = make_pairs(labels, 40, seed=3)
    again = make_pairs(labels, 40, seed=3)
    assert np.array_equal(pairs, again[0]) and np.array_equal(same, again[1])
    assert same.sum() == (~same).sum()  # chance is 50 %
    lab = np.array(labels)
    assert (lab[pairs[same, 0]] == lab[pairs[same, 1]]).all()
    assert (lab[pairs[~same, 0]] != lab[pairs[~same, 1]]).all()
    same_ids = set(lab[pairs[same, 0]].tolist())
    assert {1, 2} <= same_ids  # small identities get their pair, not only the big one
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)


def test_verification_accuracy_separable_and_random() -> None:
    labels = np.repeat(np.arange(20), 4)
    pairs, same = make_pairs(labels, 200, seed=0)
    perfect = torch.nn.functional.one_hot(torch.from_numpy(labels), 20).float()
    assert verification_accuracy(perfect, pairs, same)["accuracy"] == 1.0
    noise = torch.randn(len(labels), 16, generator=torch.Generator().manual_seed(0))
    assert verification_accuracy(noise, pairs, same)["accuracy"] < 0.75


def test_conv_stem_keeps_tokens_and_has_no_running_stats() -> None:
    cfg = replace(ModelConfig.tiny(), stem="conv")
    model = Recognizer(cfg, ["a", "b"])
    x = torch.rand(2, 3, cfg.img_size, cfg.img_size)
    assert model.embed(x).shape == (2, cfg.embed_dim)
    assert model.backbone.patch_embed.num_patches == (cfg.img_size // cfg.patch_size) ** 2
    assert not any("running" in name for name, _ in model.named_buffers())


def test_pretrain_saves_a_loadable_backbone_each_epoch(tmp_path) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (48, 40, 40, 3), dtype=torch.uint8, generator=gen)
    targets = torch.randn(48, 8, generator=gen)
    ids = [f"p{i % 12}" for i in range(48)]
    train, held = split_holdout(DistillSet(images, targets, ids), {"p0", "p1", "p2", "p3"})
    assert len(held.images) == 16 and not set(train.identities) & {"p0", "p1", "p2", "p3"}
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(epochs=2, batch_size=8, device="cpu")
    model, report = pretrain(train, held, replace(ModelConfig.tiny(), stem="conv"), cfg, out=out)
    assert [r["epoch"] for r in report["history"]] == [1, 2]
    assert 0 <= report["history"][-1]["verification"]["accuracy"] <= 1
    assert json.loads(out.with_suffix(".json").read_text())["history"] == report["history"]
    loaded = load_recognizer(out)
    assert loaded.class_names == [] and loaded.cfg.stem == "conv"
    x = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(loaded.embed(x), model.embed(x), atol=1e-6)
    # Continuing from it starts from its weights, not from a fresh initialisation.
    again, _ = pretrain(train, None, loaded.cfg, replace(cfg, epochs=1, lr=1e-12), init=loaded)
    assert torch.allclose(again.embed(x), loaded.embed(x), atol=1e-4)


def tiny_distill_set(n: int = 48, side: int = 40, wide_margin: int = 0) -> DistillSet:
    gen = torch.Generator().manual_seed(0)
    full = torch.randint(0, 255, (n, side + 2 * wide_margin, side + 2 * wide_margin, 3),
                         dtype=torch.uint8, generator=gen)
    images = full[:, wide_margin:wide_margin + side, wide_margin:wide_margin + side].contiguous()
    return DistillSet(images, torch.randn(n, 8, generator=gen), [f"p{i % 12}" for i in range(n)],
                      full if wide_margin else None)


def test_subset_keeps_wide_crops_aligned_with_rows() -> None:
    data = tiny_distill_set(wide_margin=4)
    part, _ = split_holdout(data, {"p0"})
    src, inner = part.views_source()
    assert src.shape == (44, 48, 48, 3) and inner == 40 / 48
    assert torch.equal(src[:, 4:44, 4:44], part.images)


def test_validation_scores_every_view_and_keeps_the_best(tmp_path) -> None:
    train, val = split_holdout(tiny_distill_set(wide_margin=4), {"p0", "p1", "p2", "p3"})
    out = tmp_path / "bb.safetensors"
    cfg = PretrainConfig(epochs=2, batch_size=8, device="cpu", keep_every_epoch=True)
    _, report = pretrain(train, val, replace(ModelConfig.tiny(), stem="conv"), cfg, out=out)
    row = report["history"][-1]["validation"]
    assert set(row["views"]) == {"clean", "tight", "grey", "lowres32", "jpeg20", "cast"}
    assert abs(row["score"] - np.mean(list(row["views"].values()))) < 1e-9
    best = max(r["validation"]["score"] for r in report["history"])
    assert report["best_score"] == best
    assert load_recognizer(out.with_suffix(".best.safetensors")).class_names == []
    assert all(out.with_suffix(f".epoch00{e}.safetensors").exists() for e in (1, 2))


class Stop(Exception):
    pass


def test_resume_continues_the_same_run_exactly(tmp_path) -> None:
    """Killed after epoch 1 of 3 and resumed == 3 epochs in one go (same weights, history)."""
    train, val = split_holdout(tiny_distill_set(), {"p0", "p1"})
    mcfg = replace(ModelConfig.tiny(), stem="conv")
    cfg = PretrainConfig(epochs=3, batch_size=8, device="cpu")
    whole, rep_whole = pretrain(train, val, mcfg, cfg, out=tmp_path / "a.safetensors")

    def stop_after_first(row: dict) -> None:
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        pretrain(train, val, mcfg, cfg, out=tmp_path / "b.safetensors", on_progress=stop_after_first)
    resumed, rep = pretrain(train, val, mcfg, cfg, out=tmp_path / "b.safetensors", resume=True)
    assert [r["epoch"] for r in rep["history"]] == [1, 2, 3]
    assert [r["loss"] for r in rep["history"]] == [r["loss"] for r in rep_whole["history"]]
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(resumed.embed(x), whole.embed(x), atol=1e-6)
    # A state from another model size is refused rather than silently mixed in.
    with pytest.raises(ValueError, match="another run"):
        pretrain(train, val, replace(mcfg, depth=2), cfg, out=tmp_path / "b.safetensors", resume=True)


def test_face_cache_with_and_without_wide_crops(tmp_path) -> None:
    from pretraining.facecache import ALIGNED, INDEX, TEACHER, WIDE, load_face_cache

    rows = [{"identity": f"p{i}", "file": f"p{i}/a.jpg", "method": "mtcnn" if i else "none",
             "teacher_ok": bool(i)} for i in range(3)]
    (tmp_path / INDEX).write_text(json.dumps({"n": 3, "complete": True, "rows": rows}))
    np.save(tmp_path / ALIGNED, np.arange(3 * 8 * 8 * 3, dtype=np.uint8).reshape(3, 8, 8, 3))
    np.save(tmp_path / TEACHER, np.ones((3, 4), np.float32))
    old = load_face_cache(tmp_path)
    assert old.wide is None and old.identities == ["p1", "p2"]
    np.save(tmp_path / WIDE, np.zeros((3, 12, 12, 3), np.uint8))
    new = load_face_cache(tmp_path)
    assert new.wide.shape == (2, 12, 12, 3) and new.views_source()[1] == 8 / 12


def test_average_is_the_mean_of_every_weight_and_refuses_mixed_models() -> None:
    from pretraining.pretrain import average_backbones

    mcfg = replace(ModelConfig.tiny(), stem="conv")
    torch.manual_seed(0)
    a, b, c = Recognizer(mcfg, []), Recognizer(mcfg, []), Recognizer(mcfg, [])
    avg = average_backbones([a, b, c])
    for name, w in avg.backbone.state_dict().items():
        mean = (a.backbone.state_dict()[name] + b.backbone.state_dict()[name]
                + c.backbone.state_dict()[name]) / 3
        assert torch.allclose(w, mean, atol=1e-6), name
    assert not torch.equal(avg.backbone.state_dict()["cls_token"], a.backbone.state_dict()["cls_token"])
    with pytest.raises(ValueError, match="different sizes"):
        average_backbones([a, Recognizer(replace(mcfg, depth=mcfg.depth + 1), [])])
    with pytest.raises(ValueError, match="backbones only"):
        average_backbones([a, Recognizer(mcfg, ["x", "y"])])
    with pytest.raises(ValueError, match="nothing"):
        average_backbones([])


def test_average_command_scores_each_checkpoint_and_the_mean(tmp_path, capsys) -> None:
    from gslora_core.model import save_recognizer
    from pretraining.cli import main
    from pretraining.facecache import ALIGNED, INDEX, TEACHER

    mcfg = replace(ModelConfig.tiny(), stem="conv")
    torch.manual_seed(1)
    paths = [save_recognizer(Recognizer(mcfg, []), tmp_path / f"e{i}.safetensors") for i in range(2)]
    n = 24
    rows = [{"identity": f"p{i % 6}", "file": f"p{i % 6}/{i}.jpg", "method": "mtcnn", "teacher_ok": True}
            for i in range(n)]
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / INDEX).write_text(json.dumps({"n": n, "complete": True, "rows": rows}))
    gen = np.random.default_rng(0)
    np.save(tmp_path / "cache" / ALIGNED, gen.integers(0, 255, (n, 40, 40, 3), dtype=np.uint8))
    np.save(tmp_path / "cache" / TEACHER, gen.standard_normal((n, 8)).astype(np.float32))
    (tmp_path / "val.json").write_text(json.dumps({"validation": ["p0", "p1", "p2"]}))
    out = tmp_path / "avg.safetensors"
    args = ["average", *map(str, paths), "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--validation", str(tmp_path / "val.json")]
    # This cache has no source photos to shift: the photo views are refused with a clear reason.
    with pytest.raises(SystemExit, match="source photos"):
        main(args)
    assert main([*args, "--validation-views", "aligned"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report == json.loads(capsys.readouterr().out)
    assert set(report["validation"]) == {*map(str, paths), "average"}
    assert all(0.0 <= v <= 1.0 for v in report["validation"].values())
    assert load_recognizer(out).class_names == []


def test_deepened_backbone_starts_as_the_old_one_and_its_new_blocks_learn() -> None:
    from pretraining.pretrain import deepened

    mcfg = replace(ModelConfig.tiny(), stem="conv")
    torch.manual_seed(2)
    old = Recognizer(mcfg, []).eval()
    grown = deepened(old, mcfg.depth + 2).eval()
    assert grown.cfg.depth == mcfg.depth + 2 and len(grown.blocks) == mcfg.depth + 2
    x = torch.rand(3, 3, mcfg.img_size, mcfg.img_size)
    assert torch.allclose(grown.embed(x), old.embed(x), atol=1e-6)  # same function at the start
    grown.train().requires_grad_(True)
    grown.embed(x).pow(2).sum().backward()
    new_block = grown.blocks[mcfg.depth]
    assert new_block.attn.proj.weight.grad.abs().sum() > 0  # the zero projections do get trained
    assert new_block.mlp.fc2.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="below"):
        deepened(old, mcfg.depth - 1)
    with pytest.raises(ValueError, match="backbone only"):
        deepened(Recognizer(mcfg, ["a", "b"]), mcfg.depth + 1)


def test_photo_views_choose_checkpoints_and_a_run_resumes_only_on_the_same_kind(tmp_path) -> None:
    from pretraining.shifts import SHIFTS

    train, val = split_holdout(tiny_distill_set(), {"p0", "p1", "p2"})
    gen = torch.Generator().manual_seed(3)
    photo = {s: torch.randint(0, 255, (len(val.images), 40, 40, 3), dtype=torch.uint8, generator=gen)
             for s in SHIFTS}
    mcfg = replace(ModelConfig.tiny(), stem="conv")
    cfg = PretrainConfig(epochs=1, batch_size=8, device="cpu")
    out = tmp_path / "bb.safetensors"
    _, report = pretrain(train, val, mcfg, cfg, out=out, photo_views=photo)
    assert set(report["history"][-1]["validation"]["views"]) == set(SHIFTS)
    assert report["validation_views"] == "photo"
    assert json.loads(out.with_suffix(".json").read_text())["validation_views"] == "photo"
    # Continuing it on the aligned stand-ins would compare scores of two different gates.
    with pytest.raises(ValueError, match="photo validation views"):
        pretrain(train, val, mcfg, replace(cfg, epochs=2), out=out, resume=True)
    # Views of other pictures than the validation rows are refused.
    with pytest.raises(ValueError, match="not the validation people"):
        pretrain(train, val, mcfg, cfg, photo_views={s: v[:-1] for s, v in photo.items()})


@pytest.mark.slow
def test_shifted_views_are_the_benchmark_shifts_of_the_cached_photos(tmp_path) -> None:
    """A tiny cache of real LFW photos: its views come out in the held rows' order, "clean" is
    the cache's crop, the others are re-detected shifted photos, and the file is reused."""
    from PIL import Image

    from bench.backbone import LFW
    from gslora_core.alignment import FaceAligner
    from pretraining.facecache import ALIGNED, INDEX, TEACHER, load_face_cache, shifted_views
    from pretraining.shifts import SHIFTS

    if not LFW.is_dir():  # as the other real-LFW tests: CI has ../shared beside the project
        pytest.skip(f"LFW not found at {LFW}")
    names = ["Amelie_Mauresmo", "Alvaro_Uribe", "Andre_Agassi"]
    files = [f"{n}/{n}_000{k}.jpg" for k in (1, 2) for n in names]
    aligner = FaceAligner(size=112)
    res = aligner.align_many([Image.open(LFW / f).convert("RGB") for f in files])
    rows = [{"identity": f.split("/")[0], "file": f, "method": r.method, "box": r.box,
             "teacher_ok": True} for f, r in zip(files, res)]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / INDEX).write_text(json.dumps({"n": len(rows), "root": str(LFW), "complete": True,
                                           "rows": rows}))
    np.save(cache / ALIGNED, np.stack([np.asarray(r.crop, np.uint8) for r in res]))
    np.save(cache / TEACHER, np.random.default_rng(0).standard_normal((len(rows), 8)).astype(np.float32))
    _, held = split_holdout(load_face_cache(cache), set(names[:2]))
    views = shifted_views(cache, set(held.identities))
    assert list(views) == list(SHIFTS)
    assert all(v.shape == (4, 112, 112, 3) and v.dtype == torch.uint8 for v in views.values())
    assert torch.equal(views["clean"], held.images)
    for s in SHIFTS[1:]:  # every shift changed the crops, and MTCNN still found every face
        assert (views[s].float() - held.images.float()).abs().mean() > 2, s
        assert (views[s].flatten(1).amax(1) > 0).all(), s
    grey = views["greyscale"].float()
    assert (grey[..., 0] - grey[..., 2]).abs().max() <= 2
    # Built once: a second call reads the file (the photos are no longer needed).
    meta = json.loads((cache / INDEX).read_text())
    (cache / INDEX).write_text(json.dumps({**meta, "root": str(tmp_path / "gone")}))
    again = shifted_views(cache, set(held.identities))
    assert all(torch.equal(again[s], views[s]) for s in SHIFTS)
    with pytest.raises(FileNotFoundError, match="source photos"):
        shifted_views(cache, {names[2]})


def test_fit_gap_scores_student_and_teacher_on_trained_on_and_held_out_people() -> None:
    """Teacher targets that cluster by identity verify perfectly; trained-on people are drawn
    outside the held-out and validation people."""
    from bench.fit_gap import FitGapConfig, fit_gap

    gen = torch.Generator().manual_seed(0)
    ids = [f"p{i % 30}" for i in range(120)]
    centres = torch.randn(30, 64, generator=gen)
    targets = torch.stack([centres[int(i[1:])] for i in ids]) + 0.01 * torch.randn(120, 64, generator=gen)
    images = torch.randint(0, 255, (120, 32, 32, 3), dtype=torch.uint8, generator=gen)
    data = DistillSet(images, targets, ids)
    model = Recognizer(ModelConfig.tiny(), [])
    res = fit_gap(model, data, {f"p{i}" for i in range(10)}, {f"p{i}" for i in range(10, 15)},
                  FitGapConfig(people=8, pairs=200))
    assert res["held_out"]["identities"] == 10 and res["trained_on"]["identities"] == 8
    # (not exactly 1: the 10-fold threshold is the lowest same-pair cosine of the other folds)
    assert all(res[k]["teacher"] >= 0.97 and res[k]["teacher"] > res[k]["student"] + 0.2 for k in res)


def test_every_pretrain_knob_is_a_flag_and_a_bad_one_fails_before_the_cache(tmp_path, capsys) -> None:
    from dataclasses import fields

    from gslora_core.cli import config_from_args
    from pretraining.cli import build_parser, main

    args = build_parser().parse_args(["pretrain", "--cache", "c", "--out", "o", "--weight-decay", "0.01",
                                      "--p-grey", "0.3", "--augment", "robust", "--keep-every-epoch"])
    cfg = config_from_args(PretrainConfig(), args)
    assert (cfg.weight_decay, cfg.p_grey, cfg.augment, cfg.keep_every_epoch) == (0.01, 0.3, "robust", True)
    assert replace(cfg, weight_decay=0.05, p_grey=0.15, augment="basic",
                   keep_every_epoch=False) == PretrainConfig()  # nothing else moved
    helptext = build_parser()._subparsers._group_actions[0].choices["pretrain"].format_help()
    assert all(f"--{f.name.replace('_', '-')}" in helptext for f in fields(PretrainConfig))
    # The cache does not exist: the bad knob is what gets reported.
    assert main(["pretrain", "--cache", str(tmp_path / "none"), "--out", str(tmp_path / "o.safetensors"),
                 "--augment", "heavy"]) == 2
    assert "unknown augment 'heavy'" in capsys.readouterr().err


def test_drop_path_regularises_training_only() -> None:
    """Stochastic depth makes two training passes differ, rises with depth, and is gone from the
    model pretraining returns (forgetting and inference must be deterministic)."""
    from timm.layers import DropPath

    from pretraining.pretrain import set_drop_path

    cfg = replace(ModelConfig.tiny(), stem="conv")
    model = Recognizer(cfg, [])
    set_drop_path(model.backbone, 0.3)
    rates = [b.drop_path1.drop_prob if isinstance(b.drop_path1, DropPath) else 0.0
             for b in model.backbone.blocks]
    assert rates == pytest.approx([0.0, 0.15, 0.3])
    x = torch.rand(4, 3, cfg.img_size, cfg.img_size)
    model.train()
    torch.manual_seed(0)
    a = model.embed(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model.embed(x))
    model.eval()
    assert torch.allclose(model.embed(x), model.embed(x))
    with pytest.raises(ValueError, match="drop_path"):
        PretrainConfig(drop_path=1.0)
    data = tiny_distill_set()
    trained, _ = pretrain(data, None, cfg, PretrainConfig(epochs=1, batch_size=8, device="cpu",
                                                          drop_path=0.3))
    assert not any(isinstance(m, DropPath) for m in trained.modules())


def test_mixed_faces_take_the_teachers_embedding_of_the_blend() -> None:
    """Blended rows carry the teacher's (centred) embedding of exactly the blended picture; the
    others, and blends the teacher fails on, stay as they were."""
    from pretraining.pretrain import mixed_faces

    data = tiny_distill_set(n=16, wide_margin=4)
    source = data.wide.permute(0, 3, 1, 2)
    center = torch.full((8,), 0.5)
    seen: list[tuple[np.ndarray, float]] = []

    def teacher(arr: np.ndarray, inner: float) -> np.ndarray | None:
        seen.append((arr.copy(), inner))
        # A non-linear function of the picture, so a blend's target is not the mean of two.
        return np.full(8, float((arr.astype(np.float64) ** 2).mean()), dtype=np.float32)

    cfg = PretrainConfig(p_mix=0.5, mix_min=0.3, mix_max=0.7)
    gen = torch.Generator().manual_seed(0)
    src, tgt, made = mixed_faces(source, data.targets, 40 / 48, center, teacher, cfg, gen)
    assert made == 8 and len(seen) == 8 and all(inner == 40 / 48 for _, inner in seen)
    changed = [i for i in range(16) if not torch.equal(src[i], source[i])]
    assert len(changed) == 8
    blends = {arr.tobytes(): arr for arr, _ in seen}
    for i in changed:
        arr = src[i].permute(1, 2, 0).numpy()
        assert arr.tobytes() in blends  # what the student will see is what the teacher saw
        expect = float((arr.astype(np.float64) ** 2).mean()) - 0.5
        assert torch.allclose(tgt[i], torch.full((8,), expect), atol=1e-3)
        # A blend of two different faces of the batch: between them pixel by pixel.
        assert not any(torch.equal(src[i], source[j]) for j in range(16))
    unchanged = [i for i in range(16) if i not in changed]
    assert torch.equal(tgt[unchanged], data.targets[unchanged])
    assert torch.equal(source, data.wide.permute(0, 3, 1, 2))  # the cache is not written

    # Off, or a teacher that fails on every blend: the batch is untouched.
    off, off_t, none = mixed_faces(source, data.targets, 1.0, center, teacher,
                                   PretrainConfig(), gen)
    assert none == 0 and off is source and off_t is data.targets
    kept, kept_t, zero = mixed_faces(source, data.targets, 1.0, center, lambda a, i: None, cfg, gen)
    assert zero == 0 and torch.equal(kept, source) and torch.equal(kept_t, data.targets)


def test_pretrain_with_mixed_faces_needs_a_teacher_and_counts_its_blends() -> None:
    train, _ = split_holdout(tiny_distill_set(), {"p0"})
    mcfg = replace(ModelConfig.tiny(), stem="conv")
    cfg = PretrainConfig(epochs=1, batch_size=8, device="cpu", p_mix=0.25)
    with pytest.raises(ValueError, match="teacher"):
        pretrain(train, None, mcfg, cfg)
    calls = []

    def teacher(arr: np.ndarray, inner: float) -> np.ndarray:
        calls.append(arr.shape)
        return np.ones(8, dtype=np.float32)

    _, report = pretrain(train, None, mcfg, cfg, teacher=teacher)
    steps = len(train.images) // 8
    assert report["history"][0]["mixed_faces"] == len(calls) == 2 * steps
    with pytest.raises(ValueError, match="p_mix"):
        PretrainConfig(p_mix=1.5)
    with pytest.raises(ValueError, match="mix weights"):
        PretrainConfig(mix_min=0.8, mix_max=0.2)


def test_same_person_rows_pair_two_pictures_of_one_person_drawn_uniformly() -> None:
    from pretraining.pretrain import PersonGroups, same_person_rows

    ids = ["a"] * 6 + ["b", "b", "c", "d", "d", "d"]  # c has one picture: never paired
    groups = PersonGroups.of(ids)
    assert len(groups.count) == 3 and sorted(groups.count.tolist()) == [2, 3, 6]
    rows = same_person_rows(groups, 3000, torch.Generator().manual_seed(0)).view(-1, 2)
    assert all(ids[x] == ids[y] and x != y for x, y in rows.tolist())
    people = [ids[x] for x, _ in rows.tolist()]
    share = {p: people.count(p) / len(people) for p in "abd"}
    assert "c" not in people and all(abs(v - 1 / 3) < 0.05 for v in share.values())
    a_rows = {x for pair in rows.tolist() for x in pair if ids[x] == "a"}
    assert a_rows == set(range(6))  # every picture of a person takes part
    again = same_person_rows(groups, 3000, torch.Generator().manual_seed(0)).view(-1, 2)
    assert torch.equal(rows, again)
    with pytest.raises(ValueError, match="two training pictures"):
        pretrain(DistillSet(torch.zeros(4, 40, 40, 3, dtype=torch.uint8), torch.randn(4, 8),
                            ["a", "b", "c", "d"]), None, replace(ModelConfig.tiny(), stem="conv"),
                 PretrainConfig(epochs=1, batch_size=4, device="cpu", p_pairs=0.5))


def test_pair_term_is_the_gap_between_the_pairs_cosines() -> None:
    from pretraining.pretrain import distill_loss

    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(8, 5, generator=gen)
    student = torch.randn(8, 5, generator=gen)
    base, parts = distill_loss(student, teacher, 1.0)
    assert "pair" not in parts
    loss, parts = distill_loss(student, teacher, 1.0, pairs=2, pair_weight=3.0)
    s, t = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    gap = [float((s[2 * i] @ s[2 * i + 1]) - (t[2 * i] @ t[2 * i + 1])) for i in range(2)]
    expect = (gap[0] ** 2 + gap[1] ** 2) / 2
    assert abs(parts["pair"] - expect) < 1e-6
    assert abs(float(loss) - float(base) - 3.0 * expect) < 1e-5
    # A student that is the teacher (up to scale) has no gap at all.
    _, same = distill_loss(2 * teacher, teacher, 1.0, pairs=4, pair_weight=1.0)
    assert same["pair"] < 1e-10 and same["relation"] < 1e-10


def test_pretrain_with_same_person_pairs_logs_their_gap_and_refuses_mixed_faces() -> None:
    train, _ = split_holdout(tiny_distill_set(), {"p0"})
    mcfg = replace(ModelConfig.tiny(), stem="conv")
    cfg = PretrainConfig(epochs=2, batch_size=8, device="cpu", p_pairs=0.5)
    _, report = pretrain(train, None, mcfg, cfg)
    assert all(r["pair"] >= 0 for r in report["history"])
    _, plain = pretrain(train, None, mcfg, replace(cfg, p_pairs=0.0))
    assert "pair" not in plain["history"][0]
    with pytest.raises(ValueError, match="p_pairs and p_mix"):
        PretrainConfig(p_pairs=0.25, p_mix=0.25)
    with pytest.raises(ValueError, match="p_pairs"):
        PretrainConfig(p_pairs=1.5)
