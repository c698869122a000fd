"""The Gradio app: the layout (``demo.layout``), the handlers (``demo.handlers``) and the views
(``demo.views``) wired into one page. No ML math here, and no widget or handler either: this
module says which event calls which handler with which widgets, and serves the page.
"""
from __future__ import annotations

import logging

import gradio as gr

from gslora_core.config import StudioConfig

from .handlers import Handlers, forget_endpoint, friendly, latest_zip, preload_engine
from .layout import CSS, Page
from .request import panel_values

QUEUE_CONCURRENCY = 4  # per event; training and forgetting have lines of their own (Studio)


REFUSED = ("**Not used.** The message at the top right says why and stays until you close "
           "it; whatever was loaded before is still loaded.")


class Studio:
    """The page: ``Page``'s widgets, ``Handlers``' events, and the wiring between them."""

    def __init__(self, cfg: StudioConfig = StudioConfig()):
        self.cfg = cfg
        self.handlers = Handlers(cfg)
        self.page: Page | None = None
        self.demo: gr.Blocks | None = None

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="GS-LoRA Forgetting Studio", analytics_enabled=False,
                       delete_cache=(1800, int(self.cfg.session_ttl_s))) as demo:
            self.page = self.handlers.page = Page(self.cfg, self.handlers.state_deleted)
            self._wire_gallery()
            self._wire_forget()
            self._wire_results()
            self._wire_photo()
            # A plot drawn (or a window resized) while its tab was hidden keeps a wrong width:
            # showing a tab tells plotly the window's size again (in the browser only).
            self.page.tabs.select(None, None, None, api_name=False, queue=False,
                                  js="() => { setTimeout(() => window.dispatchEvent("
                                     "new Event('resize')), 60); }")
            demo.unload(self.handlers.end_session)
        self.demo = demo
        return demo

    def _every(self) -> list:
        """The widgets a gallery load (or a task's end) may change."""
        p = self.page
        return [p.state, p.gallery_status, p.gallery_md, p.ident_df, p.unused_df, p.notes_df,
                p.crops, p.thumbs, p.names, p.test_pick, p.recog_md, p.recog_plot,
                p.metrics_df, p.summary_md, p.bars, p.heatmap, p.evidence_md,
                p.history_df, p.explain_md, p.report_json, p.compare_md,
                p.compare_df, p.map_plot, p.export_files, p.examples_box,
                p.compare_retrain, p.unused_box, p.compared_box, p.export_box, p.suggest_btn,
                p.object_examples_box, p.photo_btn]

    def _fresh(self) -> list:
        """What a gallery load clears of the gallery before it (``views.fresh``)."""
        p = self.page
        return [p.forget_md, p.live_curves, p.live_heatmap, p.history_md, p.photo, p.photo_crop,
                p.before_df, p.after_df, p.photo_md]

    @staticmethod
    def _cleared(button: gr.Button, status: gr.Markdown):
        """A click that first empties ``status``: the progress shown there while the work
        runs is then not written over the last action's words."""
        return button.click(lambda: "", None, [status], api_name=False, queue=False)

    def _line(self, name: str) -> dict:
        """A queue line of its own ("train": recognizers; "forget": forgetting and comparing),
        as many at a time as ``StudioConfig.<name>_concurrency``."""
        return {"concurrency_id": name,
                "concurrency_limit": getattr(self.cfg, f"{name}_concurrency")}

    def _wire_gallery(self) -> None:
        p, h, every = self.page, self.handlers, self._every()
        loaded = every + self._fresh()
        sample = self._cleared(p.sample_btn, p.gallery_status).then(
            friendly(h.load_sample, "Could not load the sample gallery", lasting=True),
            [p.state], loaded, api_name="load_sample", show_progress_on=[p.gallery_status])
        objects = self._cleared(p.objects_btn, p.gallery_status).then(
            friendly(h.load_objects, "Could not load the objects sample", lasting=True),
            [p.state], loaded, api_name="load_objects", show_progress_on=[p.gallery_status])
        p.upload.upload(latest_zip, [p.upload], [p.upload], api_name=False, queue=False)
        up = self._cleared(p.upload_btn, p.gallery_status).then(
            friendly(h.upload_gallery, "Could not use this upload", lasting=True),
            [p.state, p.upload], loaded + [p.upload], api_name="upload_gallery",
            show_progress_on=[p.gallery_status], concurrency_id="ingest",
            concurrency_limit=self.cfg.ingest_concurrency)
        # A refusal's message stays (``lasting``), and the status line says so instead of
        # what it said before (such as "the recognizer is being trained").
        for event in (sample, objects, up):
            event.failure(lambda: REFUSED, None, [p.gallery_status], api_name=False,
                          queue=False)
        up.success(friendly(h.train_recognizer, "Could not train the recognizer"), [p.state],
                   every, api_name="train_recognizer", show_progress_on=[p.recog_md],
                   **self._line("train"))

    def _wire_forget(self) -> None:
        p, h = self.page, self.handlers
        p.thumbs.select(h.toggle, [p.state, p.names], [p.names], api_name=False)
        p.suggest_btn.click(friendly(h.suggest, "No suggestion"), [p.state], [p.names],
                            api_name="suggest")
        # Choosing a recipe fills the Advanced panel with its values.
        p.preset.change(panel_values, [p.preset], p.knobs, api_name=False)
        p.forget_btn.click(
            friendly(forget_endpoint(h.forget), "Forgetting did not run"),
            [p.state, p.names, p.preset, *p.knobs],
            self._every() + [p.forget_md, p.live_curves, p.live_heatmap, p.tabs],
            api_name="forget", show_progress_on=[p.forget_md], **self._line("forget"))
        p.cancel_btn.click(h.cancel, [p.state], [p.forget_md], api_name="cancel")

    def _wire_results(self) -> None:
        p, h = self.page, self.handlers
        # The next task starts at the top of the Forget tab, not where the Results tab was.
        p.again_btn.click(lambda: gr.Tabs(selected="forget"), None, [p.tabs], api_name=False,
                          js="() => { window.scrollTo(0, 0); }")
        p.rollback_btn.click(friendly(h.rollback, "Could not roll back"), [p.state],
                             self._every() + [p.history_md], api_name="rollback")
        self._cleared(p.compare_btn, p.compare_md).then(
            friendly(h.compare, "Could not compare"), [p.state, p.compare_retrain],
            [p.compare_md, p.compare_df, p.map_plot, p.compared_box], api_name="compare",
            # Its status line is the progress (stage, steps, time left): an overlay on it
            # would write the same words over them.
            show_progress="hidden", **self._line("forget"))
        p.export_btn.click(friendly(h.export, "Could not export"), [p.state],
                           [p.export_files, p.history_md, p.export_box], api_name="export")

    def _wire_photo(self) -> None:
        p, h = self.page, self.handlers
        inputs = [p.state, p.photo, p.test_pick]
        outputs = [p.photo_crop, p.before_df, p.after_df, p.photo_md, p.photo, p.test_pick]
        try_photo = friendly(h.try_photo, "Could not read this photo")
        p.photo_btn.click(try_photo, inputs, outputs, api_name="try_photo")
        p.test_pick.input(  # an emptied list (Escape, a cleared search) asks nothing
            lambda ws, pick: try_photo(ws, None, pick) if pick else [gr.skip()] * len(outputs),
            [p.state, p.test_pick], outputs, api_name=False)
        p.photo.upload(try_photo, inputs, outputs, api_name=False)


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


def page_log() -> logging.Logger:
    """The page's own log (a visitor's refused input: one line each) on the server's stderr."""
    log = logging.getLogger("gslora.page")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


def build_demo(cfg: StudioConfig = StudioConfig()) -> gr.Blocks:
    """The page; the engine (torch) is imported in the background meanwhile."""
    page_log()
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
