"""The engine's long calls as work that can cross a process boundary.

On a ZeroGPU Space the GPU exists only inside a forked worker: a call's arguments arrive there
pickled, what it yields comes back pickled, and nothing it changes in memory reaches the
caller. So each long call is a record of picklable inputs (``ForgetCall``, ``EnrollCall``,
``CompareCall``) and ``run(call)`` a generator that yields progress as it goes and, last,
``Done(result)``: a result the caller applies to its own state (``apply_task``). A call never
changes its inputs (it works on copies, on the best device it finds), so the same code runs in
the caller's process on a CPU, on a dedicated GPU, or in a ZeroGPU worker, and a call that fails
or is closed early (cancelled) leaves the caller exactly as it was.
"""
from __future__ import annotations

import contextvars
import copy
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

import torch

from .config import DataConfig, ForgetConfig, TaskRecord, TrainConfig
from .data import Gallery
from .evaluation import Roles, Snapshot, snapshot
from .forgetting import forget
from .model import Recognizer, resolve_device
from .openset import Threshold
from .progress import CancelFn, Progress, ProgressFn

T = TypeVar("T")


@dataclass
class Done:
    """The last thing a call yields: its result (everything on the CPU)."""

    result: Any


@dataclass
class _Failed:
    error: BaseException


def stream(work: Callable[[ProgressFn, CancelFn], T], threads: int = 0
           ) -> Iterator[Progress | Done]:
    """``work(on_progress, should_cancel)`` as a generator: its progress as it comes, then
    ``Done(result)``. Closing the generator early asks ``work`` to stop (``should_cancel``
    turns true) and waits for it, so nothing runs on after a cancel. ``threads``: torch's
    threads for the work (its thread's own setting; 0 leaves torch's default)."""
    items: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def target() -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            items.put(Done(work(items.put, stop.is_set)))
        except BaseException as err:  # raised again in the caller's thread
            items.put(_Failed(err))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                              name="gslora-call", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _Failed):
                raise item.error
            yield item
            if isinstance(item, Done):
                return
    finally:
        stop.set()
        thread.join()


def _working_copy(model: Recognizer, device: torch.device) -> Recognizer:
    """The call's own recognizer: the caller's is never changed (in-process, they are one
    object until copied)."""
    return copy.deepcopy(model).to(device)


# ----- forgetting ------------------------------------------------------------------------------
@dataclass
class ForgetCall:
    """One forgetting task: ``forgetting.forget``'s inputs. ``plan``: its roles, planned by
    the caller (``forgetting.plan_task``); ``before``: the model's snapshot on the gallery (the
    previous task's after)."""

    model: Recognizer
    gallery: Gallery
    plan: Roles
    cfg: ForgetConfig
    before: Snapshot | None = None
    seconds: float = 60.0  # what the call may take: ZeroGPU reserves this
    threads: int = 0  # torch threads on a CPU (``threads.free_cores``); 0 = torch's default


@dataclass
class TaskDelta:
    """What a forgetting task changed, to apply to the caller's recognizer: the task's record
    and adapter weights, the threshold (fixed by the task if the model had none), the report
    and the snapshot after it."""

    record: TaskRecord
    adapters: dict[str, torch.Tensor]
    threshold: Threshold | None
    report: dict
    after: Snapshot


def _task_keys(task: str) -> tuple[str, str]:
    """How a task's LoRA weights end in a state dict (A and B of every adapted layer)."""
    return f".lora_A.{task}", f".lora_B.{task}"


def task_adapters(model: Recognizer, task: str) -> dict[str, torch.Tensor]:
    """A task's LoRA weights from ``model``'s state dict."""
    ends = _task_keys(task)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k.endswith(ends)}


def apply_task(model: Recognizer, delta: TaskDelta) -> Snapshot:
    """Give ``model`` the task ``delta`` describes, exactly as the call left its own copy;
    returns the snapshot after it, now of ``model``'s revision."""
    model.add_task(delta.record)
    try:
        missing, unexpected = model.load_state_dict(delta.adapters, strict=False)
        ends = _task_keys(delta.record.name)
        if unexpected or any(k.endswith(ends) for k in missing):
            raise ValueError(f"the task's adapters do not fit this recognizer ({unexpected[:2]})")
    except BaseException:
        model.remove_task(delta.record.name)
        raise
    model.threshold = delta.threshold
    model.eval().requires_grad_(False)
    delta.after.revision = model.revision  # the call measured what the model now is
    return delta.after


def _forget(call: ForgetCall) -> Iterator[Progress | Done]:
    model = _working_copy(call.model, resolve_device(call.cfg.device))

    def work(progress: ProgressFn, cancelled: CancelFn) -> TaskDelta:
        report, after = forget(model, call.gallery, call.plan, call.cfg, before=call.before,
                               on_progress=progress, should_cancel=cancelled)
        if after is None:
            raise InterruptedError("cancelled")
        record = model.tasks[-1]
        return TaskDelta(record, task_adapters(model, record.name), model.threshold,
                         dict(report), after)
    yield from stream(work, call.threads)


