"""Membership inference with measured power (gslora_core.privacy) on synthetic cosine matrices."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from gslora_core.privacy import (
    Attack,
    MembershipResult,
    attack_features,
    attack_power,
    auc,
    aucs,
    compare_to_retrain,
    fit_attack,
    membership_attack,
)

S = 64.0


def fake_cos(n: int, top: float, seed: int, classes: int = 20, spread: float = 0.08) -> torch.Tensor:
    """Cosines to ``classes`` enrolled people: background ~0.05, one random class near ``top``."""
    g = torch.Generator().manual_seed(seed)
    cos = 0.05 + 0.05 * torch.randn(n, classes, generator=g)
    cls = torch.randint(0, classes, (n,), generator=g)
    cos[torch.arange(n), cls] = top + spread * torch.randn(n, generator=g)
    return cos.clamp(-1, 1)


def test_features_by_hand():
    cos = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.5, 0.45]])
    f = attack_features(cos, S)
    assert f.shape == (2, 3) and f.dtype == np.float64
    np.testing.assert_allclose(f[:, 0], [0.9, 0.5], atol=1e-7)
    np.testing.assert_allclose(f[:, 1], [0.6, 0.05], atol=1e-7)
    for row, h in zip(cos.double().numpy(), f[:, 2]):
        p = np.exp(S * row) / np.exp(S * row).sum()
        assert h == pytest.approx(-(p * np.log(p)).sum(), rel=1e-9)
    # Second row: two near-equal classes -> more uncertain than the first.
    assert f[1, 2] > f[0, 2]


def test_features_one_class_and_empty():
    f = attack_features(torch.tensor([[0.7], [-0.2]]), S)
    np.testing.assert_allclose(f, [[0.7, 0.7, 0.0], [-0.2, -0.2, 0.0]], atol=1e-7)
    assert attack_features(torch.zeros(0, 5), S).shape == (0, 3)
    with pytest.raises(ValueError):
        attack_features(torch.zeros(5), S)


def test_auc_separated_identical_and_ties():
    assert auc([2.0, 3.0, 4.0], [0.0, 1.0]) == 1.0
    assert auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert auc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5
    assert auc([1.0, 2.0], [1.0]) == 0.75  # one tie (half) + one win, over 2 pairs
    rng = np.random.default_rng(0)
    assert auc(rng.normal(size=2000), rng.normal(size=2000)) == pytest.approx(0.5, abs=0.03)


def test_aucs_scores_every_resample_as_one_at_a_time():
    rng = np.random.default_rng(1)
    pos, neg = np.round(rng.normal(0.3, 1, (7, 25)), 1), np.round(rng.normal(0, 1, (7, 18)), 1)
    batched = aucs(pos, neg)
    assert batched.shape == (7,)
    # brute force: every (positive, negative) pair, a tie counting half
    pairs = [((p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean())
             for p, n in zip(pos, neg)]
    assert batched == pytest.approx(pairs, abs=1e-12)
    with pytest.raises(ValueError, match="at least one"):
        aucs(np.zeros((2, 0)), neg[:2])


def test_fit_attack_is_frozen_and_orders_members_first():
    rng = np.random.default_rng(1)
    members = rng.normal(1.5, 1.0, size=(300, 3))
    nonmembers = rng.normal(0.0, 1.0, size=(40, 3))  # unbalanced on purpose
    att = fit_attack(members, nonmembers, seed=0)
    assert isinstance(att, Attack)
    with pytest.raises(dataclasses.FrozenInstanceError):
        att.bias = 0.0  # type: ignore[misc]
    p = att.member_probability(np.array([[3.0, 3.0, 3.0], [-2.0, -2.0, -2.0]]))
    assert 0.0 <= p.min() and p.max() <= 1.0
    assert p[0] > 0.9 and p[1] < 0.1
    # Balanced fitting: the decision boundary sits between the two clouds, not at the non-members.
    mid = att.member_probability(np.full((1, 3), 0.75))[0]
    assert 0.2 < mid < 0.8


def test_fit_attack_separable_stays_finite():
    members = np.array([[1.0, 0.0, 0.0]] * 10)
    nonmembers = np.array([[0.0, 0.0, 0.0]] * 10)  # two constant features, perfectly separable
    att = fit_attack(members, nonmembers)
    assert np.all(np.isfinite(att.weights)) and math.isfinite(att.bias)
    assert att.member_probability(members).min() > 0.9


def test_power_on_separable_data():
    fm = attack_features(fake_cos(150, 0.75, seed=1), S)
    fn = attack_features(fake_cos(120, 0.45, seed=2), S)
    p = attack_power(fm, fn, seed=0)
    assert p["auc"] > 0.9
    assert p["low"] <= p["auc"] <= p["high"] and p["low"] > 0.8
    assert (p["n_members"], p["n_nonmembers"]) == (150, 120)


def test_membership_attack_with_power():
    members, nonmembers = fake_cos(150, 0.75, seed=1), fake_cos(150, 0.45, seed=2)
    like_members = membership_attack(members, nonmembers, fake_cos(60, 0.75, seed=3), S)
    like_nonmembers = membership_attack(members, nonmembers, fake_cos(60, 0.45, seed=4), S)
    assert isinstance(like_members, MembershipResult)
    assert like_members.has_power and like_members.power["auc"] > 0.9
    assert like_members.member_rate > 0.8
    assert like_nonmembers.member_rate < 0.2
    assert like_members.calibration_member_rate > 0.8 and like_members.calibration_nonmember_rate < 0.2
    assert like_members.n_target == 60
    assert "cannot tell" not in like_members.verdict and "%" in like_members.verdict
    d = like_members.to_dict()
    assert d["has_power"] is True and d["power"]["auc"] == like_members.power["auc"]


def test_membership_attack_without_power():
    members, nonmembers = fake_cos(150, 0.6, seed=5), fake_cos(150, 0.6, seed=6)
    r = membership_attack(members, nonmembers, fake_cos(40, 0.75, seed=7), S)
    assert not r.has_power
    assert r.power["auc"] < 0.6
    assert "cannot tell members from non-members" in r.verdict
    assert "means nothing" in r.verdict


@pytest.mark.parametrize("sizes", [(3, 20, 20), (20, 2, 20), (20, 20, 0), (0, 0, 0)])
def test_small_sets_do_not_raise(sizes):
    nm, nn, nt = sizes
    r = membership_attack(fake_cos(nm, 0.75, 1), fake_cos(nn, 0.45, 2), fake_cos(nt, 0.75, 3), S)
    assert r.has_power is False and r.member_rate is None and r.power is None
    assert "Too few pictures" in r.verdict
    assert (r.n_members, r.n_nonmembers, r.n_target) == (nm, nn, nt)


def test_deterministic_given_seed():
    args = (fake_cos(80, 0.65, 1), fake_cos(80, 0.5, 2), fake_cos(30, 0.6, 3), S)
    a = membership_attack(*args, seed=3).to_dict()
    b = membership_attack(*args, seed=3).to_dict()
    assert a == b
    fm, fn = attack_features(args[0], S), attack_features(args[1], S)
    assert attack_power(fm, fn, seed=7) == attack_power(fm, fn, seed=7)


def test_compare_to_retrain_arithmetic():
    def res(rate, power=True):
        return MembershipResult(power=None, has_power=power, member_rate=rate,
                                calibration_member_rate=0.8, calibration_nonmember_rate=0.2,
                                n_target=10, n_members=10, n_nonmembers=10, min_power=0.6, verdict="")
    c = compare_to_retrain(res(0.35), res(0.30))
    assert c["gap"] == pytest.approx(0.05) and c["within_tolerance"] is True and c["meaningful"] is True
    c = compare_to_retrain(res(0.20), res(0.30), tolerance=0.05)
    assert c["gap"] == pytest.approx(-0.10) and c["abs_gap"] == pytest.approx(0.10)
    assert c["within_tolerance"] is False
    assert compare_to_retrain(res(0.20), res(0.30), tolerance=0.2)["within_tolerance"] is True
    c = compare_to_retrain(res(None), res(0.30, power=False).to_dict())
    assert c["gap"] is None and c["within_tolerance"] is None and c["meaningful"] is False
