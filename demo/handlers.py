"""The page's event handlers: each reads the visitor's workspace, asks the engine, and returns
what the views make of the result. Long work (training, forgetting, comparing) runs in the
workspace's background thread while the handler, a generator, streams its progress; cancel is a
separate, instant event.

Each browser (or ``gradio_client``) session gets its own ``Workspace`` in a ``gr.State``; it is
closed (files deleted, job stopped) when the session ends or after ``session_ttl_s`` idle.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gradio as gr

from gslora_core.config import StudioConfig
from gslora_core.report import nouns, time_left

from . import (
    gpu,  # noqa: F401 - decorates the GPU call on import, before the page launches
    views,
)
from .jobs import Job, readable_error
from .layout import Page
from .request import PAGE_KNOBS, ForgetRequest
from .room import Room, RoomFull
from .uploads import UploadJanitor

if TYPE_CHECKING:
    from .workspace import Workspace
else:  # gradio resolves the handlers' annotations to find gr.Request: every name must exist
    Workspace = Any

ENGINE = "demo.workspace"  # imports torch: loaded in the background so the page is up fast


def engine():
    """The engine module (torch, timm, MTCNN); instant once the background import is done."""
    return importlib.import_module(ENGINE)


def preload_engine() -> threading.Thread:
    thread = threading.Thread(target=engine, name="gslora-preload", daemon=True)
    thread.start()
    return thread


POLL_S = 1.0  # seconds between page updates while a job runs


def watch(job: Job, view: Callable[[], dict], at_once: bool = True) -> Iterator[dict]:
    """The page while a background job runs: ``view()`` at once (a job may take a second only)
    and every ``POLL_S``. A visitor who leaves or an event cancelled (the generator closed)
    stops the job's thread too."""
    try:
        if at_once:
            yield view()
        while not job.wait(POLL_S):
            yield view()
    finally:
        if not job.done:
            job.cancel()


def ingest_progress(progress, what: str = "") -> Callable[[dict], None]:
    """A ``load_gallery`` progress callback that moves the page's progress bar: pictures done
    of the total, and the time left at the rate so far (each stage timed from its start)."""
    started: dict[str, float] = {}

    def tell(p: dict) -> None:
        stage, done, total = p["stage"], p["done"], p["total"]
        t0 = started.setdefault(stage, time.time())
        if stage == "measuring":
            desc = f"{what}Measuring the recognizer on the gallery's pictures: {done} of {total}"
        elif stage == "reading":
            desc = f"{what}Reading pictures: {done} of {total}"
        else:
            cached = f" ({p['cached']} aligned before, reused)" if p.get("cached") else ""
            desc = f"{what}Finding and aligning faces: {done} of {total}{cached}"
        left = time_left(done, total, time.time() - t0)
        progress((done, total) if total else None, desc=desc + (f" · {left}" if left else ""),
                 unit="pictures")
    return tell


log = logging.getLogger("gslora.page")

# What a visitor's own input or timing causes: a message for them and one line in the server's
# log, not a traceback (anything else is a fault of the server's and keeps its traceback).
EXPECTED = (ValueError, KeyError, FileNotFoundError, InterruptedError, RoomFull)


def _readable(err: Exception, title: str, lasting: bool = False) -> gr.Error:
    """Any failure as a titled message that says what failed and what to do (never a bare
    "Error" or an errno): engine errors in words, RoomFull as it is. ``lasting``: the message
    stays until the visitor closes it (a refused gallery: what to change is read at leisure)."""
    if isinstance(err, gr.Error):
        if err.title == "Error":  # gradio's default title says nothing
            err.title = title
        out = err
    else:
        message = str(err) if isinstance(err, RoomFull) else readable_error(err)
        out = gr.Error(message, title="The studio is busy" if isinstance(err, RoomFull)
                       else title)
    if isinstance(err, (gr.Error, *EXPECTED)):
        out.print_exception = False
        log.info("%s: %s", out.title, out.message)
    if lasting:
        out.duration = None
    return out


