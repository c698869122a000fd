"""The gated change (gslora_core/gate.py) on a tiny random model: every path to an answer gives
the same gated embedding, a picture the gate keeps shut answers as the untouched recognizer, and
a saved recognizer keeps its gates."""
from __future__ import annotations

import threading

import pytest
import torch
from tiny import images, randomise_task, tiny_gallery, tiny_model

from gslora_core import gate, lora
from gslora_core.config import TaskRecord
from gslora_core.evaluation import snapshot
from gslora_core.metrics import embed_all
from gslora_core.model import load_recognizer, merged_copy, save_recognizer
from gslora_core.states import embed_states, mid_states


def gated_model(k: float = 30.0, c: float = 0.15, tau: float = 0.3, top_only: bool = True,
                classes: tuple[str, ...] = ("ann",), lead: float = -0.2):
    """A tiny model with one trained-looking gated task (its change in the top block alone, or
    in every block)."""
    model = tiny_model()
    model.add_task(TaskRecord("task1", list(classes), rank=4, lora_alpha=1.0,
                              gate=gate.Gate(classes, k, c, tau, lead).to_dict()))
    randomise_task(model, "task1")
    if top_only:
        with torch.no_grad():
            for group in lora.group_params(model.blocks, "task1")[:-1]:
                for p in group:
                    p.zero_()
    return model


def untouched(model, x):
    with lora.muted(t.name for t in model.tasks):
        return model.embed(x)


def test_the_gate_opens_for_pictures_nearest_a_forgotten_class_and_stays_shut_for_the_rest():
    g = gate.Gate(("bob",), k=30.0, c=0.1, tau=0.5)
    cos0 = torch.tensor([[0.3, 0.7, 0.1],  # nearest bob, above tau - c: open
                         [0.9, 0.6, 0.0],  # near bob, but nearer ann (kept): shut
                         [0.0, 0.4, 0.0],  # nearest bob, at tau - c: half open
                         [0.1, 0.3, 0.0]])  # nearest bob, far under tau - c: shut
    opened = gate.openness([g], cos0, ["ann", "bob", "cid"])
    assert opened[0] > 0.999 and opened[1] < 1e-3 and opened[3] < 0.05
    assert opened[2] == pytest.approx(0.5)
    lead = gate.openness([gate.Gate(("bob",), 30.0, 0.1, 0.5, lead=0.5)], cos0, ["ann", "bob", "cid"])
    assert lead[0] < 0.5  # bob leads ann by 0.4 only
    e0, e = torch.zeros(4, 2), torch.ones(4, 2)
    assert torch.allclose(gate.blend(e0, e, opened), opened[:, None].expand(4, 2))


def test_muting_leaves_a_tasks_adapters_out_in_this_thread_only():
    model, x = gated_model(), images()
    plain = tiny_model().embed(x)  # the same weights without any task
    with lora.muted(["task1"]):
        assert torch.allclose(model.blocks(model.stem_tokens(x)),
                              tiny_model().blocks(tiny_model().stem_tokens(x)), atol=1e-6)
        seen = {}
        worker = threading.Thread(target=lambda: seen.update(e=untouched_off(model, x)))
        worker.start()
        worker.join()
    assert not torch.allclose(seen["e"], plain, atol=1e-4)  # the other thread kept the adapters
    assert torch.allclose(untouched(model, x), plain, atol=1e-6)


def untouched_off(model, x):
    """The ungated change (no gate, nothing muted): what the adapters alone do."""
    return model._embed_from_tokens(model.stem_tokens(x))


def test_the_answer_is_the_untouched_embedding_moved_by_the_gates_share():
    model, x = gated_model(c=0.5), images(8)
    e0, e = untouched(model, x), untouched_off(model, x)
    g = gate.openness([gate.Gate.from_dict(model.tasks[0].gate)], model.head.cosine(e0),
                      model.class_names)
    assert torch.allclose(model.embed(x), e0 + g[:, None] * (e - e0), atol=1e-6)


def test_a_shut_gate_answers_exactly_as_the_untouched_recognizer():
    model, x = gated_model(tau=5.0), images(8)  # no cosine comes near tau: every gate shut
    assert torch.allclose(model.embed(x), untouched(model, x), atol=1e-6)
    open_model = gated_model(tau=-5.0, lead=-5.0)  # every gate open: the whole change
    assert torch.allclose(open_model.embed(x), untouched_off(open_model, x), atol=1e-6)


@pytest.mark.parametrize("block", [0, 1, 2])
def test_states_under_the_gated_change_give_the_whole_gated_embedding(block):
    model, x = gated_model(top_only=False, c=0.5), images()
    assert model.gated_from() == 0
    h = model.kept_rows(model.mid_state(x, 0), 0)
    assert torch.allclose(model.embed_from_mid(h, 0), model.embed(x), atol=1e-6)
    top_model = gated_model(c=0.5)
    assert top_model.gated_from() == len(top_model.blocks) - 1
    h = top_model.kept_rows(top_model.mid_state(x, block), block)
    assert torch.allclose(top_model.embed_from_mid(h, block), top_model.embed(x), atol=1e-6)
    assert torch.allclose(embed_states(top_model, mid_states(top_model, x, block)),
                          embed_all(top_model, x), atol=1e-6)


