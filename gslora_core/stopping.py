"""The stopping rule: when a task's people are forgotten, judged on its own training pictures.

A task is done when every forget picture (and every replayed picture of an earlier task) is
neither answered as its own person nor within reach of the open-set threshold for anyone, as
the recognizer sees it (evaluation embeddings, both views); never on test pictures. Owned here:
which pictures are still open (``Rule.focus``, what the next forget batches lean on) and how a
task's end reads in words (``Stop``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ForgetConfig
from .objective import forget_gap
from .openset import own_and_other
from .task import Inputs, Task


def pushes_unknown(cfg: ForgetConfig, kind: str) -> bool:
    """Whether a release task pushes its pictures below the open-set threshold (and its stopping
    rule asks it). "auto": for faces, where a forgotten person must come out unknown rather than
    as another person's name; not for object classes, whose measure (the paper's) is Acc_f, and
    whose few classes share so much that the threshold hardly separates (a forgotten cat is
    taken for a dog; docs/objects.md)."""
    if cfg.schedule != "release":
        return False
    return cfg.unknown == "on" or (cfg.unknown == "auto" and kind != "objects")


class Rule:
    """The stopping rule on one task's pictures, and which of them are still open."""

    def __init__(self, task: Task, inputs: Inputs):
        self.task, self.inputs = task, inputs
        self.judged: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.bnd = 0.0  # the BND ``judged`` was judged at
        self.focus = torch.zeros(0, dtype=torch.long)  # forget pictures not yet past the rule

    def _shut(self, idx: torch.Tensor) -> torch.Tensor:
        """Pictures whose gate is shut (under half open): the recognizer took them for someone
        else, or for nobody, before the task. No step can move them, so the rule leaves them as
        they are. (Their gate reads the e0 ``Inputs`` keeps: a few cosines a check.)"""
        if not self.task.model.gated_tasks:
            return torch.zeros(len(idx), dtype=torch.bool)
        return self.inputs.openness(idx) < 0.5

    @torch.no_grad()
    def judge(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For pictures ``idx``: (past the stopping rule at BND ``self.bnd``, still answered as
        themselves)."""
        task, cfg = self.task, self.task.cfg
        model = task.model
        cos = model.head.cosine(self.inputs.judged(idx).to(model.device)).cpu()
        own, other = own_and_other(cos, task.gallery.train_y[idx])
        best = cos.max(1).values
        # Half of each margin the loss pushes to: the loss goes past the rule, so the rule is met
        # while the push goes on, and held-back pictures, which follow less far, still clear it.
        done = other - own > max(0.0, forget_gap(self.bnd)) / 2
        if task.unknown:
            done &= best < task.tau - cfg.margin / 2
        return done | self._shut(idx), (own >= other) & (own >= task.tau)

    @torch.no_grad()
    def check(self, bnd: float, full: bool = True) -> dict:
        """The rule at BND ``bnd`` (``Schedule.bnd``) on the task's own training pictures and
        the replayed pictures of earlier tasks. Between full checks only the pictures not yet
        past it are judged again (a 50-person task has hundreds of pictures, most of them done
        early); when none is left, or the BND changed, all are judged again (the first before
        the task may stop)."""
        task = self.task
        if full or self.judged is None or bnd != self.bnd:
            self.bnd = bnd
            idx = torch.cat([task.pools.forget, task.pools.earlier.unique()])
            self.judged = (idx, *self.judge(idx))
        idx, done, recognized = self.judged
        if not full:
            open_ = ~done
            done[open_], recognized[open_] = self.judge(idx[open_])
            if bool(done.all()):
                return self.check(bnd, full=True)
        y = task.gallery.train_y[idx]
        mine = torch.isin(y, torch.tensor(task.roles.forgotten))
        self.focus = idx[mine & ~done]
        return {"full": full, "bnd": bnd, "people": len(task.roles.forgotten),
                "pictures_left": int((~done).sum()),
                "people_left": len(set(y[mine & ~done].tolist())),
                "recognized_left": len(set(y[mine & recognized].tolist())),
                "earlier_left": len(set(y[~mine & ~done].tolist())),
                "left_alone": int((mine & self._shut(idx)).sum())}


@dataclass
class Stop:
    """Why a task's training ended, and how far its people were from forgotten then."""

    reason: str  # "done", "step cap", "time cap" or "fixed schedule"
    steps: int
    seconds: float
    people: int  # this task's people
    people_left: int  # of them, with a training picture not yet past the stopping rule
    recognized_left: int  # of them, with a training picture still answered as themselves
    pictures_left: int  # pictures (this task's and replayed earlier ones) not yet past it
    earlier_left: int  # earlier-forgotten people with a replayed picture not past it
    blocks: int  # blocks the task trained (from the top)
    bnd: float  # the BND the rule was last judged at (``Schedule.bnd``)
    left_alone: int = 0  # this task's training pictures its gate keeps shut (``Rule._shut``)

    @classmethod
    def at(cls, reason: str, steps: int, seconds: float, blocks: int, status: dict) -> "Stop":
        """The stop from the rule's last ``status`` (``Rule.check``)."""
        return cls(reason=reason, steps=steps, seconds=seconds, people=status["people"],
                   people_left=status["people_left"],
                   recognized_left=status["recognized_left"],
                   pictures_left=status["pictures_left"], earlier_left=status["earlier_left"],
                   blocks=blocks, bnd=status["bnd"], left_alone=status.get("left_alone", 0))

    @property
    def text(self) -> str:
        """The outcome in a sentence, for the report and the page."""
        if self.reason == "done":
            return (f"all {self.people} forgotten on their training pictures after "
                    f"{self.steps} steps ({self.seconds:.1f} s), {self.blocks} block"
                    f"{'s' if self.blocks != 1 else ''} used" + self._alone)
        if self.reason == "fixed schedule":
            return (f"fixed schedule of {self.steps} steps: {self.people_left} of "
                    f"{self.people} not yet past the stopping rule on their training pictures")
        cap = f"{self.steps} steps" if self.reason == "step cap" else f"{self.seconds:.0f} s"
        return (f"stopped at the cap ({cap}): {self.recognized_left} of {self.people} still "
                f"recognized on their own training pictures, {self.people_left} not yet past "
                f"the margin" + (f"; {self.earlier_left} earlier-forgotten back within reach"
                                 if self.earlier_left else ""))

    @property
    def _alone(self) -> str:
        if not self.left_alone:
            return ""
        n, one = self.left_alone, self.left_alone == 1
        return (f" ({n} training picture{'' if one else 's'} the recognizer took for someone "
                f"else or nobody before the task left as {'it was' if one else 'they were'})")

    def to_dict(self) -> dict:
        return {"reason": self.reason, "steps": self.steps, "seconds": self.seconds,
                "people": self.people, "people_left": self.people_left,
                "recognized_left": self.recognized_left, "pictures_left": self.pictures_left,
                "earlier_left": self.earlier_left, "blocks": self.blocks,
                "left_alone": self.left_alone, "bnd": self.bnd, "text": self.text}
