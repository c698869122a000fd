"""The Gradio app: layout and event wiring over ``gslora_core.workspace``. No ML math here.

Each browser (or ``gradio_client``) session gets its own ``Workspace`` in a ``gr.State``; it is
closed (files deleted, job stopped) when the session ends or after ``session_ttl_s`` idle. Long
work (training, forgetting) runs in the workspace's background thread while the event handler,
a generator, streams progress to the page; cancel is a separate, instant event.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import threading
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr
import pandas as pd
from gradio import component_meta

from gslora_core.config import PRESETS, ForgetConfig, StudioConfig
from gslora_core.report import (
    COMPARISON_HEADERS,
    blocks_text,
    comparison_rows,
    duration,
    forgotten_line,
    metric_rows,
    nouns,
    pct,
    seconds_left,
    task_summary,
    time_left,
    without_curve,
)

from . import plots
from .explain import how_it_works
from .room import Room, RoomFull
from .uploads import UploadJanitor

if TYPE_CHECKING:
    from gslora_core.workspace import Workspace
else:  # gradio resolves the handlers' annotations to find gr.Request: every name must exist
    Workspace = Any

ENGINE = "gslora_core.workspace"  # imports torch: loaded in the background so the page is up fast


def engine():
    """The engine module (torch, timm, MTCNN); instant once the background import is done."""
    return importlib.import_module(ENGINE)


def preload_engine() -> threading.Thread:
    thread = threading.Thread(target=engine, name="gslora-preload", daemon=True)
    thread.start()
    return thread


try:  # ZeroGPU on Hugging Face Spaces: GPU work is wrapped; elsewhere nothing changes
    import spaces

    gpu: Callable = spaces.GPU(duration=240)
except ImportError:  # pragma: no cover - the usual case
    def gpu(fn: Callable) -> Callable:
        return fn

NO_GALLERY = ("No gallery loaded yet: press **Load the sample gallery**, or choose a .zip (one "
              "folder per person) and press **Use my upload**.")
POLL_S = 1.0  # seconds between page updates while a job runs
ROOT = Path(__file__).resolve().parents[1]
# Try-a-photo examples: LFW photos of sample-gallery people that are not in the gallery (never
# trained on), whole as a visitor would upload them, so a phone needs no file of its own.
EXAMPLE_PHOTOS = ["assets/probes/Bill_Clinton_0010.jpg", "assets/probes/Serena_Williams_0024.jpg",
                  "assets/probes/Vladimir_Putin_0032.jpg", "assets/probes/Angelina_Jolie_0012.jpg"]
QUEUE_CONCURRENCY = 4  # per event; training and forgetting have lines of their own (_wire)
ADVANCED = ("rank", "beta", "bnd", "margin", "stage_steps", "steps", "lr", "shots")
# The gallery table's columns: faces (True; how each face was found) or object classes (False:
# pictures are used whole).
IDENT_COLUMNS = {True: ["person", "faces used", "aligned (MTCNN)", "used as-is (tight crop)",
                        "train", "test"],
                 False: ["class", "pictures used", "train", "test"]}
PRESET_LABELS = {"fast": "default (any number of people)",
                 "dense": "dense: LoRA in every block from the start (no sparsity)",
                 "paper": "paper-faithful: group lasso, a fixed 300 steps",
                 "fewshot": "few-shot GS-LoRA++ (4 pictures a person)"}

SIZES_RESULT = Path(__file__).resolve().parents[1] / "bench" / "results" / "sizes.json"


def sizes_figure():
    """Blocks used and Acc_f against task size, measured by bench/sizes.py, as shipped in
    bench/results (None if the file is missing: the tab then shows the text only)."""
    try:
        data = json.loads(SIZES_RESULT.read_text())
        return plots.task_size_figure(data["summary"], data.get("rows", []))
    except (OSError, ValueError, KeyError):
        return None


def knob_text(name: str) -> dict:
    """A setting's label and help on the page, from its one definition in ForgetConfig."""
    meta = next(f.metadata for f in fields(ForgetConfig) if f.name == name)
    return {"label": meta["label"] or name, "info": meta["help"]}


CSS = """
.gslora-big button {font-size: 1.05rem}
#forget-status, #gallery-status, #recognizer-status {min-height: 2.5em}
/* The face picker: as many columns as fit (10 at 1400 px, 8 at 1000 px), every row shown, and
   names written out in full (wrapped) instead of cut by an ellipsis. */
#forget-faces .grid-container {grid-template-columns: repeat(auto-fill, minmax(104px, 1fr))
  !important; grid-template-rows: none !important}
#forget-faces .grid-wrap {overflow-y: auto; max-height: 780px}
#forget-faces .caption-label {white-space: normal; max-width: 100%; left: 0; right: 0;
  font-size: 0.72rem; line-height: 1.15; overflow-wrap: anywhere; text-align: center}
"""
# A typical one-block task changes its block by a norm of 3 to 9 (bench/results/sizes.json):
# the group-norm colour scale reaches at least 5, so a task filling in is seen to grow.
HEATMAP_FLOOR = 5.0
FACE_WORDS = {"mtcnn": "found and aligned automatically (MTCNN face detector)",
              "as-is": "no face found by the detector, so the picture was used as it is (it "
                       "looks like a tight face crop already)",
              "gallery test picture": "a held-back picture of this gallery, aligned when the "
                                      "gallery was loaded"}


def heatmap_top(reports: list[dict], live: list[float] | None = None) -> float:
    """One colour scale for every group-norm heatmap of a session: from 0 to the largest norm
    any task has had (at least HEATMAP_FLOOR), so the live and Results heatmaps agree."""
    norms = [v for r in reports[-1:] for row in r["group_norms"] for v in row] + (live or [])
    return plots.scale_top(norms + [HEATMAP_FLOOR])


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


