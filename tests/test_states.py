"""The sparse task's shortcuts equal the full path (tiny random model, milliseconds each):
states cached below the first active block, the top block's class-token row alone, the "after"
measured from the "before"'s states, and training from cached states."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from tiny import forget_people, images, randomise_task, tiny_gallery, tiny_model

from gslora_core import lora
from gslora_core.config import ForgetConfig
from gslora_core.evaluation import snapshot
from gslora_core.metrics import embed_all
from gslora_core.states import StateCache, embed_states, mid_states

CFG = ForgetConfig(batch_size=4, eval_every=0, steps=16, stage_steps=4, check_every=1,
                   margin=5.0, gate="off")  # a margin no picture reaches: the task runs to its cap
# The same tasks through the gate's machinery (a second pass with the adapters muted, states
# under the gated change), the gate wide open on a tiny random model: the same numbers.
OPEN = {"gate": "on", "gate_c": 5.0, "gate_lead": -5.0}
GATES = pytest.mark.parametrize("gated", [False, True], ids=["ungated", "gated"])


def cfg(gated: bool, **kw) -> ForgetConfig:
    return replace(CFG, **(OPEN if gated else {}), **kw)


def adapted_model():
    model = tiny_model()
    lora.add_task(model.blocks, "task1", rank=4, lora_alpha=1.0)
    randomise_task(model, "task1")
    return model


@pytest.mark.parametrize("block", [0, 1, 2])
def test_mid_state_then_the_rest_is_the_whole_embedding(block):
    model, x = adapted_model(), images()
    h = model.kept_rows(model.mid_state(x, block), block)
    assert torch.allclose(model.embed_from_mid(h, block), model.embed(x), atol=1e-6)


def test_the_top_block_needs_the_class_token_row_only():
    model, x = adapted_model(), images()
    top = len(model.blocks) - 1
    h = model.kept_rows(model.mid_state(x, top), top)
    assert h.shape[1] == 1
    assert torch.allclose(model.embed_from_mid(h, top), model.embed(x), atol=1e-6)


@pytest.mark.parametrize("block", [0, 2])
def test_states_give_the_evaluation_embeddings(block):
    model, x = adapted_model(), images(10)
    assert torch.allclose(embed_states(model, mid_states(model, x, block)),
                          embed_all(model, x), atol=1e-6)


def test_a_state_cache_fills_once_per_picture_and_view():
    model, x = adapted_model(), images(6)
    cache = StateCache(model, x, 1)
    a = cache(torch.tensor([3, 1, 3]))
    assert cache.computed == 2
    cache(torch.tensor([1, 3]))
    assert cache.computed == 2  # nothing new
    cache(torch.tensor([1]), flip=True)
    assert cache.computed == 3
    assert torch.allclose(a[0], model.mid_state(x[3:4], 1)[0], atol=1e-6)


def count_full_passes(monkeypatch) -> list[int]:
    """A 1 for every full pass over the gallery a task takes (before it, or after it)."""
    import gslora_core.forgetting as fg
    import gslora_core.task as task
    passes: list[int] = []
    for module in (fg, task):
        monkeypatch.setattr(module, "snapshot",
                            lambda *a, **k: passes.append(1) or snapshot(*a, **k))
    return passes


def test_a_one_block_task_measures_after_from_the_states_before_kept(monkeypatch):
    """The top-only task's "after" is read from the "before"'s top-block states, and equals a
    full pass over the gallery; the "before" passed in is used as it is (no second pass)."""
    model, gallery = tiny_model(), tiny_gallery()
    before = snapshot(model, gallery)
    passes = count_full_passes(monkeypatch)
    cfg = replace(CFG, stage_steps=100)  # never releases a second block
    report, after = forget_people(model, gallery, ["ann"], cfg, before=before)
    assert report["blocks_used"] == 1 and report["before_seconds"] == 0.0
    assert passes == [], "neither before nor after ran a full pass"
    full = snapshot(model, gallery)
    assert torch.equal(after.pred, full.pred)
    assert torch.allclose(after.test_cos, full.test_cos, atol=1e-6)
    assert torch.allclose(after.train_cos, full.train_cos, atol=1e-6)
    assert after.fits(model, gallery) and not before.fits(model, gallery)


@GATES
def test_a_task_that_released_blocks_measures_after_with_a_full_pass(monkeypatch, gated):
    model, gallery = tiny_model(), tiny_gallery()
    before = snapshot(model, gallery)
    passes = count_full_passes(monkeypatch)
    report, after = forget_people(model, gallery, ["ann"], cfg(gated), before=before)
    assert report["blocks_used"] == 3 and report["stop"]["reason"] == "step cap"
    assert report["stop"]["text"].startswith("stopped at the cap (16 steps): ")
    assert passes == [1]
    full = snapshot(model, gallery)
    assert torch.allclose(after.test_cos, full.test_cos, atol=1e-6)


@GATES
def test_training_from_cached_states_equals_the_full_forward(monkeypatch, gated):
    """The same task with and without cached states: the same losses, releases and adapters."""
    import gslora_core.task as task
    runs = []
    for cache in (False, True):
        monkeypatch.setattr(task, "CACHE_STATES", cache)
        model, gallery = tiny_model(), tiny_gallery()
        report, _ = forget_people(model, gallery, ["dee"], cfg(gated))
        params = [p.detach().clone() for p in lora.iter_task_parameters(model.blocks, "task1")]
        runs.append(([p["loss"] for p in report["curve"]],
                     [p.get("released") for p in report["curve"]], params))
    (loss_a, rel_a, par_a), (loss_b, rel_b, par_b) = runs
    assert rel_a == rel_b and [r for r in rel_a if r is not None] == [1, 0]
    assert loss_b == pytest.approx(loss_a, rel=1e-4, abs=1e-5)
    for a, b in zip(par_a, par_b):
        assert torch.allclose(a, b, atol=1e-4)


@GATES
def test_the_default_schedule_trains_the_top_block_alone_until_it_releases_one(gated):
    """Release schedule: the first steps give gradients to the top block's adapter only; blocks
    below are released one at a time from the top, and stay exactly zero until then."""
    model, gallery = tiny_model(), tiny_gallery()
    seen = []

    def spy(point):
        if "step" not in point:  # a stage, in words
            return
        seen.append({n.split(".")[2] for n, p in model.named_parameters()
                     if "lora_" in n and p.grad is not None and bool(p.grad.abs().sum() > 0)})

    report, _ = forget_people(model, gallery, ["ann"], cfg(gated), on_progress=spy)
    assert seen[0] == {"2"}
    assert set().union(*seen) == {"0", "1", "2"} and report["blocks_used"] == 3
    released = [p["released"] for p in report["curve"] if "released" in p]
    assert released == [1, 0]
    first = next(i for i, p in enumerate(report["curve"]) if "released" in p)
    assert all(p["group_norms"][:2] == [0.0, 0.0] for p in report["curve"][:first + 1])


@pytest.mark.parametrize("block", [0, 1])
def test_the_top_mlp_on_the_class_row_alone_changes_nothing(block):
    """From a lower block, ``embed_from_mid`` runs the top block's MLP on the class token's row
    only: bit for bit what running every block whole and pooling gives."""
    model, x = adapted_model(), images(7)
    h = model.mid_state(x, block)
    bb, blk = model.backbone, model.blocks[block]
    whole = h + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(h))))
    for later in model.blocks[block + 1:]:
        whole = later(whole)
    assert torch.equal(model.embed_from_mid(h, block), bb.forward_head(bb.norm(whole)))


@pytest.mark.parametrize("block", [0, 2])
def test_the_stem_tokens_then_the_blocks_give_the_state(block):
    model, x = adapted_model(), images()
    assert torch.equal(model.mid_state_from_stem(model.stem_tokens(x), block),
                       model.mid_state(x, block))


def two_tasks_counting_stems(monkeypatch, costly: bool, gated: bool = False):
    """Two tasks that release every block, with the stem costly or not: their losses, the
    first one's "after" and its "before", and the pictures the stem ran on after the first
    snapshot."""
    from gslora_core.model import Recognizer
    monkeypatch.setattr(Recognizer, "stem_is_costly", property(lambda self: costly))
    model, gallery = tiny_model(), tiny_gallery()
    before = snapshot(model, gallery)
    stem_runs: list[int] = []
    stem = model.stem_tokens
    monkeypatch.setattr(model, "stem_tokens", lambda x: stem_runs.append(len(x)) or stem(x))
    first, after = forget_people(model, gallery, ["ann"], cfg(gated), before=before)
    second, _ = forget_people(model, gallery, ["bob"], cfg(gated), before=after)
    assert first["blocks_used"] == second["blocks_used"] == 3
    return [p["loss"] for p in first["curve"] + second["curve"]], after, before, stem_runs


@GATES
def test_a_costly_stem_runs_once_per_picture_and_view_however_many_tasks_release_blocks(
        monkeypatch, gated):
    """A hybrid's trunk is most of a pass: its stem tokens are taken once (in the first
    snapshot) and every released block, "after" and next task starts from them, with the
    numbers of the pass from the pictures."""
    loss_a, after_a, before_a, runs_a = two_tasks_counting_stems(monkeypatch, False, gated)
    loss_b, after_b, before_b, runs_b = two_tasks_counting_stems(monkeypatch, True, gated)
    assert runs_a and before_a.grids.stems["train"] is None  # a cheap stem's are not kept
    assert runs_b == [], "the trunk ran again"
    assert all(after_b.grids.stems[p] is before_b.grids.stems[p] for p in ("test", "train"))
    assert loss_b == pytest.approx(loss_a, rel=1e-5, abs=1e-6)
    assert torch.allclose(after_a.test_cos, after_b.test_cos, atol=1e-6)


@GATES
def test_a_task_that_released_the_second_block_starts_and_ends_from_the_grids_kept_there(
        monkeypatch, gated):
    """With the stem costly, the states at the block below the top come from the "before"'s
    grids, and the "after" is measured from them (nothing runs from the stem tokens), with
    the numbers of a full pass."""
    from gslora_core.model import Recognizer
    monkeypatch.setattr(Recognizer, "stem_is_costly", property(lambda self: True))
    model, gallery = tiny_model(), tiny_gallery()
    before = snapshot(model, gallery)
    from_stem: list[int] = []
    run = model.mid_state_from_stem

    def counted(x, block, start=0):
        if start == 0:
            from_stem.append(len(x))
        return run(x, block, start)
    monkeypatch.setattr(model, "mid_state_from_stem", counted)
    # No fallback BND: a stuck gated task would ease it before releasing the block under test.
    report, after = forget_people(model, gallery, ["ann"],
                                  cfg(gated, stage_steps=6, steps=11, gate_bnd_fallback=0.0),
                                  before=before)
    assert report["blocks_used"] == 2
    assert from_stem == [], "a pass started from the stem tokens"
    assert after.grids is before.grids
    monkeypatch.undo()
    full = snapshot(model, gallery)
    assert torch.allclose(after.test_cos, full.test_cos, atol=1e-6)
    assert torch.allclose(after.train_cos, full.train_cos, atol=1e-6)
