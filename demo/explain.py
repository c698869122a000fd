"""The "how it works" panel: GS-LoRA in plain words, with the numbers of the visitor's last run."""
from __future__ import annotations

from gslora_core.gate import gated_bnds
from gslora_core.report import blocks_text, forgotten_line, num, pct, task_norms, upper_first

INTRO = """
### In plain words

A face recognizer turns a photo into a list of numbers (an *embedding*) with a stack of six
layers, called *blocks*, and then looks up which enrolled person those numbers are closest to.
To make it forget someone we do not retrain it. We freeze it and add a small correction beside
its top block, then teach only that correction two things at once: *stop recognizing these
people* and *keep recognizing everyone else*. If the top block is not enough, the block below
gets a correction too. The correction only reaches faces that the recognizer, as it was before,
placed nearest one of the chosen people: everyone else is answered exactly as before. The task
stops as soon as the chosen people's own photos are no longer recognized, and their faces then
come out as "not recognized", not as somebody else. Undoing a task means deleting its
correction.

The rest of this page says the same in more detail, with the names the paper uses.

### What happens when you press "Forget"

The face recognizer is a small vision transformer (6 blocks) reading the frozen lower layers of
a pretrained face network (dlib's), with a cosine classifier: one class per person in the
gallery. Only the transformer blocks can change, and only through the adapters below.
Forgetting must make it fail on the chosen people **and keep working on everyone else**,
without retraining from scratch.

**1. Freeze everything, add a small adapter.** Every weight of the recognizer stays fixed. Each
forgetting task adds its own LoRA adapter: two thin matrices beside each MLP layer of each block
(rank {rank}: {trainable} trainable numbers, {share} of the model). Only these learn. Rolling a task
back just deletes its adapter.

**2. Two losses pull in opposite directions.**
- *Retain loss* on pictures of the people who stay: "keep recognizing them". It is the usual
  classification loss, *cross-entropy*: small when the right person gets the highest score,
  large when someone else does.
- *Forget loss* `β · ReLU(BND − m)` on each picture of the people to forget (β = {beta}, BND =
  {bnd:g}; {gate_bnd} for faces, whose change is gated, below). Here m says how far the picture
  is from its own person: the best of the other people's scores (taken smoothly, as a
  *log-sum-exp*) minus its own; once the picture is misrecognized, m is its cross-entropy. In
  words: "push it away, but only until m reaches BND" (ReLU(x) is x when x is positive, else 0).
  Without the bound the loss would run off to infinity and wreck the whole model. The authors
  bound the cross-entropy itself, but for a face the recognizer is sure of that has no gradient
  to follow.
- From the second task on, a few pictures of the people forgotten *earlier* get the same bounded
  forget loss ({replay} per step), so the new adapter cannot bring them back; for people already
  past the bound it costs nothing.

**3. Touch as few blocks as possible, and stop when the job is done.** All adapter weights of
one block form a *group* (the paper's *group sparsity*: whole groups are kept at zero, so whole
blocks stay untouched). A task starts with the top block's group alone; the groups below stay
**exactly zero** (the grey "0" cells in the heatmap: those blocks are untouched). Every
{check} steps the task checks its own training pictures of the people to forget: is any of them
still answered with their name, or close enough to anyone to be named? If the blocks in use make
no progress for {stage} steps, the next block down is released (for object classes the learning
rate falls to zero over the task instead, and the task keeps its top block: while the rate is
high the count of pictures left swings, so a pause there says nothing about capacity). When
every picture is past the margin the task stops, however few steps that took; a cap ({steps}
steps) ends a task that cannot get there, and the result says so. Because everything below
the first block in use is unchanged, each picture's state there is computed once and kept: a
one-block task trains and measures on a single row per picture, which is why it takes about a
second.

**Forgotten means unknown.** The recognizer answers a name only above a threshold (fixed on
held-back pictures when it was enrolled); below it, "not recognized". A forgotten face must come
out *not recognized*, never as another person's name, so a third loss pushes it below the
threshold (by a margin of {margin}) for everyone, and a fourth holds the retained people's
embeddings where they were (weight {keep}).

**Only faces near the forgotten people change.** The adapter alone cannot tell an unseen photo
of a forgotten person from a similar-looking stranger, so what it learns would move every face
a little, and some kept people would slip under the threshold. So the task's change is *gated*:
each photo is first read by the recognizer with the adapters left out. If it is nearer one of
the forgotten people than anyone else (by at least {gate_lead} in cosine, and at most {gate_c}
under the threshold), the gate opens and the photo gets the whole change, whether it was seen
in training or not; a photo nearer anyone else gets none of it and is answered exactly as
before (the gate's sharpness: {gate_k}; under 1 % open it is shut). With the kept people out of
its way, the forget loss can ask more (BND {gate_push}), which carries the forgotten people's
unseen photos further from their name. A forgotten person's photo that the recognizer already
took for someone else stays as it was. (Object classes, with the paper's Acc_f as
their measure, are not gated.) A gated change depends on the photo, so exporting keeps it as an
adapter beside the plain weights.

**4. How we know it worked.** Accuracy is measured on pictures held back from training:
- **Acc_f**: the people you forgot (should fall to 0).
- **Acc_r**: everyone else (should stay where it was).
- **Acc_o**: people forgotten in *earlier* tasks (should stay at 0: continual forgetting).
- **H-Mean** combines "Acc_r after" and "how much Acc_f dropped" (100 = perfect).
"""