# ----- enrolment -------------------------------------------------------------------------------
@dataclass
class EnrollCall:
    """Train a gallery's recognizer from the backbone, then measure it on the gallery."""

    backbone: Recognizer
    gallery: Gallery
    data_config: DataConfig
    cfg: TrainConfig
    seconds: float = 120.0
    threads: int = 0


@dataclass
class Enrolled:
    model: Recognizer  # on the CPU
    report: dict
    state: Snapshot  # the model on its gallery: the first task's "before"
    seconds: float  # the whole call, measuring included


def _enroll(call: EnrollCall) -> Iterator[Progress | Done]:
    from .training import from_backbone, train_recognizer

    def work(progress: ProgressFn, cancelled: CancelFn) -> Enrolled:
        t0 = time.perf_counter()
        backbone = _working_copy(call.backbone, resolve_device(call.cfg.device))
        model = from_backbone(backbone, call.gallery, call.data_config)
        report = train_recognizer(model, call.gallery, call.cfg, on_progress=progress,
                                  should_cancel=cancelled)
        progress({"stage": "measuring the recognizer on held-back pictures"})
        state = snapshot(model, call.gallery)
        return Enrolled(model.cpu(), report, state, time.perf_counter() - t0)
    yield from stream(work, call.threads)


# ----- comparing -------------------------------------------------------------------------------
@dataclass
class CompareCall:
    """Deletion, GS-LoRA (``model``'s tasks so far) and, with ``backbone``, retraining without
    the forgotten people, measured alike; plus the embedding map against ``original``."""

    model: Recognizer
    original: Recognizer | None
    gallery: Gallery
    gs_seconds: float | None
    backbone: Recognizer | None = None  # retrain from it; None: no retraining
    cfg: TrainConfig = field(default_factory=TrainConfig.from_backbone)
    seconds: float = 60.0
    threads: int = 0


@dataclass
class Compared:
    inspection: dict  # {"forgotten", "methods", "embedding_map"}
    retrain_seconds: float | None  # the retraining's wall time and pictures: a measured rate
    retrain_pictures: int = 0


def _compare(call: CompareCall) -> Iterator[Progress | Done]:
    from .probes import compare, embedding_map, retrain_without

    def work(progress: ProgressFn, cancelled: CancelFn) -> Compared:
        device = resolve_device(call.cfg.device)
        model = _working_copy(call.model, device)
        forgotten = model.forgotten()
        retrained = None
        if call.backbone is not None:
            stage = "retraining without them"
            progress({"stage": stage})
            retrained = retrain_without(
                _working_copy(call.backbone, device), call.gallery, forgotten, call.cfg,
                model.data_config, on_progress=lambda p: progress({**p, "stage": stage}),
                should_cancel=cancelled)
        if cancelled():
            raise InterruptedError("cancelled")
        total, t0 = 3 + (retrained is not None), time.perf_counter()

        def measuring(what: str, k: int) -> None:
            progress({"stage": f"measuring {what}", "done": k, "total": total,
                      "seconds": time.perf_counter() - t0})
        rows = compare(model, call.gallery, call.gs_seconds, retrained, on_method=measuring)
        measuring("the embedding map", total - 1)
        original = _working_copy(call.original, device) if call.original is not None else model
        emap = embedding_map(original, model, call.gallery, forgotten)
        return Compared({"forgotten": forgotten, "methods": rows, "embedding_map": emap},
                        retrained.seconds if retrained else None,
                        retrained.pictures if retrained else 0)
    yield from stream(work, call.threads)


# ----- one entry point -------------------------------------------------------------------------
Call = ForgetCall | EnrollCall | CompareCall
_RUNNERS: dict[type, Callable[[Any], Iterator[Progress | Done]]] = {
    ForgetCall: _forget, EnrollCall: _enroll, CompareCall: _compare}


def run(call: Call) -> Iterator[Progress | Done]:
    """Run ``call``: its progress, then ``Done(result)`` (``TaskDelta``, ``Enrolled`` or
    ``Compared``). A generator of picklable items, so it can run in another process."""
    runner = _RUNNERS.get(type(call))
    if runner is None:
        raise TypeError(f"not an engine call: {type(call).__name__}")
    yield from runner(call)


def result_of(items: Iterator[Progress | Done], on_progress: ProgressFn,
              should_cancel: CancelFn) -> Any:
    """Drive a call's generator (``run``, or ``run`` behind a process boundary): progress to
    ``on_progress``, and the result. ``should_cancel`` is asked after each item; true closes
    the call (it stops where it is) and raises InterruptedError."""
    try:
        for item in items:
            if isinstance(item, Done):
                return item.result
            on_progress(item)
            if should_cancel():
                raise InterruptedError("cancelled")
        raise RuntimeError("the call ended without a result")
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
