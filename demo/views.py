"""What the page shows, from a workspace or a running job: functions from data to widget updates.

Each view takes the ``Page`` (whose widgets it fills) and the session's ``Workspace`` (or a
``Job`` while one runs) and returns ``{widget: value}``; they hold no state and no ML math.
The live views also move gradio's progress bar (``progress``; None where there is none).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import gradio as gr
import pandas as pd
from PIL import Image

from gslora_core.config import PRESETS
from gslora_core.report import (
    blocks_text,
    comparison_rows,
    duration,
    forgotten_line,
    metric_rows,
    nouns,
    pct,
    seconds_left,
    task_norms,
    task_summary,
    time_left,
    upper_first,
    without_curve,
)

from . import plots
from .explain import how_it_works
from .layout import IDENT_COLUMNS, Page
from .request import DEFAULT_RECIPE

# Smaller pictures are drawn enlarged in Try a photo (160 px is the image box's height).
SHOWN_PX = 128

if TYPE_CHECKING:
    from .jobs import Job
    from .workspace import Workspace

# A typical one-block task changes its block by a norm of 4 to 12 (bench/results/sizes_gate.json):
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


def gallery_view(page: Page, ws: Workspace) -> dict:
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
    return {page.gallery_md: md, page.ident_df: rows,
            page.unused_df: unused, page.unused_box: gr.Column(visible=bool(unused)),
            page.notes_df: notes,
            page.crops: gr.Gallery(value=ws.crops(),
                                   label="Pictures as the recognizer sees them"
                                         + (" (faces aligned)" if words.faces else "")),
            **picker_view(page, ws),
            page.test_pick: gr.Dropdown(
                choices=tests, value=None,
                label=f"…or pick one of the {len(tests)} held-back test pictures (type a "
                      "name to search" + ("; the list shows the first 100)" if len(tests) > 100
                                          else ")")),
            page.examples_box: gr.Column(visible=ov["source"] == "sample"),
            page.object_examples_box: gr.Column(visible=ov["source"] == "objects"),
            page.photo_btn: gr.Button("Who is this?" if words.faces else "What is this?")}


def picker_view(page: Page, ws: Workspace) -> dict:
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
    words = nouns(ws.kind)
    return {page.thumbs: gr.Gallery(value=faces, selected_index=None,
                                    label=f"{upper_first(words.many)} (click to choose; "
                                          "greyed ✂ = forgotten already)"),
            page.names: gr.CheckboxGroup(choices=ws.candidates(), value=[],
                                         label=f"Forget these {words.many}"),
            page.suggest_btn: gr.Button(f"Suggest two {words.many}"),
            page.compare_retrain: retrain}


def recognizer_view(page: Page, ws: Workspace) -> dict:
    rep = ws.recognizer_report
    if rep is None:
        return {page.recog_md: "No recognizer yet: upload a gallery and it is trained here "
                               "from the shipped backbone.", page.recog_plot: None}
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
    return {page.recog_md: md,
            page.recog_plot: plots.accuracy_bars(rep["per_identity"],
                                                 f"Test accuracy per {nouns(ws.kind)[0]}")}


def results_view(page: Page, ws: Workspace) -> dict:
    defaults = asdict(PRESETS[DEFAULT_RECIPE])
    rep = ws.reports[-1] if ws.reports else None
    history = [[r["task"], ", ".join(r["forgotten"]), pct(r["acc_r_after"]), pct(r["acc_f_after"]),
                pct(r["acc_o_after"]), f"{100 * r['h_mean']:.1f}", f"{r['seconds']:.1f}",
                blocks_text(task_norms(r))] for r in ws.reports]  # the reports' own keys
    out = {page.history_df: history, page.explain_md: how_it_works(rep, defaults),
           page.report_json: without_curve(rep) if rep else {}, **inspection_view(page, ws),
           page.export_files: None, page.export_box: gr.Column(visible=False)}
    if rep is None:
        out.update({page.metrics_df: [], page.summary_md: "No forgetting task yet.",
                    page.bars: None, page.heatmap: None, page.evidence_md: ""})
        return out
    out.update({
        page.metrics_df: metric_rows(rep),
        page.summary_md: f"**{rep['task']}** forgot {', '.join(rep['forgotten'])}: "
                         f"{task_summary(rep)}. {upper_first(forgotten_line(rep))}.",
        page.bars: plots.identity_bars(rep["per_identity"], nouns(ws.kind)[0]),
        page.heatmap: plots.group_heatmap(rep["group_norms"], rep["task_names"],
                                          heatmap_top(ws.reports)),
        page.evidence_md: evidence(rep),
    })
    return out


def fresh(page: Page) -> dict:
    """What a newly loaded gallery clears: the last task's live view, the history's last
    message and the last photo asked about all belonged to the gallery before it."""
    return {page.forget_md: "", page.live_curves: None, page.live_heatmap: None,
            page.history_md: "", page.photo: None, page.photo_crop: None, page.before_df: [],
            page.after_df: [], page.photo_md: ""}


def everything(page: Page, ws: Workspace) -> dict:
    return {page.state: ws, **gallery_view(page, ws), **recognizer_view(page, ws),
            **results_view(page, ws)}


def after_task(page: Page, ws: Workspace) -> dict:
    """What a task (or its rollback) changes: who can still be forgotten, the recognizer's
    accuracy, the results. The gallery's pictures are not sent again."""
    return {page.state: ws, **picker_view(page, ws), **recognizer_view(page, ws),
            **results_view(page, ws)}


