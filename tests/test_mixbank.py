"""Mix bank (pretraining/mixbank.py, scripts/build_mix_bank.py) on a tiny face cache.

The builder runs with its stand-in teacher (the mean colour of each blend), so these tests need
no dlib; the real teacher's behaviour on blends is tested in tests/test_face_cache_build.py."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gslora_core.config import ModelConfig
from pretraining.config import PretrainConfig
from pretraining.facecache import ALIGNED, INDEX, TEACHER, WIDE, load_face_cache
from pretraining.mixbank import (
    MIX,
    MIX_INDEX,
    MIX_TEACHER,
    MixBank,
    bank_faces,
    blend_faces,
    draw_pairs,
    load_mix_bank,
)
from pretraining.pretrain import pretrain, split_holdout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import build_mix_bank  # noqa: E402


def tiny_cache(path: Path, people: int = 6, per: int = 3, side: int = 24, margin: int = 4) -> Path:
    """A face cache of random faces: ``people`` identities, ``per`` pictures each, wide crops."""
    n = people * per
    gen = np.random.default_rng(0)
    wide = gen.integers(0, 256, (n, side + 2 * margin, side + 2 * margin, 3), dtype=np.uint8)
    rows = [{"identity": f"p{i // per}", "file": f"p{i // per}/{i}.jpg", "method": "mtcnn",
             "teacher_ok": True} for i in range(n)]
    path.mkdir(parents=True, exist_ok=True)
    (path / INDEX).write_text(json.dumps({"n": n, "complete": True, "rows": rows}))
    np.save(path / ALIGNED, np.ascontiguousarray(wide[:, margin:-margin, margin:-margin]))
    np.save(path / WIDE, wide)
    np.save(path / TEACHER, gen.standard_normal((n, 128)).astype(np.float32))
    return path


def names_file(path: Path, names: list[str]) -> str:
    path.write_text(json.dumps({"people": names}))
    return str(path)


def build(tmp_path: Path, cache: Path, *extra: str, out: Path | None = None) -> Path:
    out = out or cache / "mix_bank"
    argv = ["--cache", str(cache), "--holdout", names_file(tmp_path / "held.json", ["p0"]),
            "--validation", names_file(tmp_path / "val.json", ["p1"]), "--out", str(out),
            "--count", "10", "--chunk", "4", "--teacher", "mean-colour", *extra]
    assert build_mix_bank.main(argv) == 0
    return out


def test_blends_weigh_two_faces_and_pairs_are_two_different_faces() -> None:
    a = torch.full((2, 3, 2, 2), 200, dtype=torch.uint8)
    b = torch.full((2, 3, 2, 2), 100, dtype=torch.uint8)
    out = blend_faces(a, b, torch.tensor([0.3, 0.7]))
    assert out.dtype == torch.uint8
    assert out[0].unique().tolist() == [130] and out[1].unique().tolist() == [170]
    rows, lam = draw_pairs(5, 400, 0.3, 0.7, seed=1)
    assert rows.shape == (400, 2) and (rows[:, 0] != rows[:, 1]).all()
    assert set(rows.ravel()) == set(range(5))
    assert lam.min() >= 0.3 and lam.max() <= 0.7
    again = draw_pairs(5, 400, 0.3, 0.7, seed=1)
    assert (again[0] == rows).all() and (again[1] == lam).all()
    with pytest.raises(ValueError, match="two training faces"):
        draw_pairs(1, 3, 0.3, 0.7, seed=0)


def test_bank_blends_training_people_only_and_resumes_to_the_same_bank(tmp_path, capsys) -> None:
    cache = tiny_cache(tmp_path / "cache")
    out = build(tmp_path, cache)
    meta = json.loads((out / MIX_INDEX).read_text())
    assert meta["complete"] and meta["done"] == 10 and meta["excluded"] == ["p0", "p1"]
    assert not {p for a, b, _ in meta["pairs"] for p in (a, b)} & {"p0", "p1"}
    mix, tgt = np.load(out / MIX), np.load(out / MIX_TEACHER)
    assert mix.shape == (10, 32, 32, 3) and meta["inner"] == 24 / 32
    # Each blend lies between two pictures of the people it names, at its weight.
    wide = np.load(cache / WIDE).astype(np.float64)
    ids = [f"p{i // 3}" for i in range(18)]
    for face, (pa, pb, lam) in zip(mix, meta["pairs"]):
        best = min(np.abs(lam * wide[i] + (1 - lam) * wide[j] - face).max()
                   for i in range(18) for j in range(18) if ids[i] == pa and ids[j] == pb and i != j)
        assert best <= 1.0
    # The stand-in teacher embedded exactly the stored blend.
    assert np.allclose(tgt[:, :3], mix.reshape(10, -1, 3).mean(1) / 255.0, atol=1e-5)

    # Stopped after the first chunk: the rerun finishes it, to the same bank.
    meta["done"], meta["complete"] = 4, False
    (out / MIX_INDEX).write_text(json.dumps(meta))
    scrambled = np.load(out / MIX, mmap_mode="r+")
    scrambled[4:] = 0
    scrambled.flush()
    del scrambled
    build(tmp_path, cache)
    assert "4 done" in capsys.readouterr().out
    assert (np.load(out / MIX) == mix).all() and np.allclose(np.load(out / MIX_TEACHER), tgt)
    build(tmp_path, cache)
    assert "already complete" in capsys.readouterr().out
    # Two worker processes build the same bank as one.
    two = build(tmp_path, cache, "--workers", "2", out=tmp_path / "two")
    assert (np.load(two / MIX) == mix).all() and np.allclose(np.load(two / MIX_TEACHER), tgt)
    # Another plan (another seed) in the same folder starts over rather than mixing two plans.
    build(tmp_path, cache, "--seed", "3")
    assert "starting over" in capsys.readouterr().out
    assert json.loads((out / MIX_INDEX).read_text())["seed"] == 3


def test_loading_refuses_a_bank_of_people_this_run_must_not_see(tmp_path) -> None:
    cache = tiny_cache(tmp_path / "cache")
    out = build(tmp_path, cache)
    data, _ = split_holdout(load_face_cache(cache), {"p0", "p1"})
    bank = load_mix_bank(out, set(data.identities))
    assert bank.images.shape == (10, 32, 32, 3) and bank.targets.shape == (10, 128)
    with pytest.raises(ValueError, match="not training people"):
        load_mix_bank(out, set(data.identities) - {"p2"})  # e.g. p2 is a validation person here
    # A blend the teacher failed on is left out.
    t = np.load(out / MIX_TEACHER, mmap_mode="r+")
    t[3] = np.nan
    t.flush()
    del t
    assert len(load_mix_bank(out, set(data.identities)).images) == 9
    with pytest.raises(FileNotFoundError, match="not a mix bank"):
        load_mix_bank(tmp_path, set())


def test_bank_faces_replace_a_share_of_the_batch_with_bank_rows() -> None:
    gen = torch.Generator().manual_seed(0)
    source = torch.zeros(8, 3, 4, 4, dtype=torch.uint8)
    targets = torch.zeros(8, 5)
    bank = torch.arange(1, 4, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 4, 4)
    bank_t = torch.arange(1, 4, dtype=torch.float32).view(3, 1).expand(3, 5)
    src, tgt = bank_faces(source, targets, bank, bank_t, 0.5, gen)
    changed = [i for i in range(8) if src[i].any()]
    assert len(changed) == 4 and (source == 0).all()  # the cache's own rows are not written
    for i in changed:  # each replaced row is one bank face with that face's own target
        v = int(src[i, 0, 0, 0])
        assert (src[i] == v).all() and (tgt[i] == v).all()
    assert (tgt[[i for i in range(8) if i not in changed]] == 0).all()
    same, same_t = bank_faces(source, targets, bank, bank_t, 0.0, gen)
    assert same is source and same_t is targets
    # The first ``keep`` rows (a batch's same-person pairs) are never replaced, even when the
    # share asks for more rows than are left.
    for share in (0.5, 1.0):
        kept, kept_t = bank_faces(source, targets, bank, bank_t, share, gen, keep=6)
        assert not kept[:6].any() and not kept_t[:6].any() and kept[6:].all()


def test_pretrain_draws_from_the_bank_and_says_so(tmp_path) -> None:
    cache = tiny_cache(tmp_path / "cache")
    out = build(tmp_path, cache)
    data, _ = split_holdout(load_face_cache(cache), {"p0", "p1"})
    bank = load_mix_bank(out, set(data.identities))
    mcfg = replace(ModelConfig.tiny(), img_size=24, stem="conv")
    cfg = PretrainConfig(epochs=1, batch_size=4, device="cpu", p_bank=0.5)
    with pytest.raises(ValueError, match="mix bank"):
        pretrain(data, None, mcfg, cfg)
    small = MixBank(bank.images[:, :24, :24], bank.targets, bank.identities, 1.0)
    with pytest.raises(ValueError, match="views source"):
        pretrain(data, None, mcfg, cfg, bank=small)
    ckpt = tmp_path / "bb.safetensors"
    _, report = pretrain(data, None, mcfg, cfg, out=ckpt, bank=bank)
    assert report["history"][0]["bank_faces"] == 2 * (len(data.images) // 4)
    saved = json.loads(ckpt.with_suffix(".json").read_text())
    assert saved["mix_bank"] == 10 and saved["pretrain"]["p_bank"] == 0.5
    # Resuming continues only with the same bank (here: one blend fewer is another bank).
    fewer = MixBank(bank.images[1:], bank.targets[1:], bank.identities[1:], bank.inner)
    with pytest.raises(ValueError, match="resume it with the same bank"):
        pretrain(data, None, mcfg, replace(cfg, epochs=2), out=ckpt, bank=fewer, resume=True)
    _, more = pretrain(data, None, mcfg, replace(cfg, epochs=2), out=ckpt, bank=bank, resume=True)
    assert [r["epoch"] for r in more["history"]] == [1, 2]
    with pytest.raises(ValueError, match="p_bank"):
        PretrainConfig(p_bank=-0.1)


def test_pretrain_command_needs_both_bank_flags_and_checks_the_banks_people(tmp_path, capsys) -> None:
    from pretraining.cli import main

    cache = tiny_cache(tmp_path / "cache")
    out = build(tmp_path, cache)
    ckpt = str(tmp_path / "bb.safetensors")
    base = ["pretrain", "--cache", str(cache), "--out", ckpt, "--holdout", str(tmp_path / "held.json"),
            "--model-size", "tiny", "--epochs", "1", "--batch-size", "4", "--threads", "1"]
    with pytest.raises(SystemExit, match="go together"):
        main(base + ["--p-bank", "0.5"])
    # Without --validation the validation person p1 is a training person, but the bank was
    # built without p1 and so holds only training people: accepted. The reverse is refused.
    other = build_mix_bank.main(["--cache", str(cache), "--holdout", str(tmp_path / "held.json"),
                                 "--out", str(tmp_path / "bank_all"), "--count", "40",
                                 "--teacher", "mean-colour"])
    assert other == 0
    with pytest.raises(SystemExit, match="not training people"):
        main(base + ["--validation", str(tmp_path / "val.json"), "--p-bank", "0.5",
                     "--mix-bank", str(tmp_path / "bank_all")])
    assert main(base + ["--validation", str(tmp_path / "val.json"), "--p-bank", "0.5",
                        "--mix-bank", str(out), "--validation-views", "aligned"]) == 0
    assert "mix bank: 10 teacher-labelled blends" in capsys.readouterr().err
