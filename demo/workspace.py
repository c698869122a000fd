"""One visitor's work: a gallery, its recognizer, the forgetting history and one background job.

The app keeps one ``Workspace`` per browser session (never in a module-level variable), so two
visitors never share galleries, models or jobs. Everything a workspace writes lives in its own
directory, removed by ``close()``; ``sweep()`` removes directories left idle past a time limit.
Nothing here knows about gradio: the same calls work from a script or a test.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image, ImageOps

from gslora_core.calls import CompareCall, EnrollCall, ForgetCall, apply_task, result_of
from gslora_core.config import DataConfig, ForgetConfig, StudioConfig, project_path
from gslora_core.data import CropCache, Gallery, load_gallery, load_gallery_for
from gslora_core.evaluation import Snapshot, evaluate, kept_snapshot, snapshot
from gslora_core.forgetting import plan_task, rollback
from gslora_core.inference import top_k, top_k_crop, verdict
from gslora_core.model import Recognizer, load_recognizer, merged_copy, save_recognizer
from gslora_core.report import to_markdown
from gslora_core.states import states_path
from gslora_core.threads import free_cores, machine_load, torch_threads

from . import gpu
from .jobs import Job, running
from .sessions import sessions_root, sweep, upload_faces_root


def to_image(x: torch.Tensor) -> Image.Image:
    """uint8 (3, S, S) -> PIL, for thumbnails."""
    return Image.fromarray(x.permute(1, 2, 0).numpy())


# Retraining is re-enrolling from the face backbone; an object classifier has no such backbone
# here, and training it again is scripts/train_objects.py's 40 epochs (2.9 min each, 2 cores).
OBJECTS_RETRAIN = ("retraining the object classifier without a class means training it again on "
                   "CIFAR-10's 45,000 pictures (about 2 h on 2 CPU cores: scripts/train_objects.py);"
                   " compare deletion and GS-LoRA without it")

# The bundled samples: (gallery folder, model) as StudioConfig field names.
SAMPLES = {"faces": ("sample_gallery", "sample_recognizer"),
           "objects": ("objects_gallery", "objects_recognizer")}


class Workspace:
    """A gallery, its recognizer (and the recognizer as it was before any forgetting), the task
    reports, and at most one running job."""

    def __init__(self, cfg: StudioConfig = StudioConfig()):
        self.cfg = cfg
        root = sessions_root(cfg)
        root.mkdir(parents=True, exist_ok=True)
        sweep(root, cfg.session_ttl_s)
        CropCache(upload_faces_root(cfg)).sweep(cfg.session_ttl_s)
        self.dir = root / uuid.uuid4().hex  # never derived from anything a visitor sends
        self.dir.mkdir()
        self.source: str | None = None  # "sample", "objects" or "upload"
        self.gallery: Gallery | None = None
        self.model: Recognizer | None = None
        self.original: Recognizer | None = None  # before any forgetting: "before" in try-a-photo
        self._swap = threading.Lock()  # gallery, model and original change together (``_set``)
        self.enroll_seconds: float | None = None  # the uploaded gallery's training, timed
        self._report_cache: tuple[int, dict] | None = None  # (model revision, evaluation)
        # The recognizer's current snapshot on the gallery: the next task's "before" (a task
        # then never measures the gallery twice); replaced by each task's "after".
        self.state: Snapshot | None = None
        # Each finished task's report, by task name; which of them count is the recognizer's
        # own task list (``reports``), so a rollback or a cancel cannot leave one behind.
        self._measured: dict[str, dict] = {}
        # The snapshot each task started from (its "before"), by task name: rolling the task
        # back makes it current again, with nothing to measure.
        self._before: dict[str, Snapshot] = {}
        self.inspection: dict | None = None  # the last delete / GS-LoRA / retrain comparison
        self.job: Job | None = None
        # Seconds per training picture per epoch, measured by this workspace's last training
        # (its enrolment or a retrain); None until then (``retrain_estimate`` then uses the
        # configured rate, measured on the project's 2-core CPU).
        self.train_rate: float | None = None
        # Seconds per optimizer step of this workspace's last forgetting task (where its calls
        # run); None until then (the configured CPU rate).
        self.step_rate: float | None = None
        self._pending: tuple | None = None  # an uploaded gallery waiting for its recognizer
        self.closed = False

    # ----- lifecycle ---------------------------------------------------------------------------
    def touch(self) -> None:
        """Mark the session as in use (the idle sweep goes by the directory's time)."""
        if self.dir.is_dir():
            os.utime(self.dir)

    def close(self) -> None:
        """Stop any job and delete every file of this session."""
        self.closed = True
        if self.job and not self.job.done:
            self.job.cancel()
            self.job.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.gallery = self.model = self.original = None
        self._measured, self._before = {}, {}

    def busy(self) -> bool:
        return self.job is not None and not self.job.done

    def _idle(self, what: str) -> None:
        if self.busy():
            raise ValueError(f"a {self.job.kind} job is running: wait for it or cancel it before "
                             f"you {what}")

    def _ready(self) -> Recognizer:
        if self.model is None or self.gallery is None:
            raise ValueError("load a gallery first (the sample gallery is one click)")
        return self.model

    # ----- gallery and recognizer --------------------------------------------------------------
    def load_sample(self, on_progress: Callable[[dict], None] | None = None,
                    kind: str = "faces") -> dict:
        """A bundled gallery with its shipped model: ready at once, nothing to train.
        ``kind``: "faces" (20 LFW people and their recognizer) or "objects" (10 CIFAR-10
        classes and the object classifier). ``on_progress`` hears the reading, aligning and
        measuring counts."""
        self._idle("load a gallery")
        self.touch()
        if kind not in SAMPLES:
            raise ValueError(f"unknown sample {kind!r} (choose {' or '.join(SAMPLES)})")
        folder, weights = (getattr(self.cfg, name) for name in SAMPLES[kind])
        if not project_path(weights).exists():
            raise ValueError(f"the {kind} sample's model ({weights}) is not in this copy of the "
                             "project; its README says how it is made")
        with torch_threads(self._threads()):
            model = load_recognizer(project_path(weights))
            gallery = load_gallery_for(model, project_path(folder), ingest=self.cfg.ingest,
                                       on_progress=on_progress)
            # The states shipped beside the model (``evaluate --keep-states``) spare the
            # measuring pass; they are used only if they fit these weights and these pictures.
            kept = kept_snapshot(states_path(project_path(weights)), model, gallery)
            self._set(gallery, model, "sample" if kind == "faces" else "objects", on_progress,
                      kept)
        self._pending = None
        return self.overview()

    def load_upload(self, paths: Sequence[str | Path],
                    on_progress: Callable[[dict], None] | None = None) -> dict:
        """An uploaded zip or pictures. Its recognizer is then trained by ``start_enroll``.
        ``on_progress`` hears the reading and aligning counts (``data.load_gallery``).

        A refused upload raises ValueError and leaves the current gallery and model untouched."""
        self._idle("load a gallery")
        self.touch()
        paths = [Path(p) for p in paths if p]
        if not paths:
            raise ValueError("choose a .zip (one folder per person) or several pictures")
        total = sum(p.stat().st_size for p in paths)
        if total > self.cfg.max_upload_mb * 1024 * 1024:
            raise ValueError(f"upload is {total / 2**20:.0f} MB; the limit is "
                             f"{self.cfg.max_upload_mb:.0f} MB")
        one_zip = len(paths) == 1 and paths[0].suffix.lower() == ".zip"
        source: Path | list[Path] = paths[0] if one_zip else paths
        with torch_threads(self._threads()):
            backbone = load_recognizer(project_path(self.cfg.backbone))
            dcfg = DataConfig(preprocess=backbone.data_config.preprocess)
            # Uploaded faces are aligned once for every session (by content hash), in a cache
            # of their own that expires like a session, never in the user-wide crop cache.
            gallery = load_gallery(source, backbone.cfg.img_size, dcfg, ingest=self.cfg.ingest,
                                   cache_dir=upload_faces_root(self.cfg),
                                   on_progress=on_progress, template=backbone.cfg.face_template)
        if len(gallery.names) < 2:
            found = ", ".join(gallery.names) or "none"
            why = "; ".join(f"{a}: {b}" for a, b in (gallery.excluded + gallery.rejected)[:5])
            raise ValueError(f"a recognizer needs at least 2 people with {dcfg.min_images}+ "
                             f"usable pictures each; found {len(gallery.names)} ({found})"
                             + (f". Not used: {why}" if why else ""))
        self._pending = (gallery, backbone, dcfg)
        self._set(gallery, None, "upload")
        return self.overview()

    def start_enroll(self) -> Job:
        """Train the uploaded gallery's recognizer from the shipped backbone, in the background
        (on the GPU when there is one: ``demo.gpu``)."""
        self._idle("train")
        pending = self._pending
        if pending is None or self.gallery is not pending[0]:
            raise ValueError("upload a gallery first; the sample gallery's recognizer is ready")
        gallery, backbone, dcfg = pending
        estimate = self.retrain_estimate()
        seconds = self._reserve(estimate["seconds"] / self._speedup("train_rate")
                                + self._measure_seconds(gallery), "training your recognizer",
                                "upload fewer pictures or fewer people")
        threads = self._threads()
        call = EnrollCall(backbone, gallery, dcfg, self.cfg.enroll, seconds, threads)

        def run(progress, cancelled) -> dict:
            done = result_of(gpu.run(call), progress, cancelled)
            if self.gallery is gallery and not self.closed:
                self._set(gallery, done.model, "upload", kept=done.state)
                self.enroll_seconds = done.report["seconds"]
                self.train_rate = self._rate(done.seconds, len(gallery.train_y))
                self._pending = None
            return done.report

        self.job = Job("enroll", run, threads).start()
        return self.job

    def _set(self, gallery: Gallery, model: Recognizer | None, source: str,
             on_progress: Callable[[dict], None] | None = None,
             kept: Snapshot | None = None) -> None:
        """Make ``gallery`` and ``model`` the workspace's, measured once (``on_progress``
        hears the pictures measured) unless ``kept`` is the model's snapshot on it already."""
        # Swapped together under ``_swap``: a photo asked about meanwhile (another event of the
        # page can run beside a load) never meets the new model with the old gallery or "before".
        original = copy.deepcopy(model) if model is not None else None
        with self._swap:
            self.gallery, self.model, self.original = gallery, model, original
        self.source = source
        self._measured, self._before = {}, {}
        self.inspection = None
        if kept is None and model is not None:
            kept = snapshot(model, gallery, on_progress=on_progress)
        self.state = kept
        self.enroll_seconds = None
        self._report_cache = None

    @property
    def reports(self) -> list[dict]:
        """The reports of the recognizer's tasks, in task order: derived on read from the
        model's own task list (the one owner of task state), so nothing can go stale."""
        if self.model is None:
            return []
        return [self._measured[t.name] for t in self.model.tasks if t.name in self._measured]

    @property
    def recognizer_report(self) -> dict | None:
        """The recognizer on the gallery as it is now (after every task and rollback), derived
        on read from the kept snapshot; None before there is a model. While a job trains the
        model, the last reading (the model is mid-change)."""
        model = self.model
        if model is None or self.gallery is None:
            return None
        cached = self._report_cache
        if cached is not None and (cached[0] == model.revision or self.busy()):
            return cached[1]
        report = dict(self.evaluate_now(), seconds=self.enroll_seconds)
        self._report_cache = (model.revision, report)
        return report

    def overview(self) -> dict:
        """Per identity (pictures, faces, train/test) and every file that was not used."""
        g = self.gallery
        if g is None:
            return {"identities": [], "rejected": [], "excluded": [], "notes": [], "source": None}
        return {"source": self.source, "identities": g.summary(),
                "rejected": [list(r) for r in g.rejected], "excluded": [list(r) for r in g.excluded],
                "notes": [list(r) for r in g.notes], "ready": self.model is not None}

    def thumbnails(self) -> list[tuple[Image.Image, str]]:
        """One aligned crop per identity, to choose whom to forget; people already forgotten
        are greyed and captioned "✂ … (forgotten)" (they cannot be chosen again)."""
        gone = set(self.model.forgotten()) if self.model is not None else set()
        out = []
        for img, name in self.crops(per_identity=1, limit=len(self._gallery().names)):
            if name in gone:
                img = ImageOps.grayscale(img).point(lambda v: 160 + v * 95 // 255).convert("RGB")
                name = f"✂ {name} (forgotten)"
            out.append((img, name))
        return out

    def crops(self, per_identity: int = 4, limit: int = 240) -> list[tuple[Image.Image, str]]:
        """Aligned crops as the recognizer sees them (a few per identity)."""
        g = self._gallery()
        out = []
        for i, name in enumerate(g.names):
            for j in torch.nonzero(g.train_y == i).flatten()[:per_identity].tolist():
                out.append((to_image(g.train_x[j]), name))
        return out[:limit]

    def _gallery(self) -> Gallery:
        if self.gallery is None:
            raise ValueError("load a gallery first (the sample gallery is one click)")
        return self.gallery

    def _rate(self, seconds: float, pictures: int) -> float | None:
        """Seconds per training picture per epoch of one training with the workspace's
        enrolment recipe, as a visitor waits for it (its whole wall time, measuring included)."""
        epochs = self.cfg.enroll.epochs
        return seconds / (pictures * epochs) if pictures and epochs and seconds else None

    def retrain_estimate(self) -> dict:
        """How long retraining without the people forgotten so far (or, before any task,
        without none) would take on this gallery: its retained training pictures × the
        enrolment's epochs × a rate measured in this workspace when it has trained once, else
        the configured rate. {"seconds", "pictures", "epochs", "measured"}."""
        g = self._gallery()
        gone = set(self.model.forgotten()) if self.model is not None else set()
        keep = [i for i, n in enumerate(g.names) if n not in gone]
        pictures = int(torch.isin(g.train_y, torch.tensor(keep)).sum()) if keep else 0
        epochs = self.cfg.enroll.epochs
        rate = self.train_rate or self.cfg.train_seconds_per_picture
        return {"seconds": pictures * epochs * rate, "pictures": pictures, "epochs": epochs,
                "measured": self.train_rate is not None}

    @property
    def kind(self) -> str:
        """What the gallery's classes are (``Recognizer.kind``); "faces" before a model."""
        return self.model.kind if self.model is not None else "faces"

    def candidates(self) -> list[str]:
        """Identities that can still be forgotten."""
        if self.model is None:
            return []
        gone = set(self.model.forgotten())
        return [n for n in self.model.class_names if n not in gone]

    def suggest(self, count: int = 2) -> list[str]:
        """People to forget first: the ones the recognizer knows best (highest test accuracy,
        then name), so the drop to zero is plain to see."""
        if self.model is None:
            raise ValueError("load a gallery first (the sample gallery is one click)")
        can = set(self.candidates())
        acc = {r["identity"]: r["accuracy"] or 0.0
               for r in self.evaluate_now()["per_identity"]}
        return sorted(can, key=lambda n: (-acc.get(n, 0.0), n))[:count]

    # ----- forgetting --------------------------------------------------------------------------
    def start_forget(self, names: Sequence[str], cfg: ForgetConfig) -> Job:
        """Check the request now (readable errors at once), then forget in the background (on
        the GPU when there is one: ``demo.gpu``). The task runs on a copy of the recognizer;
        only a finished task's adapters are added here, so a failed or cancelled one changes
        nothing."""
        self._idle("start another task")
        model, gallery = self._ready(), self._gallery()
        plan = plan_task(model, gallery, list(names))  # refused here, in words, or planned once
        before = self.state if self.state is not None and self.state.fits(model, gallery) else None
        measure = 0.0 if before is not None else self._measure_seconds(gallery)
        step = self.step_rate or self.cfg.forget_seconds_per_step / self._speedup("step_rate")
        seconds = self._reserve(measure + cfg.steps * step, "this task", "forget fewer people")
        if gpu.ZERO_GPU:  # the task stops itself (and says so) before its reservation ends
            budget = seconds - self.cfg.gpu_start_s - measure
            cfg = replace(cfg, max_seconds=min(cfg.max_seconds or budget, budget))
        threads = self._threads()
        call = ForgetCall(model, gallery, plan, cfg, before, seconds, threads)
        self.touch()

        def run(progress, cancelled) -> dict:
            delta = result_of(gpu.run(call), progress, cancelled)
            if self.model is model and not self.closed:
                self.state = apply_task(model, delta)
                self._measured[delta.report["task"]] = delta.report
                if before is not None:
                    self._before[delta.report["task"]] = before
                self.inspection = None  # about the people forgotten before this task
                stop = delta.report["stop"]
                if stop.get("steps"):
                    self.step_rate = stop["seconds"] / stop["steps"]
            return delta.report

        self.job = Job("forget", run, threads).start()
        return self.job

    def start_inspect(self, retrain: bool = False) -> Job:
        """Is the forgotten person gone from the model? Deletion, GS-LoRA (the tasks run so far)
        and, if asked, retraining without them, measured alike (``probes.compare``), plus the
        embedding map; in the background (on the GPU when there is one). The result is kept as
        ``inspection``."""
        self._idle("compare")
        model, gallery = self._ready(), self._gallery()
        if retrain and self.kind == "objects":
            raise ValueError(OBJECTS_RETRAIN)
        if not model.forgotten():
            raise ValueError("forget someone first: the comparison is about the people a task "
                             "forgot")
        backbone = load_recognizer(project_path(self.cfg.backbone)) if retrain else None
        train = self.retrain_estimate()["seconds"] / self._speedup("train_rate") if retrain else 0
        seconds = self._reserve(train + 4 * self._measure_seconds(gallery), "the comparison",
                                "compare without retraining")
        threads = self._threads()
        call = CompareCall(model, self.original, gallery,
                           sum(r["seconds"] for r in self.reports) or None, backbone,
                           self.cfg.enroll, seconds, threads)
        self.touch()

        def run(progress, cancelled) -> dict:
            done = result_of(gpu.run(call), progress, cancelled)
            if done.retrain_seconds:
                self.train_rate = self._rate(done.retrain_seconds, done.retrain_pictures)
            if self.model is model and not self.closed:
                self.inspection = done.inspection
            return done.inspection

        self.job = Job("compare", run, threads).start()
        return self.job

    # ----- what a call may use ----------------------------------------------------------------
    @staticmethod
    def _threads() -> int:
        """Torch threads for a new job: the cores that neither this app's running jobs nor
        other processes (the machine's load, less this app's own threads) are using, at least
        one (``gslora_core.threads``; bench/results/threads.json)."""
        jobs, threads = running()
        return free_cores(busy=max(jobs, machine_load() - threads))

    def _speedup(self, rate: str) -> float:
        """How much faster than the configured CPU rates calls run here: 1 once this workspace
        has timed its own ``rate`` (where its calls run), or off ZeroGPU; else the assumed
        ``gpu_speedup``."""
        return self.cfg.gpu_speedup if gpu.ZERO_GPU and getattr(self, rate) is None else 1.0

    def _measure_seconds(self, gallery: Gallery) -> float:
        """One measuring pass over the gallery's pictures (both views)."""
        pictures = len(gallery.train_y) + len(gallery.test_y) + len(gallery.val_y)
        return pictures * self.cfg.measure_seconds_per_picture / self._speedup("train_rate")

    def _reserve(self, seconds: float, what: str, advice: str) -> float:
        """What a call may take: its estimate twice over, plus the GPU worker's start on
        ZeroGPU, where it may not pass ``gpu_call_limit_s``: a call that would not fit is
        refused here, in words, before it reserves anything. (ZeroGPU charges the seconds a
        call used; what it reserves must only be left in the visitor's quota.)"""
        if not gpu.ZERO_GPU:
            return 2 * seconds
        need, limit = self.cfg.gpu_start_s + seconds, self.cfg.gpu_call_limit_s
        if need > limit:
            raise ValueError(f"{what} would take about {need:.0f} s of GPU time, more than the "
                             f"{limit:.0f} s one call may reserve of a visitor's daily ZeroGPU "
                             f"quota: {advice}")
        return min(limit, max(self.cfg.gpu_min_call_s, self.cfg.gpu_start_s + 2 * seconds))

    def cancel(self) -> bool:
        """Ask the running job to stop; a cancelled task leaves the model exactly as it was."""
        if not self.busy():
            return False
        self.job.cancel()
        return True

    def rollback(self) -> str:
        """Undo the last task (its adapters are removed; the model is as before it)."""
        self._idle("roll back")
        model = self._ready()
        name = rollback(model)
        self.inspection = None
        self._measured.pop(name, None)  # only frees it: ``reports`` reads the model's tasks
        before = self._before.pop(name, None)
        if before is not None:  # the model is exactly as it was then: so is its snapshot
            before.revision = model.revision
            self.state = before
        return name

    def evaluate_now(self) -> dict:
        """The recognizer on the gallery now (from the kept snapshot when it is current)."""
        model, gallery = self._ready(), self._gallery()
        if self.state is None or not self.state.fits(model, gallery):
            self.state = snapshot(model, gallery)
        return evaluate(model, gallery, self.state)

    def export(self) -> dict[str, Path]:
        """The model, every ungated task folded into plain weights (``merged_copy``: a gated
        task stays an adapter with its gate), plus the JSON and Markdown report,
        written into this session's directory only."""
        self._idle("export")
        model = self._ready()
        self.touch()
        out = self.dir / "export"
        out.mkdir(exist_ok=True)
        paths = {"model": out / "gslora_model.safetensors", "json": out / "gslora_report.json",
                 "markdown": out / "gslora_report.md"}
        save_recognizer(merged_copy(model), paths["model"], standalone=True)
        data = {"source": self.source, "identities": model.class_names,
                "forgotten": model.forgotten(), "tasks": self.reports,
                "now": self.evaluate_now()}
        paths["json"].write_text(json.dumps(data, indent=2) + "\n")
        paths["markdown"].write_text(to_markdown(self.reports) + "\n")
        return paths

    # ----- try a photo -------------------------------------------------------------------------
    def test_pictures(self) -> list[str]:
        """Held-back test pictures (``identity/file``), to try without uploading anything."""
        return list(self.gallery.test_files) if self.gallery else []

    def predict(self, photo: str | Path | None = None, test_picture: str | None = None,
                k: int = 5) -> dict:
        """Top-k identities before any forgetting and now, for a photo or a test picture."""
        self._idle("try a photo")
        self._ready()
        with self._swap:  # one gallery's model and "before"
            gallery, model, original = self.gallery, self.model, self.original
        with torch_threads(self._threads()):
            return self._answer(gallery, model, original, photo, test_picture, k)

    @staticmethod
    def _answer(gallery: Gallery, model: Recognizer, original: Recognizer | None,
                photo: str | Path | None, test_picture: str | None, k: int) -> dict:
        """``predict``'s answer from one gallery's model and "before", read together."""
        if photo:
            now = top_k(model, photo, k)
            crop = now["crop"]
            face = now["face"]
            now = now["top"]
        elif test_picture:
            if test_picture not in gallery.test_files:
                raise ValueError(f"{test_picture!r} is not one of this gallery's test pictures")
            x = gallery.test_x[gallery.test_files.index(test_picture)]
            crop, face, now = to_image(x), "gallery test picture", top_k_crop(model, x, k)
        else:
            raise ValueError("upload a photo or pick a test picture")
        before = top_k_crop(original, crop, k) if original is not None else []
        return {"face": face, "crop": crop, "before": before, "after": now,
                "answer_before": verdict(original, before) if before else None,
                "answer_after": verdict(model, now), "forgotten": model.forgotten(),
                "kind": model.kind, "gallery": gallery}