def friendly(fn: Callable, title: str, lasting: bool = False) -> Callable:
    """Engine errors become a readable message on the page (and for API clients), headed by
    ``title`` (what failed); the session and its data stay as they were. ``lasting``: the
    message stays on the page until closed."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _readable(err, title, lasting) from err
        return gen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _readable(err, title, lasting) from err
    return call


def file_paths(files: list | None) -> list[str]:
    """The server paths of an upload box's files (gradio gives paths or file objects)."""
    paths = [f if isinstance(f, str) else getattr(f, "name", None) for f in (files or [])]
    return [p for p in paths if p]


def latest_zip(files: list | None) -> list | None:
    """The upload box keeps every file chosen so far; a gallery is one zip, so a zip chosen
    after another replaces it (pictures chosen one batch after another still add up)."""
    paths = file_paths(files)
    zips = [p for p in paths if str(p).lower().endswith(".zip")]
    if not zips or (len(zips) == 1 and len(paths) == 1):
        return gr.skip()
    return [zips[-1]]


def close_workspace(ws: Workspace | None) -> None:
    """Stop the session's job and delete its files (closing twice is harmless)."""
    if ws is not None and hasattr(ws, "close"):
        ws.close()


def session_of(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def forget_endpoint(handler: Callable[..., Iterator[dict]]) -> Callable[..., Iterator[dict]]:
    """``handler(ws, request: ForgetRequest, progress)`` as the /forget endpoint gradio calls
    with flat inputs: (ws, names, recipe, one value per ``PAGE_KNOBS`` knob, progress).

    Why a generated signature: gradio reads a handler's parameters to know where to put its
    progress tracker, and the knob list is written once, in ``demo.request``."""
    @functools.wraps(handler)
    def endpoint(ws: Any, names: Any, recipe: Any, *rest: Any) -> Iterator[dict]:
        *values, progress = rest
        yield from handler(ws, ForgetRequest.from_page(names, recipe, *values), progress)

    P = inspect.Parameter
    params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in ("ws", "names", "preset_name", *PAGE_KNOBS)]
    endpoint.__signature__ = inspect.Signature(
        params + [P("progress", P.POSITIONAL_OR_KEYWORD, default=gr.Progress())])
    endpoint.__annotations__ = {}  # the handler's (req: ForgetRequest) name no input here
    return endpoint


