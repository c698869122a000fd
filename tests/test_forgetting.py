"""The forgetting task (gslora_core/forgetting.py) on a tiny random model (milliseconds each)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from tiny import NAMES, finetune_people, forget_people, images, randomise_task, tiny_gallery, tiny_model

from gslora_core import lora
from gslora_core.config import ForgetConfig, TaskRecord
from gslora_core.evaluation import ForgetReport
from gslora_core.forgetting import forget, plan_task, rollback


def test_forget_trains_only_lora_and_keeps_everything_else():
    model, gallery = tiny_model(), tiny_gallery()
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    plan = plan_task(model, gallery, ["ann"])  # the caller plans once, then forgets
    report = forget(model, gallery, plan, ForgetConfig(steps=3, batch_size=4, eval_every=0)).report
    for k, v in model.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, frozen[k.replace(".base.", ".")]), k
    # depth 3 x rank 8 x (fc1: A 8x32 + B 64x8, fc2: A 8x64 + B 32x8)
    assert report["trainable_params"] == 3 * 8 * (32 + 64 + 64 + 32)
    assert 0 < report["trainable_share"] < 1


def test_rollback_restores_earlier_outputs():
    model = tiny_model()
    x = images()
    base = model(x)
    model.add_task(TaskRecord("task1", ["ann"], 4, 1.0))
    randomise_task(model, "task1", seed=5)
    after_one = model(x)
    model.add_task(TaskRecord("task2", ["bob"], 4, 1.0))
    randomise_task(model, "task2", seed=6)
    assert not torch.allclose(model(x), after_one)
    assert rollback(model) == "task2"
    assert torch.equal(model(x), after_one)
    assert rollback(model) == "task1"
    assert torch.equal(model(x), base)
    with pytest.raises(ValueError):
        rollback(model)


def test_cancel_leaves_model_exactly_as_before():
    model = tiny_model()
    x = images()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out_before = model(x)
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    report = forget_people(model, tiny_gallery(), ["ann"], ForgetConfig(steps=10, batch_size=4, eval_every=0),
                    should_cancel=cancel).report
    assert report["cancelled"] and report["step"] == 2
    assert model.tasks == [] and not lora.task_names(model.blocks)
    assert torch.equal(model(x), out_before)
    after = model.state_dict()  # the plain layers are back: same keys, same values
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_a_failing_task_removes_its_adapters_and_reraises():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def boom(point: dict) -> None:
        if point.get("step") == 3:
            raise RuntimeError("simulated out of memory")

    with pytest.raises(RuntimeError, match="simulated"):
        forget_people(model, tiny_gallery(), ["ann"], ForgetConfig(steps=10, batch_size=4, eval_every=0),
               on_progress=boom)
    after = model.state_dict()
    assert model.tasks == [] and not lora.has_lora(model.blocks)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_the_work_around_the_steps_travels_as_stages_beside_the_steps():
    """One callback hears everything: the stages in words (``progress.Stage``) before and after
    the steps, and the steps themselves."""
    model, gallery = tiny_model(), tiny_gallery()
    heard = []
    forget_people(model, gallery, ["ann"], ForgetConfig(steps=2, batch_size=4, eval_every=0),
                  on_progress=heard.append)
    stages = [p["stage"] for p in heard if "step" not in p]
    assert stages == ["measuring the recognizer before the task",
                      "measuring the recognizer after the task"]
    assert [p["step"] for p in heard if "step" in p] == [1, 2]
    assert heard[0] == {"stage": stages[0]} and heard[-1] == {"stage": stages[1]}


def test_forget_is_seeded_and_reproducible():
    reports = []
    for _ in range(2):
        model = tiny_model()
        reports.append(forget_people(model, tiny_gallery(), ["ann"],
                              ForgetConfig(steps=4, batch_size=4, eval_every=2, seed=7)).report)
    assert reports[0]["group_norms"] == reports[1]["group_norms"]
    assert [p["loss"] for p in reports[0]["curve"]] == [p["loss"] for p in reports[1]["curve"]]


def test_forget_validates_requests():
    model = tiny_model()
    gallery = tiny_gallery()
    with pytest.raises(ValueError, match="at least one"):
        forget_people(model, gallery, [], ForgetConfig(steps=1))
    with pytest.raises(KeyError):
        forget_people(model, gallery, ["zed"], ForgetConfig(steps=1))
    with pytest.raises(ValueError, match="retained"):
        forget_people(model, gallery, NAMES, ForgetConfig(steps=1))
    forget_people(model, gallery, ["ann"], ForgetConfig(steps=1, batch_size=2, eval_every=0))
    with pytest.raises(ValueError, match="already forgotten"):
        forget_people(model, gallery, ["ann"], ForgetConfig(steps=1))


def test_report_has_the_promised_keys():
    model = tiny_model()
    report = forget_people(model, tiny_gallery(), ["ann"], ForgetConfig(steps=2, batch_size=4)).report
    for key in ["acc_r_before", "acc_r_after", "acc_f_before", "acc_f_after", "acc_o_before",
                "acc_o_after", "h_mean", "seconds", "trainable_params", "total_params",
                "group_norms", "zero_groups", "membership_before", "membership_after"]:
        assert key in report, key
    assert set(report) <= set(ForgetReport.__annotations__)  # the typed contract, nothing else
    assert set(report) == ForgetReport.__required_keys__  # and every key of it, always
    assert len(report["group_norms"]) == 1 and len(report["group_norms"][0]) == 3
    # A random tiny model on a handful of pictures: the attack has no power, and says so.
    assert report["membership_after"]["has_power"] is False
    assert "means nothing" in report["membership_after"]["verdict"]
    assert {r["role"] for r in report["per_identity"]} == {"forgotten", "retained"}
    assert set(report["open_set"]) == {"threshold", "forgotten", "earlier", "retained"}


def test_adam_metric_threshold_spares_the_group_with_large_gradients():
    from gslora_core.lasso import adam_group_scale
    big, small = [torch.nn.Parameter(torch.ones(10))], [torch.nn.Parameter(torch.ones(10))]
    opt = torch.optim.AdamW(big + small, lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (100.0 * big[0].sum() + 0.01 * small[0].sum()).backward()
        opt.step()
    scale_big, scale_small = adam_group_scale(opt, [big, small])
    assert scale_big > 1000 * scale_small  # threshold lr*alpha/scale: tiny for big, large for small
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))])
    assert adam_group_scale(fresh, [[fresh.param_groups[0]["params"][0]]]) == [float("inf")]


def test_refit_holds_zero_groups_at_zero_and_trains_the_rest():
    """Relaxed group lasso: a group that is zero when the refit starts stays exactly zero while
    the other groups go on learning, and alpha is 0 throughout the refit."""
    model = tiny_model()
    cfg = ForgetConfig(schedule="fixed", steps=8, batch_size=4, eval_every=0, alpha=0.01,
                       sparsity_warmup=0.25, refit=0.5, lr=0.05)
    seen = []

    def spy(point):
        if "step" not in point:  # a stage, in words
            return
        seen.append(point)
        if point["step"] == 4:  # the last sparsity step: make block 2's group exactly zero
            with torch.no_grad():
                for p in lora.group_params(model.blocks, "task1")[1]:
                    p.zero_()
            point["group_norms"] = lora.norms_of(lora.group_params(model.blocks, "task1"))

    forget_people(model, tiny_gallery(), ["ann"], cfg, on_progress=spy)
    assert [p["alpha"] for p in seen] == [0.0, 0.0, 0.01, 0.01, 0.0, 0.0, 0.0, 0.0]
    for a, b in zip(seen[4:], seen[5:]):
        assert b["group_norms"][1] == 0.0
        assert b["group_norms"][0] != a["group_norms"][0] and b["group_norms"][2] != a["group_norms"][2]
    with pytest.raises(ValueError, match="sparsity_warmup \\+ refit"):
        ForgetConfig(sparsity_warmup=0.6, refit=0.6)


def test_full_finetuning_baseline_trains_every_weight_and_adds_no_adapter():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep = finetune_people(model, tiny_gallery(), ["ann"], ForgetConfig(steps=3, batch_size=4,
                                                                        eval_every=0, lr=1e-3))
    assert not lora.has_lora(model.blocks) and not model.tasks
    assert rep["trainable_share"] == 1.0 and len(rep["curve"]) == 3
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.blocks") for k in changed) and "head.weight" in changed
    assert not any(p.requires_grad for p in model.parameters())


def test_earlier_forgotten_identities_are_replayed_with_their_own_bound(monkeypatch):
    """Task 2 keeps task 1's people forgotten: each step draws ``replay_forgotten`` pictures of
    them and adds their own bounded forget term; task 1 itself (nobody earlier) draws none, and
    ``replay_forgotten=0`` is the authors' way (this task's people only)."""
    import gslora_core.objective as fg
    calls = []
    real = fg.bounded_forget_loss

    def spy(logits, labels, bnd):
        calls.append(sorted(set(labels.tolist())))
        return real(logits, labels, bnd)

    monkeypatch.setattr(fg, "bounded_forget_loss", spy)
    model, gallery = tiny_model(), tiny_gallery()
    cfg = ForgetConfig(steps=2, batch_size=4, eval_every=0, replay_forgotten=3)
    forget_people(model, gallery, ["ann"], cfg)
    assert calls == [[0], [0]]
    calls.clear()
    forget_people(model, gallery, ["bob"], cfg)
    assert calls == [[1], [0], [1], [0]]  # this task's term, then the replayed one, per step
    calls.clear()
    forget_people(model, gallery, ["cid"], ForgetConfig(steps=2, batch_size=4, eval_every=0,
                                                 replay_forgotten=0))
    assert calls == [[2], [2]]
    # Full fine-tuning keeps no task history: the people it forgot before are passed to it, and
    # it replays them like GS-LoRA (before, they were trained as retained people again).
    calls.clear()
    full = tiny_model()
    finetune_people(full, gallery, ["ann"], cfg)
    assert calls == [[0], [0]]
    calls.clear()
    rep = finetune_people(full, gallery, ["bob"], cfg, earlier=["ann"])
    assert calls == [[1], [0], [1], [0]]
    assert rep["earlier_forgotten"] == ["ann"] and rep["replayed_pictures"] > 0
    with pytest.raises(ValueError, match="replay_forgotten"):
        ForgetConfig(replay_forgotten=-1)


def test_a_zeroed_group_becomes_nonzero_again_when_the_loss_needs_it():
    """During the lasso phase a group pushed to exactly zero (here by hand, after step 2) is
    not stuck: with a small alpha, the next steps' gradients move its B away from zero."""
    model = tiny_model()
    cfg = ForgetConfig(schedule="fixed", steps=6, batch_size=4, eval_every=0, alpha=1e-6,
                       sparsity_warmup=0.0, refit=0.0, lr=0.05)
    seen = []

    def spy(point):
        if "step" not in point:
            return
        if point["step"] == 2:
            with torch.no_grad():
                for p in lora.lasso_params(model.blocks, "task1")[0]:
                    p.zero_()
        seen.append(lora.delta_norms(model.blocks, "task1")[0])

    forget_people(model, tiny_gallery(), ["ann"], cfg, on_progress=spy)
    assert seen[1] == 0.0 and seen[-1] > 0.0


