"""What long engine calls tell their caller as they go: one typed shape per kind of progress.

A caller (the page's job, the CLI, a benchmark) passes ``on_progress`` and gets these dicts;
the page tells them apart by their keys (``"step"`` in a training or forgetting step,
``"done"`` in a count of pictures, ``"stage"`` alone for work in words).
"""
from __future__ import annotations

from typing import Callable, TypedDict, Union


class PartsDone(TypedDict, total=False):
    """A count through many pictures: reading, aligning or measuring a gallery."""

    stage: str  # "reading", "aligning", "measuring", or words ("measuring the retrained model")
    done: int
    total: int
    cached: int  # aligning: pictures whose crop was found in the cache
    seconds: float


class TrainStep(TypedDict, total=False):
    """One optimizer step of enrolment (``training.train_recognizer``); the last point also has
    ``stage`` "measuring" (training done, the held-back pictures being scored)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float | None
    seconds: float
    epoch_end: bool
    stage: str


class ForgetStep(TypedDict, total=False):
    """One optimizer step of a forgetting task (``forgetting``): the loss and its parts, the
    LoRA groups, and, at the stopping rule's checks, who is still not forgotten."""

    step: int
    steps: int  # the cap
    lr: float
    alpha: float  # group-lasso strength (fixed schedule); 0 on the release path
    blocks: int  # blocks in use
    seconds: float
    loss: float
    retain: float
    forget: float
    unknown: float
    sparsity: float
    prototype: float
    keep: float
    group_norms: list[float]
    zero_groups: int
    released: int  # 0-based index of the block released at this step
    eased: float  # the lower BND asked from the next step (``schedules.Release``)
    full: bool  # the check judged every picture of the task again
    bnd: float  # the BND the check judged at
    people: int
    pictures_left: int
    people_left: int
    recognized_left: int
    earlier_left: int
    acc_r: float  # live test accuracy (eval_every), for the plot only
    acc_f: float


class Stage(TypedDict):
    """Work around the steps, in words ("preparing", "measuring the recognizer after …")."""

    stage: str


Progress = Union[PartsDone, TrainStep, ForgetStep, Stage]
ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]