@pytest.mark.parametrize("top_only", [True, False])
def test_a_snapshot_of_a_gated_model_is_its_whole_pass(top_only):
    model, gallery = gated_model(top_only=top_only, c=0.5), tiny_gallery()
    snap = snapshot(model, gallery)
    assert torch.allclose(snap.test_emb, embed_all(model, gallery.test_x), atol=1e-5)
    assert torch.allclose(snap.train_emb, embed_all(model, gallery.train_x), atol=1e-5)
    assert (snap.top_test is None) == (not top_only)  # top states kept only when they hold


def test_a_saved_recognizer_keeps_its_gate_and_answers_the_same(tmp_path):
    model, x = gated_model(c=0.5), images()
    back = load_recognizer(save_recognizer(model, tmp_path / "m.safetensors"))
    assert back.tasks[0].gate == model.tasks[0].gate
    assert torch.allclose(back.embed(x), model.embed(x), atol=1e-6)
    merged = merged_copy(model)  # a gated task stays an adapter with its gate
    assert not merged.tasks[0].merged and lora.task_names(merged.blocks) == ["task1"]
    assert torch.allclose(merged.embed(x), model.embed(x), atol=1e-6)


def test_a_task_leaves_alone_the_pictures_its_gate_keeps_shut_and_says_so():
    """A forget picture the untouched recognizer placed nearer a kept person than a forgotten
    one gets none of the change, so the stopping rule does not wait for it: the task ends
    "done" and its report counts those pictures."""
    from tiny import forget_people

    from gslora_core.config import ForgetConfig
    from gslora_core.evaluation import snapshot

    model, gallery = tiny_model(), tiny_gallery()
    before = snapshot(model, gallery)
    cfg = ForgetConfig(batch_size=4, eval_every=0, steps=40, check_every=1, gate="on")
    report, after = forget_people(model, gallery, ["ann"], cfg, before=before)
    stop = report["stop"]
    mine = (gallery.train_y == 0).nonzero().squeeze(1)
    cos0 = before.train_cos[mine]  # the untouched recognizer's answers (both views averaged)
    nearer_someone = (cos0[:, 1:].max(1).values > cos0[:, 0]).sum().item()
    assert stop["left_alone"] >= 1 and stop["left_alone"] >= nearer_someone - 1
    assert f"{stop['left_alone']} training picture" in stop["text"]
    assert stop["reason"] == "done", stop["text"]


def test_both_views_of_a_picture_share_the_wider_of_their_gates():
    """The answer averages a picture's two views; one gate for both (the wider), so a picture
    at the gate's edge does not keep half the change in one view and its old answer in the
    other."""
    import torch.nn.functional as F

    model, x = gated_model(c=0.5), images(8)
    views = (x, x.flip(-1))
    e0 = [untouched(model, v) for v in views]
    e = [untouched_off(model, v) for v in views]
    g = torch.maximum(model.openness(e0[0]), model.openness(e0[1]))
    assert (model.openness(e0[0]) != model.openness(e0[1])).any()
    want = sum(F.normalize(gate.blend(a0, a, g), dim=-1) for a0, a in zip(e0, e)) / 2
    assert torch.allclose(model.embed_flip(x), want, atol=1e-6)
    assert torch.allclose(embed_all(model, x), want, atol=1e-6)


def test_a_task_computes_each_training_pictures_e0_once_and_answers_as_the_whole_pass(
        monkeypatch):
    """The gate's e0 does not move while a task trains (every gated adapter muted, its own
    too), so a task keeps it per picture and view: its steps and checks run no muted pass.
    Given kept e0, the states give the whole gated pass."""
    from tiny import forget_people

    from gslora_core.config import ForgetConfig
    from gslora_core.model import Recognizer

    model, x = gated_model(c=0.5), images(8)
    h = model.kept_rows(model.mid_state(x, 1), 1)
    hf = model.kept_rows(model.mid_state(x.flip(-1), 1), 1)
    e0 = model.ungated_from_mid(h, 1)
    assert torch.allclose(model.embed_from_mid(h, 1, e0), model.embed(x), atol=1e-6)
    both = (e0, model.ungated_from_mid(hf, 1))
    assert torch.allclose(model.answer_from_mid(h, hf, 1, both), model.embed_flip(x), atol=1e-6)

    rows = []
    real = Recognizer.ungated

    def counted(self, *views):
        out = real(self, *views)
        rows.append(sum(len(v) for v in out))
        return out

    monkeypatch.setattr(Recognizer, "ungated", counted)
    model, gallery = tiny_model(), tiny_gallery()
    before = snapshot(model, gallery)
    cfg = ForgetConfig(batch_size=4, eval_every=0, steps=30, check_every=1, gate="on",
                       gate_c=5.0, gate_lead=-5.0, margin=5.0)  # runs to its cap, gates open
    report, after = forget_people(model, gallery, ["ann"], cfg, before=before)
    assert report["stop"]["steps"] == 30
    # e0 once per training picture and view, and once per picture in the "after" pass (both
    # views, training and test pictures): a muted pass per step would be ~30 x 12 rows more.
    n = len(gallery.train_y) + len(gallery.test_y)
    assert sum(rows) <= 2 * len(gallery.train_y) + 2 * n, rows
    assert torch.allclose(after.train_cos, snapshot(model, gallery).train_cos, atol=1e-5)