def _readable(err: Exception, title: str) -> gr.Error:
    """Any failure as a titled message that says what failed and what to do (never a bare
    "Error" or an errno): engine errors in words, RoomFull as it is."""
    if isinstance(err, gr.Error):
        if err.title == "Error":  # gradio's default title says nothing
            err.title = title
        return err
    message = str(err) if isinstance(err, RoomFull) else engine().readable_error(err)
    return gr.Error(message, title="The studio is busy" if isinstance(err, RoomFull) else title)


def friendly(fn: Callable, title: str) -> Callable:
    """Engine errors become a readable message on the page (and for API clients), headed by
    ``title`` (what failed); the session and its data stay as they were."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _readable(err, title) from err
        return gen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _readable(err, title) from err
    return call


def close_workspace(ws: Workspace | None) -> None:
    """Stop the session's job and delete its files (closing twice is harmless)."""
    if ws is not None and hasattr(ws, "close"):
        ws.close()


def session_of(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


@contextlib.contextmanager
def _no_pyi_stub():
    """Define gradio component subclasses without gradio writing a ``.pyi`` stub beside this
    file (its metaclass does that for every component class; the page must write nothing into
    the source tree)."""
    write_stub = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = write_stub


# Two inputs whose gradio check would answer a visitor with a bare "Error" or a message about
# the widget; both are drawn by their parent's front end (``is_template``).
with _no_pyi_stub():
    class NamePicker(gr.CheckboxGroup):
        """The forget list. A name that is no longer a choice (forgotten since the page drew
        the list, or sent by a script through the API) goes on to the engine, whose refusal
        says why in a sentence ("already forgotten in an earlier task: …"), instead of
        gradio's own check ("Value … is not in the list of choices")."""

        is_template = True

        def preprocess(self, payload: list[str] | None) -> list[str]:
            return [str(v) for v in payload or []]

    class PhotoInput(gr.Image):
        """The Try-a-photo input: an undecodable file gets a sentence that says what to do.
        gr.Image decodes an upload before any handler runs, and gradio shows a failure there
        as a bare "Error"."""

        is_template = True

        def preprocess(self, payload):
            try:
                return super().preprocess(payload)
            except gr.Error:
                raise
            except Exception as err:
                raise gr.Error("This file could not be read as a picture (it is damaged, cut "
                               "short or not an image): choose a JPEG or PNG photo, or pick a "
                               "held-back test picture instead.",
                               title="Could not read this photo") from err


class Studio:
    """Builds the page. Holds only configuration: every visitor's data is in their gr.State."""

    def __init__(self, cfg: StudioConfig = StudioConfig()):
        self.cfg = cfg
        self.demo: gr.Blocks | None = None
        self.room = Room(cfg.max_sessions, cfg.max_wait_s)
        self.janitor = UploadJanitor(cfg.upload_grace_s)

    # ---------------------------------------------------------------- helpers
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

    def _state_deleted(self, ws: Workspace | None) -> None:
        """gr.State's delete callback: the session expired (or was closed an hour ago)."""
        close_workspace(ws)
        if ws is not None:
            self.room.forget_workspace(ws)

    @staticmethod
    def _need(ws: Workspace | None) -> Workspace:
        if ws is None or ws.closed:
            raise gr.Error("load a gallery first (the sample gallery is one click)")
        return ws

    # ---------------------------------------------------------------- views (data -> widgets)
    def gallery_view(self, ws: Workspace) -> dict:
        ov = ws.overview()
        words = nouns(ws.kind)
        rows = pd.DataFrame([[r["identity"], r["faces"]] + ([r["aligned"], r["as_is"]]
                                                            if words.faces else [])
                             + [r["train"], r["test"]] for r in ov["identities"]],
                            columns=IDENT_COLUMNS[words.faces])
        unused = ([[f, why] for f, why in ov["rejected"]]
                  + [[f"{who} (whole identity)", why] for who, why in ov["excluded"]])
        notes = [[f, why] for f, why in ov["notes"]]
        n_train = sum(r["train"] for r in ov["identities"])
        n_test = sum(r["test"] for r in ov["identities"])
        what = {"sample": "The sample gallery", "objects": "The objects sample (CIFAR-10)"
                }.get(ov["source"], "Your upload")
        md = (f"**{what}**: {len(rows)} {words.many}, {n_train + n_test} "
              f"{'face pictures' if words.faces else 'pictures'} "
              f"({n_train} to train, {n_test} held back to test). "
              + (f"**{len(unused)} file{'s' if len(unused) != 1 else ''} not used** (reasons "
                 "below)." if unused else "Every file was used."))
        tests = ws.test_pictures()
        return {self.gallery_md: md, self.ident_df: rows,
                self.unused_df: unused, self.unused_box: gr.Column(visible=bool(unused)),
                self.notes_df: notes,
                self.crops: ws.crops(), **self.picker_view(ws),
                self.test_pick: gr.Dropdown(
                    choices=tests, value=None,
                    label=f"…or pick one of the {len(tests)} held-back test pictures (type a "
                          "name to search" + ("; the list shows the first 100)" if len(tests) > 100
                                              else ")")),
                self.examples_box: gr.Column(visible=ov["source"] == "sample")}

    def picker_view(self, ws: Workspace) -> dict:
        """Who can be chosen: every face (forgotten people greyed and marked), the names that
        can still be ticked, and the retrain estimate of this gallery."""
        faces = ws.thumbnails()
        if ws.kind == "objects":
            retrain = gr.Checkbox(label="also retrain without them (not here: the classifier "
                                        "would train again on CIFAR-10, about 2 h on 2 cores)",
                                  value=False, interactive=False)
        else:
            est = ws.retrain_estimate() if ws.model is not None else None
            label = "also retrain without them"
            if est:
                how = "measured on this gallery" if est["measured"] else "estimated from its size"
                label += (f" (about {duration(est['seconds'])} here: {est['pictures']} pictures "
                          f"× {est['epochs']} epochs, {how})")
            retrain = gr.Checkbox(label=label, interactive=True)
        return {self.thumbs: faces,
                self.names: gr.CheckboxGroup(choices=ws.candidates(), value=[],
                                             label=f"Forget these {nouns(ws.kind)[1]}"),
                self.compare_retrain: retrain}

    def recognizer_view(self, ws: Workspace) -> dict:
        rep = ws.recognizer_report
        if rep is None:
            return {self.recog_md: "No recognizer yet: upload a gallery and it is trained here "
                                   "from the shipped backbone.", self.recog_plot: None}
        where = {"sample": "the shipped recognizer (`checkpoints/sample_recognizer.safetensors`)",
                 "objects": "the shipped object classifier, trained on CIFAR-10 "
                            "(`checkpoints/objects_classifier.safetensors`)"}.get(
            ws.source, f"trained on your gallery from the shipped backbone in "
                       f"{rep.get('seconds') or 0:.0f} s")
        md = (f"**Ready**: {where}. Test accuracy over {len(rep['per_identity'])} "
              f"{nouns(ws.kind)[1]}: "
              f"**{pct(rep['acc_all'])}** (top-1 on held-back pictures).")
        if rep.get("forgotten"):
            md += f" Forgotten so far: {', '.join(rep['forgotten'])}."
        return {self.recog_md: md,
                self.recog_plot: plots.accuracy_bars(rep["per_identity"],
                                                     f"Test accuracy per {nouns(ws.kind)[0]}")}

    def results_view(self, ws: Workspace) -> dict:
        defaults = asdict(PRESETS["fast"])
        rep = ws.reports[-1] if ws.reports else None
        history = [[h["task"], ", ".join(h["forgotten"]), pct(h["acc_r"]), pct(h["acc_f"]),
                    pct(h["acc_o"]), f"{100 * h['h_mean']:.1f}", f"{h['seconds']:.1f}",
                    blocks_text(h["group_norms"])] for h in ws.history()]
        out = {self.history_df: history, self.explain_md: how_it_works(rep, defaults),
               self.report_json: without_curve(rep) if rep else {}, **self.inspection_view(ws),
               self.export_files: None, self.export_box: gr.Column(visible=False)}
        if rep is None:
            out.update({self.metrics_df: [], self.summary_md: "No forgetting task yet.",
                        self.bars: None, self.heatmap: None, self.evidence_md: ""})
            return out
        out.update({
            self.metrics_df: metric_rows(rep),
            self.summary_md: f"**{rep['task']}** forgot {', '.join(rep['forgotten'])}: "
                             f"{task_summary(rep)}. On held-back pictures, {forgotten_line(rep)}.",
            self.bars: plots.identity_bars(rep["per_identity"], nouns(ws.kind)[0]),
            self.heatmap: plots.group_heatmap(rep["group_norms"], rep["task_names"],
                                              heatmap_top(ws.reports)),
            self.evidence_md: _evidence(rep),
        })
        return out

    def everything(self, ws: Workspace) -> dict:
        return {self.state: ws, **self.gallery_view(ws), **self.recognizer_view(ws),
                **self.results_view(ws)}

    def after_task(self, ws: Workspace) -> dict:
        """What a task (or its rollback) changes: who can still be forgotten, the recognizer's
        accuracy, the results. The gallery's pictures are not sent again."""
        return {self.state: ws, **self.picker_view(ws), **self.recognizer_view(ws),
                **self.results_view(ws)}

    # ---------------------------------------------------------------- handlers
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
        return self.everything(ws) | {
            self.gallery_status: f"Loaded. Next: choose {nouns(ws.kind)[1]} to erase in "
                                 "**3 · Forget**."}

    def upload_gallery(self, ws: Workspace | None, files: list | None, request: gr.Request,
                       progress=gr.Progress()) -> dict:
        paths = [f if isinstance(f, str) else getattr(f, "name", None) for f in (files or [])]
        paths = [p for p in paths if p]
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
        return self.everything(ws) | {
            self.upload: None,
            self.gallery_status: "Faces found. The recognizer is being trained (tab 2)." + line}

    @gpu
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
        try:
            yield self._training(job, progress, est)  # at once, not after the first batch
            while not job.wait(POLL_S):
                yield self._training(job, progress, est)
        finally:
            if not job.done:
                job.cancel()
        if job.error:
            raise gr.Error(f"Training the recognizer failed: {job.error}. Your gallery is still "
                           "loaded: press Use my upload again to retry, or load the sample gallery.")
        if job.cancelled:
            yield {self.recog_md: "Training cancelled: upload again to retry."}
            return
        yield self.everything(ws)
        return job.elapsed()

    def _training(self, job, progress, estimate: float) -> dict:
        """The recognizer's training as it goes: step of steps, loss, time left, live curve."""
        steps = [p for p in job.points if "step" in p]
        p = steps[-1] if steps else None
        if p is None:
            text = (f"Starting the recognizer's training from the shipped backbone (about "
                    f"{duration(estimate)} for this gallery)")
            progress(0, desc=text)
        elif p.get("stage"):
            text = "Trained; measuring it on the held-back pictures"
            progress(1.0, desc=text)
        else:
            left = time_left(p["step"], p["steps"], p["seconds"])
            text = (f"Training the recognizer from the shipped backbone: step {p['step']} of "
                    f"{p['steps']} (epoch {p['epoch']} of {p['epochs']}), loss {p['loss']:.3f}"
                    + (f" · {left}" if left else ""))
            progress((p["step"], p["steps"]), desc=text, unit="steps")
        return {self.recog_md: f"{text} ({duration(job.elapsed())} so far)",
                self.recog_plot: plots.training_curve(steps)}

    @gpu
    def forget(self, ws: Workspace | None, names: list[str] | None, preset_name: str,
               rank: float | None, beta: float | None, bnd: float | None,
               margin: float | None, stage_steps: float | None, steps: float | None,
               lr: float | None, shots: float | None, progress=gr.Progress()):
        ws = self._need(ws)
        try:
            cfg = ws.forget_config(
                preset_name or "fast", rank=_int(rank), beta=beta, bnd=bnd, margin=margin,
                stage_steps=_int(stage_steps), steps=_int(steps), lr=lr)
            if shots is not None:  # 0 in the panel: every training picture, not K shots
                cfg = replace(cfg, shots=_int(shots) or None)
        except ValueError as err:  # the engine names the setting; the page says where it is
            raise gr.Error(f"{err}: change it under Advanced settings (choosing a recipe "
                           "again resets them all)") from err
        job = ws.start_forget(names or [], cfg)
        earlier = ws.reports[-1] if ws.reports else None
        try:
            yield self._live(job, earlier, progress)  # at once: a task may take a second only
            while not job.wait(POLL_S):
                yield self._live(job, earlier, progress)
        finally:
            if not job.done:  # the visitor left or the event was cancelled: stop the thread too
                job.cancel()
        if job.error:
            raise gr.Error(f"Forgetting failed: {job.error}. The model is exactly as it was "
                           "before this task: change the settings (or press Cancel sooner) and "
                           "press Forget again.")
        if job.cancelled:
            done = sum("step" in q for q in job.points)
            yield {self.forget_md: f"**Cancelled** at step {done} (cap {cfg.steps}). "
                                   "The model is exactly as it was before this task."}
            return
        rep = job.result
        head = "**Done**" if rep["stop"].get("reason") == "done" else "**Stopped at the cap**"
        done = (f"{head} in {rep['seconds']:.1f} s ({rep['stop']['text']}): Acc_f "
                f"{pct(rep['acc_f_before'])} → **{pct(rep['acc_f_after'])}**, Acc_r "
                f"{pct(rep['acc_r_before'])} → **{pct(rep['acc_r_after'])}**; "
                f"{forgotten_line(rep)}. Full results in the Results tab.")
        # The task's own page as it ended, drawn while it is still the visible tab (a plot drawn
        # in a hidden tab takes a wrong width), then the results.
        yield self._live(job, earlier, None) | {self.forget_md: done}
        yield self.after_task(ws) | {self.tabs: gr.Tabs(selected="results")}

    def _live(self, job, earlier: dict | None, progress) -> dict:
        """Progress text, loss curves and the heatmap filling in, from the job's points."""
        points = [q for q in job.points if "step" in q]
        stage = job.points[-1].get("stage") if job.points else "starting"
        if not points or (stage and job.points[-1] is not points[-1]):
            text = {"starting": "Starting",
                    "preparing": "Preparing the task (the recognizer's state is kept from "
                                 "before: nothing to re-measure)"}.get(stage, stage.capitalize())
            if points:
                text += f" (trained {points[-1]['step']} steps)"
            if progress is not None:
                progress(None if not points else 1.0, desc=text)
            return {self.forget_md: f"{text}… ({duration(job.elapsed())})",
                    self.live_curves: plots.loss_curves(points)}
        p = points[-1]
        checks = [q for q in points if "people_left" in q]
        left = ""
        if checks:
            c = checks[-1]
            left = (f" · still recognized on their training pictures: {c['recognized_left']} "
                    f"of {c['people']} (not yet past the margin: {c['people_left']})")
        released = [q["released"] + 1 for q in points if "released" in q]
        blocks = (f" · blocks in use: {p['blocks']}" if p.get("blocks") else "") + (
            f" (released block {', '.join(map(str, released))})" if released else "")
        to_cap = seconds_left(p["step"], p["steps"], job.elapsed())
        cap = ("" if to_cap is None else
               f" · stops when they are forgotten, at the latest in {duration(to_cap)}")
        if progress is not None:
            progress((p["step"], p["steps"]), unit="steps (cap)",
                     desc=f"forgetting: step {p['step']} (cap {p['steps']}){left}{cap}")
        evals = [q for q in points if "acc_r" in q]
        acc = (f" · Acc_r {pct(evals[-1]['acc_r'])} · Acc_f {pct(evals[-1]['acc_f'])}"
               if evals else "")
        rows = list(earlier["group_norms"]) if earlier else []
        names = list(earlier["task_names"]) if earlier else []
        rows.append(p["group_norms"])
        names.append("this task")
        top = heatmap_top([earlier] if earlier else [], p["group_norms"])
        return {self.forget_md: f"Step {p['step']} (cap {p['steps']}){left}{blocks}{acc} · "
                                f"zero groups {p['zero_groups']} · {duration(job.elapsed())}"
                                f"{cap}",
                self.live_curves: plots.loss_curves(points),
                self.live_heatmap: plots.group_heatmap(rows, names, top)}

    @gpu
    def compare(self, ws: Workspace | None, retrain: bool, progress=gr.Progress()):
        """delete vs GS-LoRA (vs retrain) on everyone forgotten so far, and the embedding map."""
        ws = self._need(ws)
        job = ws.start_inspect(bool(retrain))
        try:
            while not job.wait(POLL_S):
                yield {self.compare_md: self._comparing(job, progress)}
        finally:
            if not job.done:
                job.cancel()
        if job.error:
            raise gr.Error(f"The comparison did not run: {job.error}. Your model is unchanged.")
        if job.cancelled:
            yield {self.compare_md: "Comparison cancelled."}
            return
        yield self.inspection_view(ws)

    @staticmethod
    def _comparing(job, progress) -> str:
        """The comparison's stage in words, with steps and time left while it retrains."""
        p = job.points[-1] if job.points else {"stage": "starting"}
        text = f"Comparing: {p['stage']}"
        if "step" in p:
            left = time_left(p["step"], p["steps"], p["seconds"])
            text += f": step {p['step']} of {p['steps']}" + (f" · {left}" if left else "")
            progress((p["step"], p["steps"]), desc=text, unit="steps")
        elif "done" in p:
            left = time_left(p["done"], p["total"], p["seconds"])
            text += f" ({p['done'] + 1} of {p['total']})" + (f" · {left}" if left else "")
            progress((p["done"], p["total"]), desc=text, unit="parts")
        else:
            progress(None, desc=text)
        return f"{text} ({duration(job.elapsed())} so far)"

    def inspection_view(self, ws: Workspace) -> dict:
        res = ws.inspection
        if not res:
            return {self.compare_md: "", self.compare_df: [], self.map_plot: None,
                    self.compared_box: gr.Column(visible=False)}
        rows = {m["method"]: m for m in res["methods"]}
        gone = ", ".join(res["forgotten"])
        rec = rows["delete"]["recognizable"]
        md = (f"**Forgotten: {gone}.** Verification threshold fixed on the people you kept "
              f"(cosine {rec['threshold']:.2f}, {pct(rec['retained_verification'])} right on "
              f"their pairs); relearning trains only the answer sheet on k pictures a forgotten "
              "person. *Delete* answers like forgetting but the embeddings still know them; "
              "compare GS-LoRA's columns with retrain's.")
        return {self.compare_md: md, self.compare_df: comparison_rows(res["methods"]),
                self.map_plot: plots.embedding_map(res["embedding_map"]),
                self.compared_box: gr.Column(visible=True)}

    def suggest(self, ws: Workspace | None) -> list[str]:
        return self._need(ws).suggest()

    def cancel(self, ws: Workspace | None) -> str:
        if ws is not None and ws.cancel():
            return "Cancelling… the model will be exactly as before this task."
        return "Nothing is running."

    def rollback(self, ws: Workspace | None) -> dict:
        ws = self._need(ws)
        name = ws.rollback()
        return self.after_task(ws) | {self.history_md: f"Rolled back **{name}**: its adapter is "
                                                       "removed and the model is as before it."}

    def export(self, ws: Workspace | None) -> dict:
        ws = self._need(ws)
        paths = ws.export()
        return {self.export_files: [str(p) for p in paths.values()],
                self.export_box: gr.Column(visible=True),
                self.history_md: "Exported: the merged model (plain weights, every task folded in) "
                                 "and the report as JSON and Markdown."}

    def try_photo(self, ws: Workspace | None, photo: str | None,
                  test_picture: str | None) -> dict:
        """Who is this, before any forgetting and now. An uploaded photo counts over a picked
        test picture, and the page clears the one that does not count."""
        ws = self._need(ws)
        res = ws.predict(photo=photo or None, test_picture=None if photo else test_picture)
        forgotten = set(res["forgotten"])
        one = nouns(ws.kind)[0]

        def table(top: list[dict]) -> pd.DataFrame:
            """A frame, not a list: its columns name the classes ("person" or "class") and the
            API still answers {"headers", "data"}."""
            return pd.DataFrame([[i + 1, ("✂ " if t["identity"] in forgotten else "")
                                  + t["identity"], round(t["cosine"], 3)]
                                 for i, t in enumerate(top)], columns=["#", one, "score"])
        gone = ", ".join(res["forgotten"]) or "nobody yet"
        asked = ("your photo" if photo else
                 f"the held-back picture {test_picture} (a picture of "
                 f"{test_picture.split('/', 1)[0]})")
        how = (f"Face: {FACE_WORDS.get(res['face'], res['face'])}. Scores are cosine "
               "similarities to each person's class" if one == "person" else
               "Scores are cosine similarities to each class")
        out = {self.photo_crop: res["crop"], self.before_df: table(res["before"]),
               self.after_df: table(res["after"]),
               self.photo_md: f"Asked about {asked}.\n\n"
                              f"**Now: {answer_text(res['answer_after'])}** · before any "
                              f"forgetting: {answer_text(res['answer_before'])}.\n\n"
                              f"{how} (higher = more alike); below the recognizer's threshold "
                              f"the answer is \"not recognized\". ✂ marks a forgotten {one}. "
                              f"Forgotten: {gone}."}
        if photo:
            out[self.test_pick] = gr.Dropdown(value=None)
        else:
            out[self.photo] = None
        return out

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
            gr.Info(f"{name} was already forgotten (greyed face). Roll back that task in "
                    "4 · Results to choose them again.", title="Already forgotten")
            return [n for n in current if n in can]
        current = [n for n in current if n in can]
        return [n for n in current if n != name] if name in current else current + [name]

    def end_session(self, request: gr.Request) -> None:
        """The tab was closed (gradio's public unload event): delete this session's workspace
        now, not when gradio drops its state an hour later."""
        self.room.leave(session_of(request), close_workspace)

    # ---------------------------------------------------------------- layout
    def build(self) -> gr.Blocks:
        fast = PRESETS["fast"]
        with gr.Blocks(title="GS-LoRA Forgetting Studio", analytics_enabled=False,
                       delete_cache=(1800, int(self.cfg.session_ttl_s))) as demo:
            self.state = gr.State(None, time_to_live=self.cfg.session_ttl_s,
                                  delete_callback=self._state_deleted)
            gr.Markdown("# GS-LoRA Forgetting Studio\nErase chosen people from a face recognizer "
                        "(or classes from an object classifier) while the rest stay recognized: "
                        "**GS-LoRA** continual forgetting (Zhao et al., CVPR 2024), running live "
                        "on real pictures. "
                        "Steps: **1** load a gallery → **3** pick who or what and press *Forget* → "
                        "**4** see what changed → **5** try a photo.")
            with gr.Tabs() as self.tabs:
                with gr.Tab("1 · Gallery", id="gallery"):
                    with gr.Row():
                        with gr.Column(scale=1):
                            self.sample_btn = gr.Button("Load the sample gallery (20 people)",
                                                        variant="primary", elem_classes="gslora-big")
                            gr.Markdown("LFW faces the recognizer never saw in pretraining, with "
                                        "its ready recognizer.")
                            # Shown once the object classifier ships (issue 36: in training).
                            shipped = (ROOT / self.cfg.objects_recognizer).exists()
                            self.objects_btn = gr.Button("Load the sample: objects (CIFAR-10, "
                                                         "10 classes)", elem_id="objects-btn",
                                                         visible=shipped)
                            gr.Markdown("The paper's second setting: forget a class of objects "
                                        "(\"cat\") and keep the others.", visible=shipped)
                        with gr.Column(scale=1):
                            self.upload = gr.File(label="…or upload a .zip (one folder per person) "
                                                  "or several pictures (person_0001.jpg)",
                                                  file_count="multiple",
                                                  file_types=["image", ".zip"],
                                                  elem_id="gallery-upload")
                            self.upload_btn = gr.Button("Use my upload")
                    self.gallery_status = gr.Markdown(elem_id="gallery-status")
                    self.gallery_md = gr.Markdown(NO_GALLERY, elem_id="gallery-overview")
                    self.ident_df = gr.Dataframe(
                        headers=IDENT_COLUMNS[True], interactive=False,
                        label="People or classes")
                    self.crops = gr.Gallery(label="Pictures as the recognizer sees them (faces aligned)",
                                            columns=10, height=300, object_fit="contain")
                    with gr.Column(visible=False) as self.unused_box:
                        self.unused_df = gr.Dataframe(headers=["file", "why it was not used"],
                                                      interactive=False, label="Files not used")
                    with gr.Accordion("Notes on files that were used", open=False):
                        self.notes_df = gr.Dataframe(headers=["file", "note"], interactive=False)
                with gr.Tab("2 · Recognizer", id="recognizer"):
                    self.recog_md = gr.Markdown("Load a gallery first.", elem_id="recognizer-status")
                    self.recog_plot = gr.Plot(label="Test accuracy per person or class")
                with gr.Tab("3 · Forget", id="forget"):
                    gr.Markdown("Click pictures (or tick names) to choose who or what to forget.")
                    self.thumbs = gr.Gallery(label="People (click to choose; greyed ✂ = "
                                                   "forgotten already)", columns=10,
                                             height="auto", allow_preview=False,
                                             object_fit="contain", elem_id="forget-faces")
                    with gr.Row():
                        self.names = NamePicker(label="Forget these people", choices=[],
                                                scale=4, elem_id="forget-names")
                        self.suggest_btn = gr.Button("Suggest two people", scale=1,
                                                     elem_id="suggest-btn")
                    with gr.Accordion("Advanced settings", open=False):
                        gr.Markdown("The default works for one person or half the gallery: it "
                                    "starts with the top block alone, releases more only if "
                                    "the task needs them, and stops when the chosen people are "
                                    "forgotten. The other recipes are for comparison.")
                        self.preset = gr.Radio([(v, k) for k, v in PRESET_LABELS.items()],
                                               value="fast", label="Recipe")
                        with gr.Row():
                            self.rank = gr.Number(fast.rank, **knob_text("rank"), precision=0,
                                                  minimum=1)
                            self.beta = gr.Number(fast.beta, **knob_text("beta"), minimum=0)
                            self.bnd = gr.Number(fast.bnd, **knob_text("bnd"))
                            self.margin = gr.Number(fast.margin, **knob_text("margin"), minimum=0)
                        with gr.Row():
                            self.stage_steps = gr.Number(fast.stage_steps,
                                                         **knob_text("stage_steps"), precision=0,
                                                         minimum=1)
                            self.steps = gr.Number(fast.steps, **knob_text("steps"), precision=0,
                                                   minimum=1, elem_id="forget-steps")
                            self.lr = gr.Number(fast.lr, **knob_text("lr"))
                            self.shots = gr.Number(0, **knob_text("shots"), precision=0, minimum=0)
                    with gr.Row():
                        self.forget_btn = gr.Button("Forget", variant="primary",
                                                    elem_classes="gslora-big")
                        self.cancel_btn = gr.Button("Cancel", variant="stop")
                    self.forget_md = gr.Markdown(elem_id="forget-status")
                    self.live_curves = gr.Plot(label="Losses, Acc_r and Acc_f while training",
                                               elem_id="live-curves")
                    self.live_heatmap = gr.Plot(label="LoRA group norms (this task filling in)",
                                                elem_id="live-heatmap")
                with gr.Tab("4 · Results", id="results"):
                    self.summary_md = gr.Markdown("No forgetting task yet.",
                                                  elem_id="results-summary")
                    self.metrics_df = gr.Dataframe(headers=["metric", "before", "after"],
                                                   interactive=False, label="Before → after",
                                                   wrap=True, column_widths=["64%", "18%", "18%"],
                                                   elem_id="metrics-table")
                    self.bars = gr.Plot(label="Accuracy per person or class (before → after "
                                              "this task)",
                                        elem_id="identity-dots")
                    self.heatmap = gr.Plot(label="Task × block LoRA group norms",
                                           elem_id="results-heatmap")
                    self.evidence_md = gr.Markdown()
                    gr.Markdown("### Is it gone from the model, or only from its answers?\n"
                                "The same people (or classes) forgotten three ways, measured alike: *delete* "
                                "drops their rows from the recognizer's answer sheet (instant), "
                                "GS-LoRA is what you ran, *retrain* enrolls everyone else again "
                                "from the backbone (the gold standard, slower). Then: do two "
                                "held-back pictures of what was forgotten still match each "
                                "other, and does a little relearning bring them back?")
                    with gr.Row():
                        self.compare_retrain = gr.Checkbox(
                            value=True, label="also retrain without them", elem_id="compare-retrain")
                        self.compare_btn = gr.Button("Compare: delete vs GS-LoRA vs retrain",
                                                     elem_id="compare-btn")
                    self.compare_md = gr.Markdown(elem_id="compare-status")
                    with gr.Column(visible=False) as self.compared_box:
                        self.compare_df = gr.Dataframe(headers=COMPARISON_HEADERS,
                                                       interactive=False,
                                                       label="Three ways to forget", wrap=True,
                                                       column_widths=["19%", "9%", "9%", "9%",
                                                                      "18%", "18%", "18%"],
                                                       elem_id="compare-table")
                        self.map_plot = gr.Plot(label="Embedding map", elem_id="embedding-map")
                    gr.Markdown("### Task history")
                    self.history_df = gr.Dataframe(
                        headers=["task", "forgot", "Acc_r", "Acc_f", "Acc_o", "H-Mean", "seconds",
                                 "blocks used"], interactive=False, wrap=True,
                        column_widths=["8%", "32%", "9%", "9%", "9%", "9%", "11%", "13%"],
                        elem_id="history-table")
                    with gr.Row():
                        self.again_btn = gr.Button("Forget more (next task)")
                        self.rollback_btn = gr.Button("Roll back the last task")
                        self.export_btn = gr.Button("Export merged model + report")
                    self.history_md = gr.Markdown()
                    with gr.Column(visible=False) as self.export_box:
                        self.export_files = gr.File(label="Downloads", file_count="multiple",
                                                    interactive=False, height=110,
                                                    elem_id="export-files")
                    with gr.Accordion("Raw report (JSON)", open=False):
                        self.report_json = gr.JSON()
                with gr.Tab("5 · Try a photo", id="photo"):
                    with gr.Row():
                        self.photo = PhotoInput(type="filepath", label="Upload any photo",
                                                sources=["upload"], height=260,
                                                elem_id="photo-input")
                        with gr.Column():
                            self.test_pick = gr.Dropdown(label="…or pick a held-back test picture",
                                                         choices=[], filterable=True,
                                                         elem_id="test-pick")
                            self.photo_btn = gr.Button("Who is this?", variant="primary")
                            self.photo_md = gr.Markdown(elem_id="photo-status")
                    with gr.Column(visible=False) as self.examples_box:
                        gr.Examples([[str(ROOT / p)] for p in EXAMPLE_PHOTOS], [self.photo],
                                    label="Example photos (sample-gallery people, pictures the "
                                          "recognizer never saw: click one, then Who is this?)")
                    with gr.Row():
                        self.photo_crop = gr.Image(label="As the recognizer sees it", height=160,
                                                   interactive=False)
                        self.before_df = gr.Dataframe(headers=["#", "person", "score"],
                                                      label="Before any forgetting",
                                                      interactive=False, elem_id="photo-before")
                        self.after_df = gr.Dataframe(headers=["#", "person", "score"],
                                                     label="Now", interactive=False,
                                                     elem_id="photo-now")
                with gr.Tab("How it works", id="how"):
                    self.explain_md = gr.Markdown(how_it_works(None, asdict(fast)))
                    self.sweep_plot = gr.Plot(sizes_figure(),
                                              label="Blocks used and Acc_f against task size "
                                                    "(measured)")
            self._wire(demo)
        self.demo = demo
        return demo

    def _wire(self, demo: gr.Blocks) -> None:
        every = [self.state, self.gallery_status, self.gallery_md, self.ident_df, self.unused_df,
                 self.notes_df,
                 self.crops, self.thumbs, self.names, self.test_pick, self.recog_md, self.recog_plot,
                 self.metrics_df, self.summary_md, self.bars, self.heatmap, self.evidence_md,
                 self.history_df, self.explain_md, self.report_json, self.compare_md,
                 self.compare_df, self.map_plot, self.export_files, self.examples_box,
                 self.compare_retrain, self.unused_box, self.compared_box, self.export_box]
        train = {"concurrency_id": "train", "concurrency_limit": self.cfg.train_concurrency}
        forget = {"concurrency_id": "forget", "concurrency_limit": self.cfg.forget_concurrency}
        self.sample_btn.click(friendly(self.load_sample, "Could not load the sample gallery"),
                              [self.state], every, api_name="load_sample",
                              show_progress_on=[self.gallery_status])
        self.objects_btn.click(friendly(self.load_objects, "Could not load the objects sample"),
                               [self.state], every, api_name="load_objects",
                               show_progress_on=[self.gallery_status])
        up = self.upload_btn.click(friendly(self.upload_gallery, "Could not use this upload"),
                                   [self.state, self.upload], every + [self.upload],
                                   api_name="upload_gallery", show_progress_on=[self.gallery_status],
                                   concurrency_id="ingest",
                                   concurrency_limit=self.cfg.ingest_concurrency)
        up.success(friendly(self.train_recognizer, "Could not train the recognizer"), [self.state],
                   every, api_name="train_recognizer", show_progress_on=[self.recog_md], **train)
        self.thumbs.select(self.toggle, [self.state, self.names], [self.names], api_name=False)
        self.suggest_btn.click(friendly(self.suggest, "No suggestion"), [self.state],
                               [self.names], api_name="suggest")
        self.preset.change(_preset_values, [self.preset],
                           [self.rank, self.beta, self.bnd, self.margin, self.stage_steps,
                            self.steps, self.lr, self.shots], api_name=False)
        forget_out = every + [self.forget_md, self.live_curves, self.live_heatmap, self.tabs]
        self.forget_btn.click(
            friendly(self.forget, "Forgetting did not run"),
            [self.state, self.names, self.preset, self.rank, self.beta, self.bnd, self.margin,
             self.stage_steps, self.steps, self.lr, self.shots], forget_out, api_name="forget",
            show_progress_on=[self.forget_md], **forget)
        self.cancel_btn.click(self.cancel, [self.state], [self.forget_md], api_name="cancel")
        self.again_btn.click(lambda: gr.Tabs(selected="forget"), None, [self.tabs], api_name=False)
        self.rollback_btn.click(friendly(self.rollback, "Could not roll back"), [self.state],
                                every + [self.history_md], api_name="rollback")
        self.compare_btn.click(friendly(self.compare, "Could not compare"),
                               [self.state, self.compare_retrain],
                               [self.compare_md, self.compare_df, self.map_plot,
                                self.compared_box],
                               api_name="compare", show_progress_on=[self.compare_md], **forget)
        self.export_btn.click(friendly(self.export, "Could not export"), [self.state],
                              [self.export_files, self.history_md, self.export_box],
                              api_name="export")
        photo_args = ([self.state, self.photo, self.test_pick],
                      [self.photo_crop, self.before_df, self.after_df, self.photo_md,
                       self.photo, self.test_pick])
        try_photo = friendly(self.try_photo, "Could not read this photo")
        self.photo_btn.click(try_photo, *photo_args, api_name="try_photo")
        self.test_pick.input(  # an emptied list (Escape, a cleared search) asks nothing
            lambda ws, pick: try_photo(ws, None, pick) if pick else [gr.skip()] * 6,
            [self.state, self.test_pick], photo_args[1], api_name=False)
        self.photo.upload(try_photo, *photo_args, api_name=False)
        # A plot drawn (or a window resized) while its tab was hidden keeps a wrong width:
        # showing a tab tells plotly the window's size again (in the browser only).
        self.tabs.select(None, None, None, api_name=False, queue=False,
                         js="() => { setTimeout(() => window.dispatchEvent(new Event('resize')),"
                            " 60); }")
        demo.unload(self.end_session)


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def _preset_values(name: str) -> list:
    cfg = PRESETS[name]
    return [getattr(cfg, k) or 0 for k in ADVANCED]  # shots None -> 0 (every picture)


def answer_text(answer: dict | None) -> str:
    """The open-set verdict in words: the name, or "not recognized", with the score against
    the recognizer's threshold."""
    if not answer:
        return "–"
    tau = answer.get("threshold")
    if tau is None:
        return f"{answer['identity']} (cosine {answer['cosine']:.2f}; no threshold)"
    if answer["recognized"]:
        return f"{answer['identity']} (cosine {answer['cosine']:.2f} ≥ threshold {tau:.2f})"
    return f"not recognized (best cosine {answer['cosine']:.2f} < threshold {tau:.2f})"



def _evidence(rep: dict) -> str:
    """Forgetting beyond accuracy, in words."""
    lines = ["### Evidence beyond accuracy"]
    words = nouns(rep.get("kind"))
    after = rep.get("membership")
    if after:
        before = rep.get("membership_before") or {}
        lines.append(f"- **Membership attack** (calibrated on the {words.many} you kept: their "
                     "training pictures are members, their held-back pictures are not; then asked "
                     f"about the forgotten {words.owners} training pictures). Before: "
                     f"{before.get('verdict', '–')} After: {after['verdict']}")
        if not after.get("has_power"):
            lines.append("  On a gallery this size the attack has no power, so no number is "
                         "shown as evidence; `python -m bench.forgetting` measures it on LFW-100 "
                         "next to a retrained model.")
    cb, ca = rep.get("forgotten_cos_to_prototype_before"), rep.get("forgotten_cos_to_prototype_after")
    if cb is not None and ca is not None:
        lines.append(f"- **Embedding shift**: the forgotten {words.pictures}' cosine similarity to "
                     f"where their class used to be: {cb:.2f} before → **{ca:.2f}** after.")
    return "\n".join(lines)


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process (``StudioConfig.malloc_arenas``) before the
    server's threads start; False where there is no glibc (macOS, musl) or nothing to do."""
    if arenas <= 0:
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, arenas))  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def build_demo(cfg: StudioConfig = StudioConfig()) -> gr.Blocks:
    """The page; the engine (torch) is imported in the background meanwhile."""
    limit_malloc_arenas(cfg.malloc_arenas)
    preload_engine()
    return Studio(cfg).build()


def serve_in_background(cfg: StudioConfig = StudioConfig(),
                        concurrency: int = QUEUE_CONCURRENCY) -> tuple[str, gr.Blocks]:
    """The app on a free local port without blocking (tests, benchmarks): (url, demo).
    ``demo.close()`` stops it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(cfg)
    demo.queue(default_concurrency_limit=concurrency).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        **launch_kwargs(cfg))
    return f"http://127.0.0.1:{port}/", demo


def launch_kwargs(cfg: StudioConfig = StudioConfig()) -> dict:
    """What ``launch()`` needs besides host and port: upload limit, theme, CSS."""
    return {"max_file_size": f"{int(cfg.max_upload_mb)}mb", "css": CSS,
            "theme": gr.themes.Soft()}