NO_RUN = "\n*Run a forgetting task to see these numbers for your own run.*\n"

RUN = """
### Your last run ({task}: {who})

- Acc_f went from **{f_before}** to **{f_after}**; Acc_r from **{r_before}** to **{r_after}**;
  H-Mean **{h:.1f}**.
- It took **{seconds:.1f} s** on {device}, training {trainable} numbers ({share} of the model).
- {stop}. **{zeros} of {groups}** adapter groups ended exactly zero: the task changed
  **{blocks}**.
  The "dense" recipe (advanced panel) trains every block from the start; the plot below shows
  how many blocks the default needed as tasks grow (LFW-100).
- {forgotten}.
- Beyond accuracy: the forgotten faces' embeddings moved away from their old class centre (cosine
  {cos_before} → {cos_after}).
"""


def _gate_push(cfg: dict) -> str:
    """What a gated task's forget loss asks, in words: its BND and, if it has one, the lower
    BND it falls back to before it takes another block (``Task.bnds``)."""
    bnds = gated_bnds(cfg.get("gate_bnd", cfg["bnd"]), cfg.get("gate_bnd_fallback", 0.0))
    if len(bnds) == 1:
        return f"{bnds[0]:g}"
    return (f"{bnds[0]:g}, eased to {bnds[1]:g} if the top block cannot reach it, before a "
            "lower block is released")


def how_it_works(report: dict | None, defaults: dict) -> str:
    """The panel's Markdown: the method, filled with this run's settings and results."""
    cfg = (report or {}).get("config", defaults)
    trainable = report["trainable_params"] if report else None
    share = f"{100 * report['trainable_share']:.1f} %" if report else "about 3 %"
    text = INTRO.format(rank=cfg["rank"], beta=cfg["beta"], bnd=cfg["bnd"],
                        replay=cfg.get("replay_forgotten", 0), check=cfg.get("check_every", 5),
                        stage=cfg.get("stage_steps", 80), steps=cfg["steps"],
                        margin=cfg.get("margin", 0.1), keep=cfg.get("keep", 0),
                        gate_k=f"{cfg.get('gate_k', 30.0):g}",
                        gate_c=f"{cfg.get('gate_c', 0.15):g}",
                        gate_lead=f"{cfg.get('gate_lead', 0.05):g}",
                        gate_bnd=f"{cfg.get('gate_bnd', cfg['bnd']):g}",
                        gate_push=_gate_push(cfg),
                        trainable=f"{trainable:,}" if trainable else "a few tens of thousands",
                        share=share)
    if not report:
        return text + NO_RUN
    return text + RUN.format(
        task=report["task"], who=", ".join(report["forgotten"]),
        f_before=pct(report["acc_f_before"]), f_after=pct(report["acc_f_after"]),
        r_before=pct(report["acc_r_before"]), r_after=pct(report["acc_r_after"]),
        h=100 * report["h_mean"], seconds=report["seconds"], device=report.get("device", "cpu"),
        trainable=f"{report['trainable_params']:,}", share=share,
        zeros=report["zero_groups"],
        groups=len(task_norms(report)), blocks=blocks_text(task_norms(report)),
        stop=(report.get("stop") or {}).get("text", "finished"),
        forgotten=upper_first(forgotten_line(report)),
        cos_before=num(report.get("forgotten_cos_to_prototype_before")),
        cos_after=num(report.get("forgotten_cos_to_prototype_after")))