def test_an_opening_under_shut_is_none_and_the_rest_stays_continuous():
    """A new task's gate shuts exactly under ``SHUT`` (the sigmoid alone leaves a kept face a
    sliver of the change); an older record, without ``shut``, answers as it did."""
    cos0 = torch.tensor([[0.9, 0.6, 0.0], [0.3, 0.7, 0.1], [0.0, 0.4, 0.0]])
    old = gate.Gate(("bob",), 30.0, 0.1, 0.5)
    new = gate.Gate(("bob",), 30.0, 0.1, 0.5, shut=gate.SHUT)
    g_old, g_new = (gate.openness([g], cos0, ["ann", "bob", "cid"]) for g in (old, new))
    assert 0 < g_old[0] < gate.SHUT and g_new[0] == 0.0  # nearer ann (kept): now exactly shut
    assert g_new[1] == pytest.approx(1.0, abs=1e-3) and g_new[2] == pytest.approx(0.4949, abs=1e-4)
    assert gate.Gate.from_dict({k: v for k, v in new.to_dict().items() if k != "shut"}) == old
    assert gate.Gate.from_dict(new.to_dict()) == new


def test_a_gated_task_asks_gate_bnd_and_an_ungated_one_bnd():
    """``gate_bnd`` replaces ``bnd`` in a gated task's loss and stopping rule only: a bound no
    picture can reach keeps a gated task to its cap and leaves an ungated one as it was."""
    from tiny import forget_people

    from gslora_core.config import ForgetConfig

    def stop(**kw):
        model, gallery = tiny_model(), tiny_gallery()
        cfg = ForgetConfig(batch_size=4, eval_every=0, steps=40, check_every=1, **kw)
        return forget_people(model, gallery, ["ann"], cfg)[0]["stop"]

    gated = {"gate": "on", "gate_c": 5.0, "gate_lead": -5.0}  # wide open: no picture left alone
    unreachable = stop(**gated, gate_bnd=1000.0)
    assert unreachable["reason"] == "step cap" and unreachable["pictures_left"] > 0
    without = {k: v for k, v in stop(**gated).items() if k not in ("seconds", "text")}
    assert {k: v for k, v in stop(**gated, bnd=1000.0).items()
            if k not in ("seconds", "text")} == without
    off = {k: v for k, v in stop(gate="off").items() if k not in ("seconds", "text")}
    assert {k: v for k, v in stop(gate="off", gate_bnd=1000.0).items()
            if k not in ("seconds", "text")} == off


def test_a_gated_task_falls_back_to_the_lower_bnd_before_it_takes_a_block():
    """A gate_bnd no picture can reach: the stuck task asks ``gate_bnd_fallback`` on the block
    it has and finishes there; with no fallback it releases blocks and still cannot finish."""
    from tiny import forget_people

    from gslora_core.config import ForgetConfig

    def run(**kw):
        model, gallery = tiny_model(), tiny_gallery()
        cfg = ForgetConfig(batch_size=4, eval_every=0, steps=60, check_every=1, stage_steps=4,
                           gate="on", gate_c=5.0, gate_lead=-5.0, gate_bnd=1000.0,
                           unknown="off", **kw)  # the tiny model reaches the margin, not tau
        return forget_people(model, gallery, ["ann"], cfg)[0]

    eased = run(gate_bnd_fallback=1.0)
    assert eased["stop"]["reason"] == "done" and eased["stop"]["bnd"] == 1.0
    assert [p["eased"] for p in eased["curve"] if "eased" in p] == [1.0]
    assert not any("released" in p for p in eased["curve"]) and eased["stop"]["blocks"] == 1
    stuck = run(gate_bnd_fallback=0.0)
    assert stuck["stop"]["reason"] == "step cap" and stuck["stop"]["bnd"] == 1000.0
    assert not any("eased" in p for p in stuck["curve"])
    assert any("released" in p for p in stuck["curve"])


def test_the_fallback_bnd_counts_only_below_gate_bnd():
    assert gate.gated_bnds(70.0, 65.0) == (70.0, 65.0)
    assert gate.gated_bnds(65.0, 65.0) == gate.gated_bnds(65.0, 0.0) == (65.0,)
    assert gate.gated_bnds(60.0, 65.0) == (60.0,)
