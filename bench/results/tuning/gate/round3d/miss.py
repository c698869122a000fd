"""Re-run validation miss tasks alone, with config overrides, and show their worst held-back
pictures: what round 3d's first looks at each variant were.

    PYTHONPATH=. python miss.py 'k=v,k=v;k=v' [SEED:PEOPLE:DRAW ...]

Tasks: LFW-100 validation pictures, the draw ``bench.sizes.draws_of(names, PEOPLE, _, SEED)``;
by default round 3c's three misses. Environment: ``DETAIL=1`` prints each task's three
held-back pictures nearest their own person; ``HEADLORA=1`` adds a LoRA on the projection to
the embedding (head_lora.patch in-process); ``AUG=K`` adds K jittered copies of the forgotten
people's training pictures to the gallery: they join the forget pool and are judged by the rule
(jitter_judged's variant, no patch needed). The gallery then differs per task, so each task
measures it again (a whole LFW-100 snapshot: minutes a task at K = 4)."""
import copy
import os
import sys
from dataclasses import replace

import torch

from bench.sizes import draws_of, load_gallery_named, load_names, recipes
from gslora_core import gate
from gslora_core.evaluation import snapshot
from gslora_core.forgetting import forget, plan_task
from gslora_core.lora import LoRALinear
from gslora_core.openset import own_and_other
from gslora_core.training import jitter

MISSES = [(3, 20, 2), (4, 10, 0), (4, 20, 10)]


def config(variant: str):
    cfg = recipes()["default"]
    for kv in filter(None, variant.split(",")):
        k, v = kv.split("=")
        cfg = replace(cfg, **{k: type(getattr(cfg, k))(v)})
    return cfg


def jittered(gallery, names: list[str], k: int):
    """The gallery with ``k`` jittered copies of ``names``' training pictures (files "aug:")."""
    gen = torch.Generator().manual_seed(0)
    sel = torch.isin(gallery.train_y, torch.tensor([gallery.names.index(n) for n in names]))
    xs, ys = [gallery.train_x], [gallery.train_y]
    for _ in range(k):
        xs.append((jitter(gallery.train_x[sel], gen) * 255).round().clamp(0, 255).to(torch.uint8))
        ys.append(gallery.train_y[sel])
    files = list(gallery.train_files) + ["aug:"] * (k * int(sel.sum()))
    return replace(gallery, train_x=torch.cat(xs), train_y=torch.cat(ys), train_files=files)


def detail(model, gallery, before, after, mask) -> None:
    g_task = gate.Gate.from_dict(model.tasks[-1].gate)
    index = {n: i for i, n in enumerate(model.class_names)}
    y = gallery.test_y[mask]
    o0, b0 = own_and_other(before.test_cos[mask], y)
    o1, b1 = own_and_other(after.test_cos[mask], y)
    g = g_task.openness(before.test_cos[mask], index)
    for i in (b1 - o1).argsort()[:3].tolist():
        n_train = int((gallery.train_y == y[i]).sum())
        print(f"   {gallery.names[y[i]]:26s} train {n_train:3d} own {o0[i]:.3f}->{o1[i]:.3f} "
              f"other {b0[i]:.3f}->{b1[i]:.3f} g {g[i]:.3f}")


def run(model, gallery, before, cfg, seed: int, people: int, draw: int) -> str:
    names = draws_of(load_names("lfw100"), people, draw + 1, seed)[draw]
    m = copy.deepcopy(model)
    if os.environ.get("AUG"):
        gallery = jittered(gallery, names, int(os.environ["AUG"]))
        before = snapshot(m, gallery)
    report, after = forget(m, gallery, plan_task(m, gallery, names), cfg, before=before)
    mask = torch.isin(gallery.test_y, torch.tensor([gallery.names.index(n) for n in names]))
    own, other = own_and_other(after.test_cos[mask], gallery.test_y[mask])
    if os.environ.get("DETAIL"):
        detail(m, gallery, before, after, mask)
    stop = report["stop"]
    return (f"{seed}-{people}-{draw}: named {int((own >= other).sum())} gap min "
            f"{float((other - own).min()):+.3f} steps {stop['steps']} blocks {stop['blocks']}")


def main() -> None:
    torch.set_num_threads(2)
    model, gallery = load_gallery_named("lfw100")
    gallery = gallery.scored_on("val")
    if os.environ.get("HEADLORA"):
        wrapped = LoRALinear(model.backbone.head)
        model.backbone.head = wrapped
        model.blocks[-1].head_lora = wrapped  # found by lora.lora_layers: in the top group
    before = snapshot(model, gallery)
    tasks = MISSES + [tuple(map(int, t.split(":"))) for t in sys.argv[2:]]
    for variant in sys.argv[1].split(";"):
        cfg = config(variant)
        print(variant or "default", "|",
              " | ".join(run(model, gallery, before, cfg, *t) for t in tasks), flush=True)


if __name__ == "__main__":
    main()
