"""What a recognizer does on a gallery, and the typed report of one forgetting task.

Training lives in ``forgetting``; everything that *measures* lives here, so the CLI, the page and
the benchmarks read the same keys (``ForgetReport``, ``Evaluation``) from the same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypedDict

import torch
import torch.nn.functional as F

from . import lora
from .config import ForgetConfig, TaskRecord
from .data import Gallery
from .metrics import (
    class_prototypes,
    fraction_correct,
    h_mean,
    per_identity_accuracy,
    subset_accuracy,
)
from .model import Recognizer, count_parameters
from .openset import rates
from .privacy import membership_attack
from .states import (
    Grids,
    MidStates,
    advance,
    below_block,
    embed_states,
    load_kept,
    mid_states,
    save_kept,
)
from .training import check_labels

ACCURACY_RULE = "argmax of cosine similarity, no margin at test time"


@dataclass
class Snapshot:
    """What the model does on the gallery at one moment (all on CPU).

    ``top_test`` / ``top_train`` keep the pictures' states at the top block's MLP input, and
    ``revision`` the model's revision they belong to: the next task starts from this snapshot
    (its "before") and, if it changes the top block only, measures its "after" from them."""

    pred: torch.Tensor  # test predictions
    test_emb: torch.Tensor
    test_cos: torch.Tensor  # (test pictures, classes) cosine to every class
    train_emb: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    train_cos: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    top_test: MidStates | None = None
    top_train: MidStates | None = None
    revision: int = -1
    # Token grids below the top block (``states.Grids``): the next task's lower blocks and its
    # "after" start from them.
    grids: Grids | None = None

    def fits(self, model: Recognizer, gallery: Gallery, train: bool = True) -> bool:
        """Whether this is the model's current state on this gallery (nothing changed since);
        ``train=False`` asks about the test pictures only."""
        return (self.revision == model.revision and len(self.test_cos) == len(gallery.test_y)
                and (not train or len(self.train_cos) == len(gallery.train_y)))


@torch.no_grad()
def snapshot(model: Recognizer, gallery: Gallery, with_train: bool = True,
             on_progress: Callable[[dict], None] | None = None,
             grids: Grids | None = None) -> Snapshot:
    """A full pass over the gallery (both views), keeping the top block's states on the way,
    and the token grids below it (``states.Grids``; from ``grids`` when a task already has
    them). ``on_progress`` hears {"stage": "measuring", "done",
    "total"} in pictures."""
    top = len(model.blocks) - 1
    n_test = len(gallery.test_y)
    total = n_test + (len(gallery.train_y) if with_train else 0)
    grids = grids or Grids()

    def done(offset: int) -> Callable[[int], None] | None:
        if on_progress is None:
            return None
        return lambda k: on_progress({"stage": "measuring", "done": offset + k, "total": total})

    block = model.gated_from()  # the top block unless a gated task changed one under it

    def states(part: str, images: torch.Tensor, offset: int) -> MidStates:
        if block == below_block(model):  # a gated change there: its kept grids hold
            return grids.below(model, gallery, part, on_done=done(offset))
        if block < top:  # from the stem tokens (a hybrid's trunk runs once a picture)
            stem = grids.stem(model, gallery, part, on_done=done(offset))
            return mid_states(model, images, block, stem=stem,
                              on_done=None if stem else done(offset))
        below = grids.below(model, gallery, part, on_done=done(offset))  # the costly part
        if below is not None:
            return advance(model, below, top)
        return mid_states(model, images, top, on_done=done(offset))
    test = states("test", gallery.test_x, 0)
    train = states("train", gallery.train_x, n_test) if with_train else None
    return snapshot_from(model, test, train, grids)


@torch.no_grad()
def snapshot_from(model: Recognizer, test: MidStates, train: MidStates | None,
                  grids: Grids | None = None) -> Snapshot:
    """The snapshot from states at one block (``states.mid_states``): only the blocks from
    there up run. States at the top block, and ``grids``, are kept in the snapshot for the
    next task."""
    def cosines(emb: torch.Tensor) -> torch.Tensor:
        return model.head.cosine(emb.to(model.device)).cpu()

    top = len(model.blocks) - 1
    test_emb = embed_states(model, test)
    test_cos = cosines(test_emb)
    snap = Snapshot(pred=test_cos.argmax(1), test_emb=test_emb, test_cos=test_cos,
                    top_test=test if test.block == top else None, revision=model.revision,
                    grids=grids)
    if train is not None:
        snap.train_emb = embed_states(model, train)
        snap.train_cos = cosines(snap.train_emb)
        snap.top_train = train if train.block == top else None
    return snap


def kept_snapshot(path: str | Path, model: Recognizer, gallery: Gallery) -> Snapshot | None:
    """The model's snapshot on ``gallery`` from the states kept at ``path``
    (``states.states_path`` of its checkpoint): the top block runs, nothing below it. None
    when no kept states fit this model and gallery."""
    if model.gated_from() < len(model.blocks) - 1:  # a gate reads states under its change
        return None
    kept = load_kept(path, model, gallery)
    return snapshot_from(model, *kept) if kept is not None else None


def keep_snapshot(path: str | Path, snap: Snapshot, model: Recognizer,
                  gallery: Gallery) -> Path | None:
    """Keep ``snap``'s top-block states at ``path`` for the next process (None when the
    snapshot has none to keep: a test-only one, or one of an older revision)."""
    if snap.top_test is None or snap.top_train is None or not snap.fits(model, gallery):
        return None
    return save_kept(path, model, gallery, snap.top_test, snap.top_train)


# The roles' names in every report, evaluation and open-set row: the paper's Acc_f, Acc_o, Acc_r.
ROLES = ("forgotten", "earlier", "retained")
# What task reports stored before the vocabulary was one called some keys and roles.
_OLD_KEYS = {"acc_o": "acc_o_after", "membership": "membership_after"}
_OLD_ROLES = {"forget": "forgotten", "retain": "retained"}


def read_report(data: dict) -> dict:
    """A stored task report (``forget --report``, an app export) in today's words: an older
    file's ``acc_o`` and ``membership`` are its ``acc_o_after`` and ``membership_after``, and
    its roles "forget" and "retain" are "forgotten" and "retained". Today's reports pass
    through unchanged."""
    out = dict(data)
    if "acc_o_before" in out:  # a task report (an evaluation's acc_o is its only state)
        out = {_OLD_KEYS.get(k, k): v for k, v in out.items()}
    if "per_identity" in out:
        out["per_identity"] = [{**r, "role": _OLD_ROLES.get(r.get("role"), r.get("role"))}
                               for r in out["per_identity"]]
    return out


@dataclass(frozen=True)
class Roles:
    """Who is who in a task, as class indices, in the paper's measures' words: forgotten now
    (Acc_f), forgotten in earlier tasks (Acc_o), retained (Acc_r). Reports, evaluations and
    their open-set rows name the roles the same way."""

    forgotten: list[int]
    earlier: list[int]
    retained: list[int]


def accuracy(snap: Snapshot, gallery: Gallery, classes: list[int]) -> float | None:
    return subset_accuracy(snap.pred, gallery.test_y, classes)


def membership(snap: Snapshot, gallery: Gallery, roles: Roles, s: float, seed: int = 0) -> dict:
    """The membership attack of ``privacy``: calibrated on the retained people (their training
    pictures are members, their test pictures not), then read on the forgotten people's training
    pictures. Roles are the *gallery's* labels, so any recognizer's snapshot (retrain's too) can
    be read; ``s`` is its head's scale. The dict says whether the attack has power
    (``has_power``)."""
    retained = torch.tensor(roles.retained, dtype=torch.long)
    forgotten = torch.tensor(roles.forgotten, dtype=torch.long)
    result = membership_attack(snap.train_cos[torch.isin(gallery.train_y, retained)],
                               snap.test_cos[torch.isin(gallery.test_y, retained)],
                               snap.train_cos[torch.isin(gallery.train_y, forgotten)],
                               s=s, seed=seed)
    return result.to_dict()


def mean_cos_to_prototype(emb: torch.Tensor, protos: torch.Tensor,
                          labels: torch.Tensor) -> float | None:
    """Mean cosine of embeddings to their own class's prototype (None without pictures)."""
    if len(emb) == 0:
        return None
    return float(F.cosine_similarity(emb, protos[labels], dim=1).mean())


class IdentityRow(TypedDict):
    identity: str
    role: str  # "forgotten", "earlier" or "retained" (ROLES)
    before: float | None
    after: float | None


class Cancelled(TypedDict):
    """A task cancelled before its end: its adapters were removed, the model is as before."""

    cancelled: bool  # always True
    task: str
    step: int  # steps trained before the cancel
    seconds: float


class ForgetReport(TypedDict):
    """One finished task: the one key contract of the CLI, page and benchmarks, every key
    always present. (A cancelled task reports ``Cancelled`` instead; both say ``cancelled``.)
    A TypedDict, not a dataclass: the CLI prints it, the page shows it and the benchmarks store
    it as JSON, and stored reports are read back by the same functions (``report``) as fresh
    ones, so one plain shape serves all of them without a conversion at every edge."""

    cancelled: bool  # False
    task: str
    forgotten: list[str]
    earlier_forgotten: list[str]
    num_retained: int
    acc_r_before: float | None
    acc_r_after: float | None
    acc_f_before: float | None
    acc_f_after: float | None
    acc_o_before: float | None
    acc_o_after: float | None
    drop: float
    h_mean: float
    seconds: float
    train_seconds: float
    trainable_params: int
    total_params: int
    trainable_share: float
    group_norms: list[list[float]]  # every live task x block
    task_names: list[str]
    zero_groups: int
    zero_group_ratio: float
    membership_before: dict  # privacy.MembershipResult.to_dict() on the untouched model
    membership_after: dict  # the same attack after the task
    forgotten_cos_to_prototype_before: float | None
    forgotten_cos_to_prototype_after: float | None
    per_identity: list[IdentityRow]
    device: str
    config: dict[str, Any]
    curve: list[dict]
    accuracy_rule: str
    stop: dict  # stopping.Stop.to_dict(): why training ended, in numbers and words
    blocks_used: int  # blocks whose group this task changed
    open_set: dict  # open_set_rows(): answers at the recognizer's threshold
    before_seconds: float  # measuring "before" (0 when the previous task's "after" was kept)
    kind: str  # "faces" or "objects" (Recognizer.kind): how the report names its classes


@dataclass
class TaskOutcome:
    """What a finished task hands to ``build_report``."""

    record: TaskRecord
    roles: Roles
    before: Snapshot
    after: Snapshot
    cfg: ForgetConfig
    seconds: float
    train_seconds: float
    curve: list[dict]
    stop: dict | None = None  # stopping.Stop.to_dict(): why training ended
    tau: float | None = None  # the open-set threshold the task worked against
    before_seconds: float = 0.0  # measuring "before" (0: the previous task's "after" was kept)


def open_set_rows(before: Snapshot, after: Snapshot, gallery: Gallery, roles: Roles,
                  tau: float) -> dict:
    """At the recognizer's threshold, before and after the task: for the forgotten people's
    held-back pictures the shares still recognized, answered "not recognized" and taken for
    another person; for the retained people the share still recognized; for earlier tasks'
    people the same as for the forgotten."""
    y = gallery.test_y
    out: dict = {"threshold": tau}
    for role, classes in zip(ROLES, (roles.forgotten, roles.earlier, roles.retained)):
        out[role] = {"before": rates(before.test_cos, y, classes, tau),
                     "after": rates(after.test_cos, y, classes, tau)}
    return out


def build_report(model: Recognizer, gallery: Gallery, done: TaskOutcome) -> ForgetReport:
    """Everything the CLI prints and the UI shows about one finished task."""
    roles, before, after = done.roles, done.before, done.after
    C = len(model.class_names)
    acc_r_b, acc_r_a = (accuracy(s, gallery, roles.retained) for s in (before, after))
    acc_f_b, acc_f_a = (accuracy(s, gallery, roles.forgotten) for s in (before, after))
    drop = (acc_f_b or 0.0) - (acc_f_a or 0.0)
    norms = lora.group_norms(model.blocks)
    live = [t.name for t in model.tasks if not t.merged]
    current = norms[live.index(done.record.name)]
    protos = class_prototypes(before.train_emb, gallery.train_y, C)
    fm_te = torch.isin(gallery.test_y, torch.tensor(roles.forgotten))
    per_b = per_identity_accuracy(before.pred, gallery.test_y, C)
    per_a = per_identity_accuracy(after.pred, gallery.test_y, C)
    role = {c: "forgotten" for c in roles.forgotten} | {c: "earlier" for c in roles.earlier}
    trainable = sum(p.numel() for p in lora.iter_task_parameters(model.blocks, done.record.name))
    total = count_parameters(model)
    zero_groups = sum(n == 0.0 for n in current)
    seed = done.cfg.seed
    return ForgetReport(
        cancelled=False, task=done.record.name, kind=model.kind, forgotten=done.record.forgotten,
        earlier_forgotten=[model.class_names[c] for c in roles.earlier],
        num_retained=len(roles.retained),
        acc_r_before=acc_r_b, acc_r_after=acc_r_a, acc_f_before=acc_f_b, acc_f_after=acc_f_a,
        acc_o_before=accuracy(before, gallery, roles.earlier),
        acc_o_after=accuracy(after, gallery, roles.earlier),
        drop=drop, h_mean=h_mean(acc_r_a or 0.0, drop),
        seconds=done.seconds, train_seconds=done.train_seconds,
        trainable_params=trainable, total_params=total, trainable_share=trainable / max(1, total),
        group_norms=norms, task_names=live, zero_groups=zero_groups,
        zero_group_ratio=zero_groups / max(1, len(current)),
        membership_before=membership(before, gallery, roles, model.head.s, seed),
        membership_after=membership(after, gallery, roles, model.head.s, seed),
        forgotten_cos_to_prototype_before=mean_cos_to_prototype(before.test_emb[fm_te], protos,
                                                                 gallery.test_y[fm_te]),
        forgotten_cos_to_prototype_after=mean_cos_to_prototype(after.test_emb[fm_te], protos,
                                                               gallery.test_y[fm_te]),
        per_identity=[IdentityRow(identity=n, role=role.get(c, "retained"), before=per_b[c],
                                  after=per_a[c]) for c, n in enumerate(model.class_names)],
        device=str(model.device), config=done.cfg.to_dict(), curve=done.curve,
        accuracy_rule=ACCURACY_RULE, stop=done.stop or {},
        blocks_used=len(current) - zero_groups,
        open_set=(open_set_rows(before, after, gallery, roles, done.tau)
                  if done.tau is not None else {}),
        before_seconds=done.before_seconds,
    )


class Evaluation(TypedDict):
    """A recognizer on a gallery's test pictures, split by the checkpoint's history."""

    acc_r: float | None
    acc_o: float | None
    acc_all: float | None
    forgotten: list[str]
    tasks: list[str]
    group_norms: list[list[float]]
    per_identity: list[dict]
    accuracy_rule: str
    threshold: dict | None  # openset.Threshold.to_dict(), None for a recognizer without one
    open_set: dict  # answers at the threshold (openset.rates) for retained and forgotten


@torch.no_grad()
def evaluate(model: Recognizer, gallery: Gallery, snap: Snapshot | None = None) -> Evaluation:
    """Accuracy of a recognizer on a gallery's test split, split by the checkpoint's history
    (from ``snap`` when it is the model's current snapshot on this gallery)."""
    check_labels(model, gallery)
    if snap is None or not snap.fits(model, gallery, train=False):
        snap = snapshot(model, gallery, with_train=False)
    C = len(model.class_names)
    o_idx = [model.class_index(n) for n in model.forgotten()]
    r_idx = [c for c in range(C) if c not in set(o_idx)]
    per = per_identity_accuracy(snap.pred, gallery.test_y, C)
    return Evaluation(
        acc_r=accuracy(snap, gallery, r_idx), acc_o=accuracy(snap, gallery, o_idx),
        acc_all=fraction_correct(snap.pred, gallery.test_y), forgotten=model.forgotten(),
        tasks=[t.name for t in model.tasks], group_norms=lora.group_norms(model.blocks),
        per_identity=[{"identity": n, "accuracy": per[c],
                       "role": "forgotten" if c in o_idx else "retained"}
                      for c, n in enumerate(model.class_names)],
        accuracy_rule=ACCURACY_RULE,
        threshold=model.threshold.to_dict() if model.threshold else None,
        open_set={"retained": rates(snap.test_cos, gallery.test_y, r_idx, model.threshold.tau),
                  "forgotten": rates(snap.test_cos, gallery.test_y, o_idx, model.threshold.tau)}
        if model.threshold else {},
    )
