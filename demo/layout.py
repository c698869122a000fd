"""The page's layout: every widget, tab by tab, and nothing else (no events, no data).

``Page`` builds the widgets inside a ``gr.Blocks`` and keeps them as attributes, so the views
(``demo.views``) can say what each shows and ``demo.ui`` can wire the events. The Advanced
panel's fields are made from ``demo.request.PAGE_KNOBS`` and ``ForgetConfig``'s own help text.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable

import gradio as gr
from gradio import component_meta

from gslora_core.config import PRESETS, ForgetConfig, StudioConfig
from gslora_core.report import COMPARISON_HEADERS

from . import plots
from .explain import how_it_works
from .request import DEFAULT_RECIPE, INT_KNOBS, PAGE_KNOBS, panel_values

ROOT = Path(__file__).resolve().parents[1]
NO_GALLERY = ("No gallery loaded yet: press **Load the sample gallery**, or choose a .zip (one "
              "folder per person) and press **Use my upload**.")
# Try-a-photo examples: LFW photos of sample-gallery people that are not in the gallery (never
# trained on), whole as a visitor would upload them, so a phone needs no file of its own.
EXAMPLE_PHOTOS = ["assets/probes/Bill_Clinton_0010.jpg", "assets/probes/Serena_Williams_0024.jpg",
                  "assets/probes/Vladimir_Putin_0032.jpg", "assets/probes/Angelina_Jolie_0012.jpg"]


# Objects: one CIFAR-10 test picture of five classes, outside the objects sample (never trained
# on; written by ``python -m bench.cifar10 --examples 40 --out assets/probes/objects``).
EXAMPLE_OBJECTS = sorted(str(p.relative_to(ROOT))
                         for p in (ROOT / "assets" / "probes" / "objects").glob("*.jpg"))


def example_names(paths: list[str] = EXAMPLE_PHOTOS) -> list[str]:
    """What each example shows (its file name: ``Bill_Clinton_0010.jpg``, ``cat_0042.jpg``)."""
    return [Path(p).stem.rsplit("_", 1)[0].replace("_", " ") for p in paths]


# The gallery table's columns: faces (True; how each face was found) or object classes (False:
# pictures are used whole).
IDENT_COLUMNS = {True: ["person", "faces used", "aligned (MTCNN)", "used as-is (tight crop)",
                        "train", "test"],
                 False: ["class", "pictures used", "train", "test"]}
PRESET_LABELS = {"fast": "default (any number of people)",
                 "dense": "dense: LoRA in every block from the start (no sparsity)",
                 "paper": "paper-faithful: group lasso, a fixed 300 steps",
                 "fewshot": "few-shot GS-LoRA++ (4 pictures a person)"}

# The Advanced panel's fields beyond their label, help and integer-ness: lower bounds, ids.
KNOB_FIELDS: dict[str, dict] = {
    "rank": {"minimum": 1}, "beta": {"minimum": 0}, "bnd": {}, "margin": {"minimum": 0},
    "stage_steps": {"minimum": 1}, "steps": {"minimum": 1, "elem_id": "forget-steps"},
    "lr": {}, "shots": {"minimum": 0}}
KNOBS_PER_ROW = 4

SIZES_RESULT = ROOT / "bench" / "results" / "sizes_gate.json"  # the default as it is
TITLE = ("# GS-LoRA Forgetting Studio\nErase chosen people from a face recognizer (or classes "
         "from an object classifier) while the rest stay recognized: **GS-LoRA** continual "
         "forgetting (Zhao et al., CVPR 2024), running live on real pictures. Steps: **1** load "
         "a gallery → **3** pick who or what and press *Forget* → **4** see what changed → "
         "**5** try a photo.")


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
/* The face picker: as many columns as fit (10 at 1400 px, 8 at 1000 px), every row shown below
   its label (not under it), no empty block under one row, and names written out in full
   (wrapped) instead of cut by an ellipsis. */
#forget-faces .grid-container {grid-template-columns: repeat(auto-fill, minmax(104px, 1fr))
  !important; grid-template-rows: none !important}
#forget-faces .grid-wrap {overflow-y: auto; max-height: 780px; min-height: 0;
  padding-top: 2.2rem}
#forget-faces .caption-label {white-space: normal; max-width: 100%; left: 0; right: 0;
  font-size: 0.72rem; line-height: 1.15; overflow-wrap: anywhere; text-align: center}
"""


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



