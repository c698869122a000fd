"""A background job (training, forgetting, comparing) and what its failure says to a visitor.

The page polls a ``Job``'s ``points`` while its thread runs an engine call, and shows its
``error`` in words (``readable_error``), never a traceback or an errno. No torch import here:
the page reads errors in words before the engine has loaded.
"""
from __future__ import annotations

import contextvars
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gslora_core.progress import CancelFn, Progress, ProgressFn


def readable_error(err: BaseException) -> str:
    """What went wrong, in words a visitor can act on."""
    torch = sys.modules.get("torch")  # only torch raises its out-of-memory error: no import here
    if torch is not None and isinstance(err, torch.OutOfMemoryError):
        return "out of memory: try fewer steps, a smaller batch or a smaller rank"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    if isinstance(err, FileNotFoundError):  # never "[Errno 2] ..." with a server path
        name = Path(err.filename).name if err.filename else "a file it needs"
        return (f"{name} is no longer on the server (it expired or was removed): load the "
                "gallery again, or choose your files again")
    if isinstance(err, OSError):
        why = (err.strerror or "input/output error").lower()
        return (f"the server could not read or write a file ({why}): wait a moment and try "
                "again, or load the sample gallery")
    if isinstance(err, (ValueError, InterruptedError)):
        return str(err)
    return (f"something unexpected went wrong on the server ({type(err).__name__}: {err}); "
            "nothing you had was changed: try again, or reload the page if it repeats")


_RUNNING: dict[int, int] = {}  # id of each running job -> the torch threads it was given
_RUNNING_LOCK = threading.Lock()


def running() -> tuple[int, int]:
    """(jobs running now in this process, torch threads they were given): what the machine's
    load already counts of this app's own work."""
    with _RUNNING_LOCK:
        return len(_RUNNING), sum(_RUNNING.values())


@dataclass
class Job:
    """A background thread running one engine call, with its progress and outcome.

    ``fn(on_progress, should_cancel)`` does the work; the page polls ``points`` while it runs."""

    kind: str  # "enroll", "forget" or "compare"
    fn: Callable[[ProgressFn, CancelFn], object]
    threads: int = 0  # torch threads the work was given (0: torch's default), for ``running``
    points: list[Progress] = field(default_factory=list)  # gslora_core.progress shapes
    result: object = None
    error: str | None = None
    cancelled: bool = False
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def __post_init__(self) -> None:
        self._cancel = threading.Event()
        # The job runs in the context of whoever started it: a GPU call made from the job
        # (``demo.gpu``) is then charged to the visitor whose request started it.
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,),
                                        name=f"gslora-{self.kind}", daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    def _run(self) -> None:
        with _RUNNING_LOCK:
            _RUNNING[id(self)] = self.threads or 1
        try:
            self.result = self.fn(self.points.append, self._cancel.is_set)
            if isinstance(self.result, dict) and self.result.get("cancelled"):
                self.cancelled = True
        except InterruptedError:
            self.cancelled = True
        except BaseException as err:  # reported on the page; the session goes on
            self.error = readable_error(err)
        finally:
            with _RUNNING_LOCK:
                _RUNNING.pop(id(self), None)
            self.finished = time.time()

    @property
    def done(self) -> bool:
        return self.finished is not None

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started
