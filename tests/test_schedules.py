"""The release schedule as a policy: its learning rate and when it releases a block."""
from dataclasses import replace

import pytest

from gslora_core.config import ForgetConfig
from gslora_core.schedules import Release, anneals, schedule_for

CFG = ForgetConfig(steps=100, stage_steps=20, lr=0.01)


def _stuck(plan: Release, step: int) -> tuple:
    """A full check at ``step`` that made no progress since the first one."""
    return plan.after_check(step, {"full": True, "pictures_left": 5})


def test_the_rate_decays_for_object_classes_only_unless_asked():
    assert anneals(CFG, "objects") and not anneals(CFG, "faces")
    assert anneals(replace(CFG, lr_decay="cosine"), "faces")
    assert not anneals(replace(CFG, lr_decay="none"), "objects")
    assert not anneals(replace(CFG, schedule="fixed", lr_decay="cosine"), "objects")
    with pytest.raises(ValueError, match="lr_decay"):
        replace(CFG, lr_decay="linear")


def test_a_constant_rate_unless_the_schedule_anneals():
    plan = schedule_for(CFG, depth=4, sparse=True)
    assert [plan.rates(s)[0] for s in (0, 50, 99)] == [0.01] * 3


def test_an_annealed_task_decays_to_zero_at_the_cap_and_keeps_its_blocks():
    plan = schedule_for(CFG, depth=4, sparse=True, anneal=True)
    plan.begin({"pictures_left": 5})
    rates = [plan.rates(s)[0] for s in range(100)]
    assert rates[0] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[50] == pytest.approx(0.005) and rates[99] < 1e-5
    assert [_stuck(plan, s) for s in (40, 60, 80)] == [(None, None)] * 3  # stuck, kept
    assert plan.blocks == 1


def test_a_constant_rate_releases_the_next_block_when_stuck():
    plan = schedule_for(CFG, depth=4, sparse=True)
    plan.begin({"pictures_left": 5})
    assert _stuck(plan, 15) == (None, None) and plan.blocks == 1  # patience not yet spent
    reason, blocks = _stuck(plan, 20)  # 20 steps without progress: the next block down
    assert reason is None and blocks is not None and plan.blocks == 2
    assert _stuck(plan, 30) == (None, None) and plan.blocks == 2  # patience starts again


def test_no_block_is_released_at_the_last_step():
    """A block released at the cap would never train, yet count as used."""
    plan = schedule_for(CFG, depth=4, sparse=True)
    plan.begin({"pictures_left": 5})
    assert _stuck(plan, 100) == (None, None) and plan.blocks == 1
    assert _stuck(plan, 99)[1] is not None and plan.blocks == 2


def test_a_stuck_task_with_a_lower_bnd_eases_before_it_releases_a_block():
    """``Task.bnds`` (a gated task: ``gate_bnd``, then ``gate_bnd_fallback``): stuck, the task
    first asks the lower BND with the blocks it has, and releases a block only if stuck again."""
    plan = schedule_for(CFG, depth=4, sparse=True, bnds=(70.0, 65.0))
    plan.begin({"pictures_left": 5})
    assert plan.bnd == 70.0
    assert _stuck(plan, 20) == (None, None) and (plan.bnd, plan.blocks) == (65.0, 1)
    assert _stuck(plan, 35) == (None, None) and plan.blocks == 1  # patience starts again
    assert _stuck(plan, 40)[1] is not None and (plan.bnd, plan.blocks) == (65.0, 2)
    assert schedule_for(CFG, depth=4, sparse=True).bnd == CFG.bnd  # one BND: the config's


def test_an_annealed_or_dense_task_keeps_its_first_bnd():
    for plan in (schedule_for(CFG, depth=4, sparse=True, anneal=True, bnds=(70.0, 65.0)),
                 schedule_for(CFG, depth=4, sparse=False, bnds=(70.0, 65.0))):
        plan.begin({"pictures_left": 5})
        assert [_stuck(plan, s) for s in (20, 40, 60)] == [(None, None)] * 3
        assert plan.bnd == 70.0
