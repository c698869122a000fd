"""The "how it works" panel: GS-LoRA in plain words, with the numbers of the visitor's last run."""
from __future__ import annotations

from gslora_core.report import blocks_text, num, pct, task_norms

INTRO = """
### What happens when you press "Forget"

The recognizer is a small vision transformer (6 blocks) with a cosine classifier: one class per
person in the gallery. Forgetting must make it fail on the chosen people **and keep working on
everyone else**, without retraining from scratch.

**1. Freeze everything, add a small adapter.** Every weight of the recognizer stays fixed. Each
forgetting task adds its own LoRA adapter: two thin matrices beside each MLP layer of each block
(rank {rank}: {trainable} trainable numbers, {share} of the model). Only these learn. Rolling a task
back just deletes its adapter.

**2. Two losses pull in opposite directions.**
- *Retain loss* (cross-entropy on pictures of the people who stay): "keep recognizing them".
- *Forget loss* `β · ReLU(BND − m)` on each picture of the people to forget (β = {beta},
  BND = {bnd}), where m is how far the picture is from its own person (the log-sum-exp of the
  other people's scores minus its own; once the picture is misrecognized, m is its
  cross-entropy): "push it away, but only until m reaches BND". Without the bound the loss would
  run off to infinity and wreck the whole model. The authors bound the cross-entropy itself,
  but for a face the recognizer is sure of that has no gradient to follow.
- From the second task on, a few pictures of the people forgotten *earlier* get the same bounded
  forget loss ({replay} per step), so the new adapter cannot bring them back; for people already
  past the bound it costs nothing.

**3. Group sparsity: touch as few blocks as possible.** All adapter weights of one block form a
*group*. After every step each group's B matrices are shrunk towards zero and set to **exactly
zero** when their gradient is less than α = {alpha} times the strongest block's (the proximal
step of the group lasso `Σ λ_g ‖B_g‖`; lower blocks count more, since a change there reaches
every block above). A block whose B is zero is untouched by this task: the grey "0" cell in the
heatmap. Its A stays as it was, so a block can come back if the loss needs it.
Then a **refit**: the chosen blocks finish the task without the shrinkage, and everything below
the first chosen block is computed once per picture and cached, so each step only runs the
chosen blocks (about 6× cheaper when only the last block is used).

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
- **{zeros} of {groups}** adapter groups ended exactly zero (α = {alpha}): blocks used
  **{blocks}**. With α = 0 every block changes; raise α in the advanced panel and fewer blocks
  are touched (the plot below shows what that does on the sample gallery).
- Beyond accuracy: the forgotten faces' embeddings moved away from their old class centre (cosine
  {cos_before} → {cos_after}).
"""


def how_it_works(report: dict | None, defaults: dict) -> str:
    """The panel's Markdown: the method, filled with this run's settings and results."""
    cfg = (report or {}).get("config", defaults)
    trainable = report["trainable_params"] if report else None
    share = f"{100 * report['trainable_share']:.1f} %" if report else "about 3 %"
    text = INTRO.format(rank=cfg["rank"], beta=cfg["beta"], bnd=cfg["bnd"], alpha=cfg["alpha"],
                        replay=cfg.get("replay_forgotten", 0),
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
        alpha=cfg["alpha"],
        cos_before=num(report.get("forgotten_cos_to_prototype_before")),
        cos_after=num(report.get("forgotten_cos_to_prototype_after")))
