"""Membership inference with measured power (the SVC-MIA / SalUn convention).

The attack is calibrated on *retained* people: their training pictures are members, their held-back
test pictures non-members. Its cross-validated AUC there is its power. Only an attack with power
says anything when it is then pointed at the *forgotten* people's training pictures, and the value
to aim for is what the same attack reads on a model retrained without them, not 0.5.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

FEATURES = ("top1_cosine", "top1_top2_gap", "softmax_entropy")
MIN_PICTURES = 4


# --------------------------------------------------------------------------------------- features

def attack_features(cosines: torch.Tensor | np.ndarray, s: float) -> np.ndarray:
    """Per-picture features (N, 3): top-1 cosine, top-1 minus top-2 cosine, entropy of softmax(s*cos).

    Label-free on purpose: a model retrained without the forgotten people has no class for them,
    so features that need the true label's logit could not be read on retrain at all. These only
    ask how confident the model is about *some* enrolled class. With one class the gap is top-1."""
    c = cosines.detach().to("cpu", torch.float64).numpy() if isinstance(cosines, torch.Tensor) \
        else np.asarray(cosines, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"expected a (pictures, classes) cosine matrix, got shape {c.shape}")
    n, k = c.shape
    if n == 0 or k == 0:
        return np.zeros((n, 3), dtype=np.float64)
    if k == 1:
        top1 = c[:, 0]
        gap = top1.copy()
    else:
        part = np.partition(c, k - 2, axis=1)
        top1, gap = part[:, -1], part[:, -1] - part[:, -2]
    z = float(s) * c
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    entropy = -(np.exp(logp) * logp).sum(axis=1)
    return np.stack([top1, gap, entropy], axis=1).astype(np.float64)


# --------------------------------------------------------------------------------- the classifier

def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


@dataclass(frozen=True, eq=False)
class Attack:
    """A fitted attack: standardise with the training mean/std, then a linear logit."""

    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float

    def logit(self, feats: np.ndarray) -> np.ndarray:
        """Log-odds of membership (used for AUC: it does not saturate into ties like the probability)."""
        return ((np.asarray(feats, dtype=np.float64) - self.mean) / self.std) @ self.weights + self.bias

    def member_probability(self, feats: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logit(feats))


def _balanced(members: np.ndarray, nonmembers: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(members), len(nonmembers))
    return (members[np.sort(rng.permutation(len(members))[:n])],
            nonmembers[np.sort(rng.permutation(len(nonmembers))[:n])])


def fit_attack(members: np.ndarray, nonmembers: np.ndarray, seed: int = 0,
               ridge: float = 1e-3) -> Attack:
    """Fit member-vs-non-member logistic regression on features (see ``attack_features``).

    Classes are balanced by subsampling the larger one (seeded), so that the 0.5 threshold means
    "more like a training picture than a test picture", not "there were more training pictures"."""
    members = np.asarray(members, dtype=np.float64)
    nonmembers = np.asarray(nonmembers, dtype=np.float64)
    if min(len(members), len(nonmembers)) < 1:
        raise ValueError("the attack needs at least one member and one non-member")
    a, b = _balanced(members, nonmembers, np.random.default_rng(seed))
    x = np.concatenate([a, b])
    y = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)  # a constant feature carries nothing; do not divide by 0
    # mean log-loss + ridge/2 |w|^2 (the bias not shrunk) is scikit-learn's C = 1 / (ridge n);
    # the ridge keeps the weights finite on separable data.
    fit = LogisticRegression(C=1.0 / (ridge * len(y)), max_iter=1000, tol=1e-10)
    fit.fit((x - mean) / std, y)
    return Attack(mean=mean, std=std, weights=fit.coef_[0].astype(np.float64),
                  bias=float(fit.intercept_[0]))


# ----------------------------------------------------------------------------------------- power

def aucs(scores_pos: np.ndarray, scores_neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each row: P(a positive score above a negative one), ties counting
    half. ``scores_pos`` (B, P) and ``scores_neg`` (B, N): B resamples at once, from the mid
    ranks (a bootstrap of 200 AUCs was 200 calls of a validating scorer, 0.7 s a task)."""
    pos = np.atleast_2d(np.asarray(scores_pos, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(scores_neg, dtype=np.float64))
    n_p, n_n = pos.shape[1], neg.shape[1]
    if n_p == 0 or n_n == 0:
        raise ValueError("AUC needs at least one positive and one negative score")
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # ties: the mean rank
    wins = ranks[:, :n_p].sum(axis=1) - n_p * (n_p + 1) / 2  # the Mann-Whitney U
    return wins / (n_p * n_n)


def auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """Mann-Whitney AUC: P(positive scores above negative), ties counting half."""
    return float(aucs(np.ravel(scores_pos), np.ravel(scores_neg))[0])


def attack_power(members: np.ndarray, nonmembers: np.ndarray, folds: int = 5, seed: int = 0,
                 boot: int = 200) -> dict:
    """Cross-validated AUC of the attack on calibration people, with a bootstrap 95 % interval.

    Measured first because an attack at AUC 0.5 on people whose membership is *known* proves
    nothing when it later calls forgotten pictures non-members. Folds are stratified; every
    held-out picture is scored by a model that did not see it, and the pooled out-of-fold scores
    give the AUC. The interval resamples those scores (members and non-members separately)."""
    members = np.asarray(members, dtype=np.float64)
    nonmembers = np.asarray(nonmembers, dtype=np.float64)
    n_m, n_n = len(members), len(nonmembers)
    if min(n_m, n_n) < 2:
        raise ValueError("attack power needs at least two members and two non-members")
    rng = np.random.default_rng(seed)
    k = max(2, min(folds, n_m, n_n))
    x = np.concatenate([members, nonmembers])
    y = np.concatenate([np.ones(n_m), np.zeros(n_n)])
    scores = np.empty(len(y))
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y)
    for f, (train, held) in enumerate(split):
        is_member = y[train] == 1
        att = fit_attack(x[train][is_member], x[train][~is_member], seed=seed + 1 + f)
        scores[held] = att.logit(x[held])
    score_m, score_n = scores[:n_m], scores[n_m:]
    value = auc(score_m, score_n)
    low = high = value
    if boot:  # the resamples drawn in the same order as one at a time, scored all at once
        draws = [(rng.integers(0, n_m, n_m), rng.integers(0, n_n, n_n)) for _ in range(boot)]
        boots = aucs(np.stack([score_m[m] for m, _ in draws]),
                     np.stack([score_n[n] for _, n in draws]))
        low, high = np.percentile(boots, [2.5, 97.5])
    return {"auc": value, "low": float(low), "high": float(high),
            "n_members": int(n_m), "n_nonmembers": int(n_n)}