def training_view(page: Page, job: Job, progress, estimate: float) -> dict:
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
    return {page.recog_md: f"{text} ({duration(job.elapsed())} so far)",
            page.recog_plot: plots.training_curve(steps)}


def live_view(page: Page, job: Job, earlier: dict | None, progress) -> dict:
    """Progress text, loss curves and the heatmap filling in, from the job's points."""
    points = [q for q in job.points if "step" in q]
    stage = job.points[-1].get("stage") if job.points else "starting"
    heatmap = {}
    if points:  # the last step's groups: after the steps (measuring), the task's own final ones
        rows = list(earlier["group_norms"]) if earlier else []
        names = list(earlier["task_names"]) if earlier else []
        norms = points[-1]["group_norms"]
        heatmap = {page.live_heatmap: plots.group_heatmap(
            rows + [norms], names + ["this task"],
            heatmap_top([earlier] if earlier else [], norms))}
    if not points or (stage and job.points[-1] is not points[-1]):
        text = {"starting": "Starting",
                "preparing": "Preparing the task (the recognizer's state is kept from "
                             "before: nothing to re-measure)"}.get(stage, stage.capitalize())
        if points:
            text += f" (trained {points[-1]['step']} steps)"
        if progress is not None:
            progress(None if not points else 1.0, desc=text)
        return {page.forget_md: f"{text}… ({duration(job.elapsed())})",
                page.live_curves: plots.loss_curves(points), **heatmap}
    p = points[-1]
    checks = [q for q in points if "people_left" in q]
    left = ""
    if checks:
        c = checks[-1]
        left = (f" · still recognized on their training pictures: {c['recognized_left']} "
                f"of {c['people']} (not yet past the margin: {c['people_left']})")
    released = [q["released"] + 1 for q in points if "released" in q]
    eased = [q["eased"] for q in points if "eased" in q]
    blocks = (f" · blocks in use: {p['blocks']}" if p.get("blocks") else "") + (
        f" (released block {', '.join(map(str, released))})" if released else "") + (
        f" · BND eased to {eased[-1]:g}" if eased else "")
    to_cap = seconds_left(p["step"], p["steps"], job.elapsed())
    cap = ("" if to_cap is None else
           f" · stops when they are forgotten, at the latest in {duration(to_cap)}")
    if progress is not None:
        progress((p["step"], p["steps"]), unit="steps (cap)",
                 desc=f"forgetting: step {p['step']} (cap {p['steps']}){left}{cap}")
    evals = [q for q in points if "acc_r" in q]
    acc = (f" · Acc_r {pct(evals[-1]['acc_r'])} · Acc_f {pct(evals[-1]['acc_f'])}"
           if evals else "")
    return {page.forget_md: f"Step {p['step']} (cap {p['steps']}){left}{blocks}{acc} · "
                            f"zero groups {p['zero_groups']} · {duration(job.elapsed())}"
                            f"{cap}",
            page.live_curves: plots.loss_curves(points), **heatmap}


def task_done_text(rep: dict) -> str:
    """A finished task in one line: how it stopped, Acc_f and Acc_r before → after, and what
    the forgotten pictures are answered now."""
    head = "**Done**" if rep["stop"].get("reason") == "done" else "**Stopped at the cap**"
    return (f"{head} in {rep['seconds']:.1f} s ({rep['stop']['text']}): Acc_f "
            f"{pct(rep['acc_f_before'])} → **{pct(rep['acc_f_after'])}**, Acc_r "
            f"{pct(rep['acc_r_before'])} → **{pct(rep['acc_r_after'])}**; "
            f"{forgotten_line(rep)}. Full results in the Results tab.")


def comparing_text(job: Job, progress) -> str:
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