class Page:
    """The widgets, built tab by tab inside the caller's ``gr.Blocks``. ``on_state_deleted``:
    gradio's callback when a session's state expires (the handlers close its workspace)."""

    def __init__(self, cfg: StudioConfig, on_state_deleted: Callable) -> None:
        self.cfg = cfg
        self.state = gr.State(None, time_to_live=cfg.session_ttl_s,
                              delete_callback=on_state_deleted)
        gr.Markdown(TITLE)
        with gr.Tabs() as self.tabs:
            with gr.Tab("1 · Gallery", id="gallery"):
                self._gallery_tab()
            with gr.Tab("2 · Recognizer", id="recognizer"):
                self.recog_md = gr.Markdown("Load a gallery first.", elem_id="recognizer-status")
                self.recog_plot = gr.Plot(label="Test accuracy per person or class")
            with gr.Tab("3 · Forget", id="forget"):
                self._forget_tab()
            with gr.Tab("4 · Results", id="results"):
                self._results_tab()
            with gr.Tab("5 · Try a photo", id="photo"):
                self._photo_tab()
            with gr.Tab("How it works", id="how"):
                self.explain_md = gr.Markdown(how_it_works(None, asdict(PRESETS[DEFAULT_RECIPE])))
                self.sweep_plot = gr.Plot(sizes_figure(),
                                          label="Blocks used and Acc_f against task size "
                                                "(measured)")

    @property
    def knobs(self) -> list[gr.Number]:
        """The Advanced panel's fields, in ``PAGE_KNOBS`` order (the /forget endpoint's)."""
        return [getattr(self, k) for k in PAGE_KNOBS]

    def _gallery_tab(self) -> None:
        with gr.Row():
            with gr.Column(scale=1):
                self.sample_btn = gr.Button("Load the sample gallery (20 people)",
                                            variant="primary", elem_classes="gslora-big")
                gr.Markdown("LFW faces the recognizer never saw in pretraining, with "
                            "its ready recognizer.")
                # Shown when the object classifier is in checkpoints/ (it ships).
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
            show_label=False)  # its first column says "person" or "class"
        self.crops = gr.Gallery(label="Pictures as the recognizer sees them (faces aligned)",
                                columns=10, height=300, object_fit="contain")
        with gr.Column(visible=False) as self.unused_box:
            self.unused_df = gr.Dataframe(headers=["file", "why it was not used"],
                                          interactive=False, label="Files not used")
        with gr.Accordion("Notes on files that were used", open=False):
            self.notes_df = gr.Dataframe(headers=["file", "note"], interactive=False)

    def _forget_tab(self) -> None:
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
            gr.Markdown("The default works for one person or half the gallery: it starts with "
                        "the top block alone, releases more only if the task needs them, and "
                        "stops when the chosen people are forgotten. The other recipes are for "
                        "comparison.")
            self.preset = gr.Radio([(v, k) for k, v in PRESET_LABELS.items()],
                                   value=DEFAULT_RECIPE, label="Recipe")
            values = dict(zip(PAGE_KNOBS, panel_values(DEFAULT_RECIPE)))
            for start in range(0, len(PAGE_KNOBS), KNOBS_PER_ROW):
                with gr.Row():
                    for k in PAGE_KNOBS[start:start + KNOBS_PER_ROW]:
                        whole = {"precision": 0} if k in INT_KNOBS else {}
                        setattr(self, k, gr.Number(values[k], **knob_text(k), **whole,
                                                   **KNOB_FIELDS[k]))
        with gr.Row():
            self.forget_btn = gr.Button("Forget", variant="primary",
                                        elem_classes="gslora-big")
            self.cancel_btn = gr.Button("Cancel", variant="stop")
        self.forget_md = gr.Markdown(elem_id="forget-status")
        self.live_curves = gr.Plot(label="Losses, Acc_r and Acc_f while training",
                                   elem_id="live-curves")
        self.live_heatmap = gr.Plot(label="LoRA group norms (this task filling in)",
                                    elem_id="live-heatmap")

    def _results_tab(self) -> None:
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
        self._compare_box()
        self._history_box()

    def _compare_box(self) -> None:
        """Results' second half: delete vs GS-LoRA vs retrain."""
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

    def _history_box(self) -> None:
        """Results' last part: every task, and what can be done with them."""
        gr.Markdown("### Task history")
        self.history_df = gr.Dataframe(
            headers=["task", "forgot", "Acc_r", "Acc_f", "Acc_o", "H-Mean", "seconds",
                     "blocks changed"], interactive=False, wrap=True,
            column_widths=["8%", "32%", "9%", "9%", "9%", "9%", "11%", "13%"],
            elem_id="history-table")
        with gr.Row():
            self.again_btn = gr.Button("Forget more (next task)")
            self.rollback_btn = gr.Button("Roll back the last task")
            self.export_btn = gr.Button("Export model + report")
        self.history_md = gr.Markdown(elem_id="history-status")
        with gr.Column(visible=False) as self.export_box:
            self.export_files = gr.File(label="Downloads", file_count="multiple",
                                        interactive=False, height=110,
                                        elem_id="export-files")
        with gr.Accordion("Raw report (JSON)", open=False):
            self.report_json = gr.JSON()

    def _photo_tab(self) -> None:
        with gr.Row():
            self.photo = PhotoInput(type="filepath", label="Upload any photo",
                                    sources=["upload"], height=260,
                                    elem_id="photo-input")
            with gr.Column():
                self.test_pick = gr.Dropdown(label="…or pick a held-back test picture",
                                             choices=[], filterable=True,
                                             elem_id="test-pick")
                self.photo_btn = gr.Button("Who is this?", variant="primary",
                                           elem_id="photo-btn")
                self.photo_md = gr.Markdown(elem_id="photo-status")
        with gr.Column(visible=False, elem_id="photo-examples") as self.examples_box:
            gr.Examples([[str(ROOT / p)] for p in EXAMPLE_PHOTOS], [self.photo],
                        label="Example photos of sample-gallery people the recognizer "
                              "never saw: " + ", ".join(example_names()) + " (in this order; "
                              "click one, then Who is this?)")
        with gr.Column(visible=False, elem_id="object-examples") as self.object_examples_box:
            gr.Examples([[str(ROOT / p)] for p in EXAMPLE_OBJECTS], [self.photo],
                        label="Example pictures the classifier never saw (CIFAR-10 test "
                              "pictures outside the sample): " + ", ".join(
                                  example_names(EXAMPLE_OBJECTS)) + " (in this order; "
                              "click one, then What is this?)")
        with gr.Row():
            self.photo_crop = gr.Image(label="As the recognizer sees it", height=160,
                                       interactive=False, scale=1, min_width=200)
            # The score column holds "0.245 < 0.45" under the threshold, and names are long:
            # the tables take the room and wrap rather than cut a cell at 1000 px.
            table = {"interactive": False, "wrap": True, "scale": 2,
                     "column_widths": ["12%", "55%", "33%"]}
            self.before_df = gr.Dataframe(headers=["#", "person", "score"],
                                          label="Before any forgetting",
                                          elem_id="photo-before", **table)
            self.after_df = gr.Dataframe(headers=["#", "person", "score"], label="Now",
                                         elem_id="photo-now", **table)