def test_refit_from_cached_tokens_equals_the_full_forward(monkeypatch):
    """With the lower groups exactly zero and held there, the refit runs from cached tokens at
    the first active block: the same losses and the same adapters as the full forward pass."""
    import gslora_core.states as states
    import gslora_core.task as task
    cfg = ForgetConfig(schedule="fixed", steps=8, batch_size=4, eval_every=0, alpha=1e-6,
                       sparsity_warmup=0.25, refit=0.5, lr=0.05, replay_forgotten=2)
    used = []
    real_call = states.StateCache.__call__

    def counting(self, idx, flip=False):
        used.append(self.block)
        return real_call(self, idx, flip)

    monkeypatch.setattr(states.StateCache, "__call__", counting)
    runs = []
    for cache in (False, True):
        monkeypatch.setattr(task, "CACHE_STATES", cache)
        model, gallery = tiny_model(), tiny_gallery()
        forget_people(model, gallery, ["dee"], replace(cfg, steps=4, refit=0.5))
        curve = []

        def zero_lower(point, model=model, curve=curve):
            if "step" not in point:
                return
            if point["step"] == 4:  # the last lasso step: blocks 1 and 2 exactly zero
                with torch.no_grad():
                    for group in lora.lasso_params(model.blocks, "task2")[:2]:
                        for p in group:
                            p.zero_()
            curve.append(point["loss"])

        forget_people(model, gallery, ["ann"], cfg, on_progress=zero_lower)
        runs.append((curve, [p.detach().clone() for p in
                             lora.iter_task_parameters(model.blocks, "task2")]))
    assert used and set(used) == {2}, "the refit ran from the tokens at block 3's input"
    (curve_full, params_full), (curve_cached, params_cached) = runs
    assert curve_cached == pytest.approx(curve_full, rel=1e-5, abs=1e-6)
    for a, b in zip(params_full, params_cached):
        assert torch.allclose(a, b, atol=1e-5)