class Handlers:
    """Every event of the page. Holds only configuration and the shared room: every visitor's
    data is in their gr.State. ``page`` is set once the layout is built."""

    def __init__(self, cfg: StudioConfig = StudioConfig()):
        self.cfg = cfg
        self.page: Page | None = None
        self.room = Room(cfg.max_sessions, cfg.max_wait_s)
        self.janitor = UploadJanitor(cfg.upload_grace_s)

    def _ws(self, ws: Workspace | None, request: gr.Request | None) -> Workspace:
        """This visitor's workspace, created on their first load (refused if the room is full)."""
        if ws is not None and not ws.closed:
            return ws
        ws = engine().Workspace(self.cfg)
        try:
            self.room.enter(session_of(request), ws)
        except RoomFull:
            ws.close()
            raise
        return ws

    def state_deleted(self, ws: Workspace | None) -> None:
        """gr.State's delete callback: the session expired (or was closed an hour ago)."""
        close_workspace(ws)
        if ws is not None:
            self.room.forget_workspace(ws)

    @staticmethod
    def _need(ws: Workspace | None) -> Workspace:
        if ws is None or ws.closed:
            raise gr.Error("load a gallery first (the sample gallery is one click)")
        return ws

    def load_sample(self, ws: Workspace | None, request: gr.Request,
                    progress=gr.Progress()) -> dict:
        return self._load_sample(self._ws(ws, request), "faces", progress, "Reading the sample "
                                 "gallery (faces are aligned once, then reused)")

    def load_objects(self, ws: Workspace | None, request: gr.Request,
                     progress=gr.Progress()) -> dict:
        return self._load_sample(self._ws(ws, request), "objects", progress,
                                 "Reading the objects sample (CIFAR-10 pictures, used whole)")

    def _load_sample(self, ws: Workspace, kind: str, progress, desc: str) -> dict:
        progress(0, desc=desc)
        ws.load_sample(on_progress=ingest_progress(progress), kind=kind)
        return views.everything(self.page, ws) | views.fresh(self.page) | {
            self.page.gallery_status: f"Loaded. Next: choose {nouns(ws.kind)[1]} to erase "
                                      "in **3 · Forget**."}

    def upload_gallery(self, ws: Workspace | None, files: list | None, request: gr.Request,
                       progress=gr.Progress()) -> dict:
        paths = file_paths(files)
        if not paths:
            raise gr.Error("Choose a .zip (one folder per person) or several pictures named "
                           "after the person (Ana_Lima_0001.jpg), then press Use my upload.")
        gone = [Path(p).name for p in paths if not Path(p).exists()]
        if gone:
            raise gr.Error(f"Your upload ({', '.join(gone[:3])}) is no longer on the server: "
                           f"uploads are kept {self.cfg.upload_grace_s / 60:.0f} min until "
                           "they are used. Choose the files again and press Use my upload.")
        ws = self._ws(ws, request)
        session = session_of(request)
        ahead, wait = self.room.admit(session)  # RoomFull: "busy, try the sample gallery"
        progress(0, desc="Opening your upload")
        try:
            # Deleted from gradio's cache minutes after the last identical upload, not at once:
            # another visitor may have sent the very same file (same path) a second ago.
            with self.janitor.reading(paths):
                ws.load_upload(paths, on_progress=ingest_progress(progress))
        except BaseException:
            self.room.done(session, None)
            raise
        line = (f" {ahead} other recognizer{'s are' if ahead > 1 else ' is'} trained before "
                f"yours (about {wait / 60:.0f} min)." if ahead else "")
        return views.everything(self.page, ws) | views.fresh(self.page) | {
            self.page.upload: None,
            self.page.gallery_status: "Faces found. The recognizer is being trained (tab 2)."
                                      + line}

    def train_recognizer(self, ws: Workspace | None, request: gr.Request,
                         progress=gr.Progress()):
        seconds = None  # how long training took: the room's wait estimate learns from it
        try:
            seconds = yield from self._train(self._need(ws), progress)
        finally:
            self.room.done(session_of(request), seconds)

    def _train(self, ws: Workspace, progress):
        job = ws.start_enroll()
        est = ws.retrain_estimate()["seconds"]
        yield from watch(job, lambda: views.training_view(self.page, job, progress, est))
        if job.error:
            raise gr.Error(f"Training the recognizer failed: {job.error}. Your gallery is still "
                           "loaded: press Use my upload again to retry, or load the sample gallery.")
        if job.cancelled:
            yield {self.page.recog_md: "Training cancelled: upload again to retry."}
            return
        yield views.everything(self.page, ws)
        return job.elapsed()

    def forget(self, ws: Workspace | None, req: ForgetRequest, progress):
        """Run one forgetting task and stream its page: the live view, then the results.
        (``forget_endpoint`` gives gradio the flat inputs it sends.)"""
        ws = self._need(ws)
        try:
            cfg = req.config()
        except ValueError as err:  # the engine names the setting; the page says where it is
            raise gr.Error(f"{err}: change it under Advanced settings (choosing a recipe "
                           "again resets them all)") from err
        job = ws.start_forget(req.names, cfg)
        earlier = ws.reports[-1] if ws.reports else None
        yield from watch(job, lambda: views.live_view(self.page, job, earlier, progress))
        if job.error:
            raise gr.Error(f"Forgetting failed: {job.error}. The model is exactly as it was "
                           "before this task: change the settings (or press Cancel sooner) and "
                           "press Forget again.")
        if job.cancelled:
            done = sum("step" in q for q in job.points)
            yield {self.page.forget_md: f"**Cancelled** at step {done} (cap {cfg.steps}). "
                                        "The model is exactly as it was before this task."}
            return
        done = views.task_done_text(job.result)
        # The task's own page as it ended, drawn while it is still the visible tab (a plot drawn
        # in a hidden tab takes a wrong width), then the results.
        yield views.live_view(self.page, job, earlier, None) | {self.page.forget_md: done}
        yield views.after_task(self.page, ws) | {self.page.tabs: gr.Tabs(selected="results")}

    def compare(self, ws: Workspace | None, retrain: bool, progress=gr.Progress()):
        """delete vs GS-LoRA (vs retrain) on everyone forgotten so far, and the embedding map."""
        ws = self._need(ws)
        job = ws.start_inspect(bool(retrain))
        yield from watch(job, lambda: {self.page.compare_md: views.comparing_text(job, progress)},
                         at_once=False)
        if job.error:
            raise gr.Error(f"The comparison did not run: {job.error}. Your model is unchanged.")
        if job.cancelled:
            yield {self.page.compare_md: "Comparison cancelled."}
            return
        yield views.inspection_view(self.page, ws)

    def suggest(self, ws: Workspace | None) -> list[str]:
        return self._need(ws).suggest()

    def cancel(self, ws: Workspace | None) -> str:
        if ws is not None and ws.cancel():
            return "Cancelling… the model will be exactly as before this task."
        return "Nothing is running."

    def rollback(self, ws: Workspace | None) -> dict:
        ws = self._need(ws)
        name = ws.rollback()
        return views.after_task(self.page, ws) | {
            self.page.history_md: f"Rolled back **{name}**: its adapter is removed and the model "
                                  "is as before it."}

    def export(self, ws: Workspace | None) -> dict:
        ws = self._need(ws)
        paths = ws.export()
        return {self.page.export_files: [str(p) for p in paths.values()],
                self.page.export_box: gr.Column(visible=True),
                self.page.history_md: "Exported: the model (every ungated task folded into "
                                      "plain weights; a gated task, whose change depends on "
                                      "the picture, stays an adapter with its gate) and the "
                                      "report as JSON and Markdown."}

    def try_photo(self, ws: Workspace | None, photo: str | None,
                  test_picture: str | None) -> dict:
        """Who is this, before any forgetting and now. An uploaded photo counts over a picked
        test picture, and the page clears the one that does not count."""
        ws = self._need(ws)
        res = ws.predict(photo=photo or None, test_picture=None if photo else test_picture)
        if res["gallery"] is not ws.gallery:  # another gallery was loaded while it ran:
            return {}                         # its answer is not about what is on screen
        return views.photo_view(self.page, ws, res, photo, test_picture)

    def toggle(self, ws: Workspace | None, current: list[str] | None,
               evt: gr.SelectData) -> list[str]:
        """Clicking a face adds or removes that person from the forget list. A person already
        forgotten cannot be chosen again: the click says so and changes nothing."""
        current = list(current or [])
        if ws is None or ws.closed or ws.model is None:
            return current
        names = ws.gallery.names
        name = names[evt.index] if isinstance(evt.index, int) and evt.index < len(names) else None
        can = set(ws.candidates())
        if name is None:
            return [n for n in current if n in can]
        if name not in can:
            gr.Info(f"{name} was already forgotten (greyed picture). Roll back that task in "
                    "4 · Results to choose them again.", title="Already forgotten")
            return [n for n in current if n in can]
        current = [n for n in current if n in can]
        return [n for n in current if n != name] if name in current else current + [name]

    def end_session(self, request: gr.Request) -> None:
        """The tab was closed (gradio's public unload event): delete this session's workspace
        now, not when gradio drops its state an hour later."""
        self.room.leave(session_of(request), close_workspace)