def inspection_view(page: Page, ws: Workspace) -> dict:
    res = ws.inspection
    if not res:
        return {page.compare_md: "", page.compare_df: [], page.map_plot: None,
                page.compared_box: gr.Column(visible=False)}
    rows = {m["method"]: m for m in res["methods"]}
    gone = ", ".join(res["forgotten"])
    rec = rows["delete"]["recognizable"]
    words = nouns(ws.kind)
    md = (f"**Forgotten: {gone}.** Verification threshold fixed on the {words.many} you kept "
          f"(cosine {rec['threshold']:.2f}, {pct(rec['retained_verification'])} right on "
          f"their pairs); relearning trains only the answer sheet on k pictures a forgotten "
          f"{words.one}. *Delete* answers like forgetting but the embeddings still know them; "
          "compare GS-LoRA's columns with retrain's.")
    return {page.compare_md: md, page.compare_df: comparison_rows(res["methods"]),
            page.map_plot: plots.embedding_map(res["embedding_map"]),
            page.compared_box: gr.Column(visible=True)}


def photo_view(page: Page, ws: Workspace, res: dict, photo: str | None,
               test_picture: str | None) -> dict:
    """Try a photo's answer (``res`` from ``Workspace.predict``): the picture as the recognizer
    sees it, its top answers before any forgetting and now, the verdict in words; the input
    that did not count (a picked test picture under an uploaded photo, or the reverse) is
    cleared."""
    forgotten = set(res["forgotten"])
    one = nouns(res["kind"])[0]

    def table(top: list[dict], answer: dict | None) -> pd.DataFrame:
        """A frame, not a list: its columns name the classes ("person" or "class") and the
        API still answers {"headers", "data"}. Scores under the threshold say so: the top row
        is then not the answer ("not recognized" is)."""
        tau = (answer or {}).get("threshold")
        return pd.DataFrame([[i + 1, ("✂ " if t["identity"] in forgotten else "")
                              + t["identity"], round(t["cosine"], 3)
                              if tau is None or t["cosine"] >= tau
                              else f"{t['cosine']:.3f} < {tau:.2f}"]
                             for i, t in enumerate(top)], columns=["#", one, "score"])
    gone = ", ".join(res["forgotten"]) or "nobody yet"
    asked = ("your photo" if photo else
             f"the held-back picture {test_picture} (a picture of "
             f"{test_picture.split('/', 1)[0]})")
    how = (f"Face: {FACE_WORDS.get(res['face'], res['face'])}. Scores are cosine "
           "similarities to each person's class" if one == "person" else
           "Scores are cosine similarities to each class")
    out = {**shown_crop(page, res["crop"]), page.before_df: table(res["before"],
                                                                res["answer_before"]),
           page.after_df: table(res["after"], res["answer_after"]),
           page.photo_md: f"Asked about {asked}.\n\n"
                          f"**Now: {answer_text(res['answer_after'])}** · before any "
                          f"forgetting: {answer_text(res['answer_before'])}.\n\n"
                          f"{how} (higher = more alike); below the recognizer's threshold "
                          f"the answer is \"not recognized\". ✂ marks a forgotten {one}. "
                          f"Forgotten: {gone}."}
    if photo:
        out[page.test_pick] = gr.Dropdown(value=None)
    else:
        out[page.photo] = None
    return out


def shown_crop(page: Page, crop: Image.Image) -> dict:
    """The picture the recognizer scored, enlarged without smoothing when it is small (a
    CIFAR-10 picture is 32 px: drawn as is it is a speck), its real size in the label."""
    w, h = crop.size
    label = "As the recognizer sees it"
    if max(w, h) < SHOWN_PX:
        k = SHOWN_PX // max(w, h)
        crop = crop.resize((w * k, h * k), Image.NEAREST)
        label += f" · {w}×{h} px, drawn {k}×"
    return {page.photo_crop: gr.Image(value=crop, label=label)}


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



def evidence(rep: dict) -> str:
    """Forgetting beyond accuracy, in words."""
    lines = ["### Evidence beyond accuracy"]
    words = nouns(rep.get("kind"))
    after = rep.get("membership_after")
    if after:
        before = rep.get("membership_before") or {}
        lines.append(f"- **Membership attack** (calibrated on the {words.many} you kept: their "
                     "training pictures are members, their held-back pictures are not; then asked "
                     f"about the forgotten {words.owners} training pictures). Before: "
                     f"{before.get('verdict', '–')} After: {after['verdict']}")
        if after.get("has_power"):
            lines.append(f"  The AUC is the attack's own power, measured on the {words.many} "
                         "kept (how well it tells their training pictures from their held-back "
                         "ones): it says how far to trust the rate, and changes little when "
                         "the rate falls, because the task leaves the kept ones as they were.")
        else:
            lines.append("  On a gallery this size the attack has no power, so no number is "
                         "shown as evidence; `python -m bench.forgetting` measures it on LFW-100 "
                         "next to a retrained model.")
    cb, ca = rep.get("forgotten_cos_to_prototype_before"), rep.get("forgotten_cos_to_prototype_after")
    if cb is not None and ca is not None:
        lines.append(f"- **Embedding shift**: the forgotten {words.pictures}' cosine similarity to "
                     f"where their class used to be: {cb:.2f} before → **{ca:.2f}** after.")
    return "\n".join(lines)