def test_lasso_thresholds_are_relative_to_the_task_and_weigh_lower_blocks_more():
    """One alpha for every gallery: the same gradients scaled by 1000 (a recognizer less sure of
    the faces) give the same thresholds; the strongest depth-weighted block's is
    ``lr * alpha * sqrt(entries)``, and a lower block (larger depth weight) needs more."""
    from gslora_core.lasso import depth_weights, lasso_thresholds
    assert depth_weights(3, 1.0) == [3.0, 2.0, 1.0] and depth_weights(3, 0.0) == [1.0] * 3

    def thresholds(scale: float) -> list[float]:
        torch.manual_seed(0)
        groups = [[torch.nn.Parameter(torch.zeros(4, 4))] for _ in range(3)]
        opt = torch.optim.AdamW([p for g in groups for p in g], lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            loss = sum(w * (g[0] * torch.randn(4, 4)).sum() for w, g in zip((1.0, 1.0, 2.0), groups))
            (scale * loss).backward()
            opt.step()
        return lasso_thresholds(opt, groups, lr=0.1, alpha=0.5, depth_power=1.0)

    small, large = thresholds(1.0), thresholds(1000.0)
    assert small == pytest.approx(large, rel=1e-4)
    assert min(small) == pytest.approx(0.1 * 0.5 * 4.0, rel=1e-4)  # lr * alpha * sqrt(16)
    assert small[0] > small[2]  # block 1: three blocks above it, and a smaller gradient


def test_a_lasso_that_zeroes_every_block_leaves_the_strongest_to_finish_the_task():
    """alpha = 1 puts even the strongest block at the edge; if the lasso zeroes them all, the
    refit trains that block alone (never none: a task that changes nothing forgets nothing)."""
    model = tiny_model()
    cfg = ForgetConfig(schedule="fixed", steps=8, batch_size=4, eval_every=0, alpha=1.0,
                       sparsity_warmup=0.0, refit=0.5, lr=0.05)
    seen = []

    def spy(point):
        if "step" not in point:
            return
        if point["step"] == 4:  # the last lasso step: every group exactly zero
            with torch.no_grad():
                for group in lora.lasso_params(model.blocks, "task1"):
                    for p in group:
                        p.zero_()
        seen.append(lora.delta_norms(model.blocks, "task1"))

    rep = forget_people(model, tiny_gallery(), ["ann"], cfg, on_progress=spy).report
    assert seen[3] == [0.0, 0.0, 0.0]
    assert sum(n > 0 for n in seen[-1]) == 1 and rep["zero_groups"] == 2


def test_prototypes_come_from_the_k_shot_pictures_only():
    from gslora_core.forgetting import select_train_indices, shot_prototypes
    model, gallery = tiny_model(), tiny_gallery()
    cfg = ForgetConfig(shots=1)
    pool = select_train_indices(gallery, [0], cfg, torch.Generator().manual_seed(0))
    assert len(pool) == 1
    protos = shot_prototypes(model, gallery, pool)
    with torch.no_grad():
        one = model.embed(gallery.train_x[pool])[0]
    assert torch.allclose(protos[0], one, atol=1e-5)
    assert float(protos[1:].abs().sum()) == 0.0  # no other class has a prototype



def test_the_unknown_push_is_on_for_faces_and_off_for_object_classes_by_default():
    from gslora_core.config import DataConfig
    from gslora_core.stopping import pushes_unknown
    cfg = ForgetConfig()
    assert pushes_unknown(cfg, "faces") and not pushes_unknown(cfg, "objects")
    assert pushes_unknown(replace(cfg, unknown="on"), "objects")
    assert not pushes_unknown(replace(cfg, unknown="off"), "faces")
    assert not pushes_unknown(replace(cfg, schedule="fixed", unknown="on"), "faces")
    with pytest.raises(ValueError, match="unknown must be one of"):
        ForgetConfig(unknown="maybe")
    # In a task: the unknown term trains for faces, and is never computed for object classes.
    quick = ForgetConfig(steps=4, batch_size=4, eval_every=0, check_every=2)
    faces = forget_people(tiny_model(), tiny_gallery(), ["ann"], quick).report
    objects = tiny_model()
    objects.data_config = DataConfig(preprocess="whole")
    classes = forget_people(objects, tiny_gallery(), ["ann"], quick).report
    assert any(p["unknown"] > 0 for p in faces["curve"])
    assert all(p["unknown"] == 0 for p in classes["curve"])


def test_the_fixed_schedule_keeps_the_time_cap_too():
    """On ZeroGPU a task's ``max_seconds`` is its reservation: the fixed schedule, whose own
    length ends it, must stop there as well (it ran on to its step count before)."""
    cfg = ForgetConfig(schedule="fixed", steps=100_000, batch_size=4, eval_every=0,
                       max_seconds=0.5)
    stop = forget_people(tiny_model(), tiny_gallery(), ["ann"], cfg).report["stop"]
    assert stop["reason"] == "time cap" and stop["steps"] < 100_000