# ------------------------------------------------------------------------------------ the attack

@dataclass(frozen=True)
class MembershipResult:
    """One membership-inference reading. Rates are shares of pictures with probability > 0.5;
    None where a set was too small to fit or read the attack."""

    power: dict | None
    has_power: bool
    member_rate: float | None
    calibration_member_rate: float | None
    calibration_nonmember_rate: float | None
    n_target: int
    n_members: int
    n_nonmembers: int
    min_power: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(att: Attack, feats: np.ndarray) -> float:
    return float(np.mean(att.logit(feats) > 0.0))  # logit > 0 <=> probability > 0.5


def membership_attack(member_cos: torch.Tensor, nonmember_cos: torch.Tensor, target_cos: torch.Tensor,
                      s: float, seed: int = 0, min_power: float = 0.6) -> MembershipResult:
    """Calibrate on retained people (train = members, test = non-members), measure the attack's
    power there, then read the forgotten people's training pictures (``target_cos``).

    The member rate is only worth reading when the attack has power, and then against the
    calibration rates and against the same reading on a retrained model (``compare_to_retrain``).
    Never raises on small galleries: any set under 4 pictures gives ``has_power=False``."""
    fm, fn, ft = (attack_features(c, s) for c in (member_cos, nonmember_cos, target_cos))
    counts = {"retained training": len(fm), "retained test": len(fn), "forgotten training": len(ft)}
    small = [f"{name} ({n})" for name, n in counts.items() if n < MIN_PICTURES]
    base = dict(n_target=len(ft), n_members=len(fm), n_nonmembers=len(fn), min_power=float(min_power))
    if small:
        return MembershipResult(
            power=None, has_power=False, member_rate=None, calibration_member_rate=None,
            calibration_nonmember_rate=None, **base,
            verdict=(f"Too few pictures for a membership attack ({', '.join(small)}; at least "
                     f"{MIN_PICTURES} each are needed), so there is no privacy reading."))
    power = attack_power(fm, fn, seed=seed)
    has_power = bool(power["low"] > 0.5 and power["auc"] >= min_power)
    att = fit_attack(fm, fn, seed=seed)
    rate, cal_m, cal_n = _rate(att, ft), _rate(att, fm), _rate(att, fn)
    band = f"AUC {power['auc']:.2f} [{power['low']:.2f}, {power['high']:.2f}]"
    if not has_power:
        verdict = (f"The attack cannot tell members from non-members even on what was kept ({band}), "
                   "so its reading on what was forgotten means nothing.")
    else:
        verdict = (f"The attack ({band} on what was kept) calls {rate:.0%} of the forgotten "
                   f"training pictures members, against {cal_m:.0%} of retained training and {cal_n:.0%} "
                   "of retained test pictures.")
    return MembershipResult(power=power, has_power=has_power, member_rate=rate,
                            calibration_member_rate=cal_m, calibration_nonmember_rate=cal_n,
                            **base, verdict=verdict)


def compare_to_retrain(result: MembershipResult | Mapping[str, Any],
                       retrain_result: MembershipResult | Mapping[str, Any],
                       tolerance: float = 0.05) -> dict:
    """Gap between the forgetting model's member rate and retrain's (the real target, not 0.5:
    retrain still calls some pictures of unseen people members, because faces generalise).

    ``within_tolerance`` is None when either rate is missing; ``meaningful`` says whether both
    attacks had power, without which the gap is noise."""
    a = result.to_dict() if isinstance(result, MembershipResult) else dict(result)
    b = retrain_result.to_dict() if isinstance(retrain_result, MembershipResult) else dict(retrain_result)
    ra, rb = a.get("member_rate"), b.get("member_rate")
    gap = None if ra is None or rb is None else float(ra) - float(rb)
    return {"member_rate": ra, "retrain_member_rate": rb, "gap": gap,
            "abs_gap": None if gap is None else abs(gap), "tolerance": float(tolerance),
            "within_tolerance": None if gap is None else bool(abs(gap) <= tolerance + 1e-12),
            "meaningful": bool(a.get("has_power")) and bool(b.get("has_power"))}
