"""Write checkpoints/README.md, the model card, from the checkpoints' own metadata and the
pretraining history and benchmark results, so every number in it comes from a file.

    python scripts/write_model_card.py
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from safetensors.torch import load_file  # noqa: E402

from gslora_core.model import load_recognizer, read_metadata  # noqa: E402
from pretraining.config import PretrainConfig  # noqa: E402

CK = ROOT / "checkpoints"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def augment_flag(pretrain: dict) -> str:
    """Runs from before ``--augment`` used the first recipe, now ``--augment basic``."""
    return f" --augment {pretrain.get('augment', 'basic')}"


# Knobs every command line gives anyway, or that do not change the backbone a run makes.
GIVEN = {"epochs", "lr", "augment", "device", "keep_every_epoch"}


def other_flags(pretrain: dict) -> str:
    """`` --drop-path 0.1``...: every knob the run set away from today's default. A knob the run
    did not record did not exist yet, and its default is what the run did."""
    flags = []
    for k, default in PretrainConfig().to_dict().items():
        if k in GIVEN or k not in pretrain or pretrain[k] == default:
            continue
        value = f"{pretrain[k]:g}" if isinstance(pretrain[k], float) else str(pretrain[k])
        flags.append(f" --{k.replace('_', '-')} {value}")
    return "".join(flags)


def robustness_section(path: Path, ck: Path = CK) -> str:
    """The robustness table (bench/robustness.py) when it scored the shipped backbone, else ""."""
    if not path.exists():
        return ""
    res = json.loads(path.read_text())
    scored = Path(res.get("backbone") or "")
    scored = scored if scored.is_absolute() else ROOT / scored
    if scored.resolve() != (ck / "backbone.safetensors").resolve():
        return ""  # a candidate's scores, not this backbone's
    sys.path.insert(0, str(ROOT))
    from bench.robustness import markdown

    return (f"- **Robustness** (`python -m bench.robustness`, {res['date']}, {res['machine']}):\n"
            f"  the {res['identities']} held-out gallery people, every picture shifted (enrollment\n"
            "  and test), through MTCNN + alignment; test top-1, the dlib teacher as a\n"
            "  nearest-prototype classifier beside the student:\n\n" + markdown(res) + "\n")


def load_stages(ck: Path) -> list[dict]:
    """The shipped backbone's pretraining runs, first to last: ``backbone_stage1.json``,
    ``backbone_stage2.json``, ... (earlier runs it continues from, ``pretrain --init``), then
    ``backbone.json`` (its own run)."""
    earlier = sorted(ck.glob("backbone_stage*.json"),
                     key=lambda p: int(p.stem.removeprefix("backbone_stage")))
    return [json.loads(p.read_text()) for p in earlier] + [json.loads((ck / "backbone.json").read_text())]


def chosen_epoch(stage: dict) -> int | None:
    """The epoch a run's shipped checkpoint is from when it was its best on validation
    (``<out>.best.safetensors`` keeps the history up to then), else None (its last epoch)."""
    last = stage["history"][-1]["epoch"]
    return last if last < stage["pretrain"]["epochs"] else None


def validated(stage: dict) -> bool:
    """Whether the run kept validation people out and scored them (``--validation``)."""
    return bool(stage.get("validation_identities")) or any("validation" in r for r in stage["history"])


def stage_command(stage: dict, k: int, n_stages: int, model: dict) -> list[str]:
    """Shell lines that rerun stage ``k`` (0-based) into checkpoints/backbone.safetensors."""
    pre = stage["pretrain"]
    head = ("python -m pretraining pretrain --cache /tmp/gslora_cache "
            "--holdout checkpoints/lfw_holdout.json")
    if validated(stage):
        views = stage.get("validation_views", "aligned")
        head += (" \\\n      --validation checkpoints/lfw_validation.json "
                 f"--validation-views {views}")
    if k == 0:
        size = f"--stem {model.get('stem', 'patch')} --width {model['embed_dim']} --depth {model['depth']}"
    else:
        size = "--init checkpoints/backbone.safetensors"
    lines = [f"""{head} \\
      {size} --out checkpoints/backbone.safetensors \\
      --epochs {pre['epochs']} --lr {pre['lr']:g} --threads 1{augment_flag(pre)}{other_flags(pre)}"""]
    epoch = chosen_epoch(stage)
    if epoch is not None:
        lines.append(f"cp checkpoints/backbone.best.safetensors checkpoints/backbone.safetensors  "
                     f"# epoch {epoch}, best on validation")
        lines.append("cp checkpoints/backbone.best.json checkpoints/backbone.json")
    if k < n_stages - 1:  # each run writes its history beside the checkpoint: keep this one's
        lines.append(f"mv checkpoints/backbone.json checkpoints/backbone_stage{k + 1}.json")
    return lines


def recipe(stages: list[dict]) -> str:
    """'16 epochs at lr 0.0005 (basic views), then ...' with how the runs connect."""
    parts = []
    for st in stages:
        pre, epoch = st["pretrain"], chosen_epoch(st)
        kept = f", kept epoch {epoch} (best on validation)" if epoch else ""
        drop = f", stochastic depth {pre['drop_path']:g}" if pre.get("drop_path") else ""
        if pre.get("p_mix"):
            drop += (f", {100 * pre['p_mix']:g} % of each batch mixed faces (blends of two, "
                     f"targets from the teacher on the blend)")
        parts.append(f"{pre['epochs']} epochs at lr {pre['lr']:g} ({pre.get('augment', 'basic')} "
                     f"views{drop}{kept})")
    text = ", then ".join(parts)
    if len(stages) > 1:
        text += "; each run continues from the one before's weights (`--init`)"
    return text


def runs_text(numbers: list[int]) -> str:
    """[1, 2] -> 'runs 1-2', [3] -> 'run 3' (numbers are consecutive here)."""
    if len(numbers) == 1:
        return f"run {numbers[0]}"
    return f"runs {numbers[0]}-{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) \
        else "runs " + ", ".join(map(str, numbers))


def data_text(stages: list[dict]) -> str:
    """How many pictures each run trained on (a run that kept the validation people out has
    fewer)."""
    counts = [st["images"] for st in stages]
    if len(set(counts)) == 1:
        return f"{counts[0]} training pictures"
    groups: dict[int, list[int]] = {}
    for k, c in enumerate(counts, 1):
        groups.setdefault(c, []).append(k)
    return ", ".join(f"{c} training pictures in {runs_text(ks)}" for c, ks in groups.items())


def validation_text(stages: list[dict]) -> str:
    """Where checkpoints were chosen, and whether the validation people were trained on."""
    return textwrap.fill(_validation_text(stages), width=96, subsequent_indent="  ")


def _validation_text(stages: list[dict]) -> str:
    kept = [k for k, st in enumerate(stages, 1) if validated(st)]
    trained = [k for k in range(1, len(stages) + 1) if k not in kept]
    if not kept:
        return ("The validation people of `lfw_validation.json` were chosen after this backbone, "
                "so they are among those pictures: its score on them is flattered (README, \"The "
                "backbone\").")
    views = ("the robustness benchmark's photo shifts"
             if stages[kept[-1] - 1].get("validation_views") == "photo" else "degraded aligned crops")
    if not trained:
        return ("The validation people of `lfw_validation.json` were kept out too (every run); "
                f"checkpoints were chosen on their mean verification over {views}.")
    chose = "its checkpoint" if len(kept) == 1 else "their checkpoints"
    return (f"The validation people of `lfw_validation.json` are among the pictures of "
            f"{runs_text(trained)} (they were chosen after them); {runs_text(kept)} kept them out "
            f"and chose {chose} on their mean verification over {views}, a score that "
            f"{runs_text(trained)} flatter (README, \"The backbone\").")


def threshold_line(meta: dict) -> str:
    """The recognizer's open-set threshold as its checkpoint stores it (a line of the card)."""
    t = meta.get("open_set")
    if not t:
        return ""
    return (f"- **Open-set threshold** (\"not recognized\" below it) {t['tau']:.3f}: keeps "
            f"{100 * t['keep']:.0f} % of the correct answers on its {t['pictures']} held-back "
            f"{t['part']} pictures; a picture scored against everyone but its own person clears it "
            f"{100 * t['false_accept']:.1f} % of the time (fixed with `python -m gslora_core "
            f"threshold --checkpoint checkpoints/sample_recognizer.safetensors --gallery "
            f"assets/sample_gallery`; `enroll` fixes it itself).\n")


def states_line(ck: Path) -> str:
    """The sample's kept states (a line of the card), when they ship."""
    path = ck / "sample_recognizer.states.safetensors"
    if not path.exists():
        return ""
    return (f"- **Kept states** (`{path.name}`, {path.stat().st_size / 1024:.0f} KB): every "
            f"sample picture's state at the top block's MLP input, both views, so the page and "
            f"the first `forget` start without measuring the gallery; used only while they fit "
            f"these weights and pictures, pixel for pixel. They were measured on the crops that "
            f"ship beside the sample (`assets/sample_gallery_crops/`, "
            f"`scripts/ship_sample_crops.py`), which the sample loads instead of aligning with "
            f"MTCNN (whose crops differ by a grey level in a few pixels with the torch thread "
            f"count), so they fit on any machine; where they do not, the gallery is measured as "
            f"before, about 4 s (made with "
            f"`python -m gslora_core evaluate --checkpoint "
            f"checkpoints/sample_recognizer.safetensors --gallery assets/sample_gallery "
            f"--keep-states`; `enroll` and `forget` keep them themselves).\n")


def dlib_section(ck: Path) -> str:
    """dlib's network as shipped (the hybrid's trunk and its teacher)."""
    path = ck / "dlib_resnet.safetensors"
    if not path.exists():
        return ""
    params = sum(v.numel() for v in load_file(str(path)).values())
    return f"""## `dlib_resnet.safetensors`: dlib's face-recognition network, ported

- **What**: `dlib_face_recognition_resnet_model_v1.dat` by Davis King (dlib), released into the
  **public domain (CC0)**; read from the PyPI source archive `face-recognition-models==0.3.0`
  and converted with numpy by `python -m pretraining.dlib_dat` (no C++); {params / 1e6:.2f} M
  weights ({path.stat().st_size / 2**20:.1f} MB), run by `gslora_core/dlib_resnet.py` (the
  network of dlib's `dnn_face_recognition_ex.cpp`: a 150 px RGB chip, a 29-convolution ResNet,
  a 128-d descriptor); dlib reports 99.38 % for it on LFW's standard protocol.
- **Exactness**: its descriptors equal dlib's own (`face_recognition_model_v1`) to 3.6e-7 on 57
  LFW chips; `tests/test_dlib_resnet.py` checks stored chips everywhere and dlib itself where
  `pretraining/requirements.txt` is installed.
- **Used as**: the hybrid backbone's frozen trunk (stored once here; every recognizer file names
  it by a digest instead of holding it, an export holds it), and whole as the distillation's
  teacher.

"""


def hybrid_backbone_section(ck: Path, backbone: dict, history: dict, bench: dict,
                            held: list[str], robust: str) -> str:
    """The hybrid backbone (dlib's trunk under transformer blocks)."""
    m, h = backbone["model"], history["hybrid"]
    model = load_recognizer(ck / "backbone.safetensors")
    trainable = sum(p.numel() for p in model.parameters())
    trunk = sum(b.numel() for b in model.trunk.buffers())
    grid = {3: "128x8x8, 64 tokens", 4: "256x4x4, 16 tokens"}[m["trunk_levels"]]
    kept = history.get("kept_epoch", history["history"][-1]["epoch"])
    best = next(r for r in history["history"] if r["epoch"] == kept)["validation"]
    minutes = history["history"][-1]["seconds"] / 60
    ver = bench["verification"]
    flags = "".join(f" --{k.replace('_', '-')} {v:g}" if isinstance(v, float) else
                    f" --{k.replace('_', '-')} {v}"
                    for k, v in h.items() if k in ("trunk_levels", "epochs", "lr", "p_clean"))
    return f"""## `backbone.safetensors`: the hybrid Face Transformer backbone

- **Architecture**: ViT's *hybrid* design (Dosovitskiy et al. 2021: a CNN feature map as the
  patch embedding). dlib's face ResNet (`dlib_resnet.safetensors`), **frozen**, up to its level
  {m['trunk_levels']} ({grid}); each cell linearly projected to width {m['embed_dim']}; a class
  token and learned position embeddings; {m['depth']} pre-norm timm blocks ({m['num_heads']}
  heads, MLP ratio {m['mlp_ratio']:g}); LayerNorm on the class token, then a linear map to the
  {m['out_dim']}-d embedding. {trainable / 1e6:.2f} M trainable weights; the trunk's
  {trunk / 1e6:.2f} M are dlib's, never trained. GS-LoRA's groups sit on the blocks' MLPs, as
  in the paper. Preprocessing: MTCNN detection + 5-point similarity alignment to dlib's 150 px
  chip (`alignment.TEMPLATE_DLIB_150`).
- **What the blocks learned, from what**: dlib's own 128-d descriptor (centred on its mean) of
  the very view the student sees: the blocks replace dlib's levels above the cut, its pooling
  and its last layer. Data: LFW deep-funneled minus the {len(held)} held-out test identities
  (`lfw_holdout.json`) and minus the {history['validation_identities']} validation people of
  `lfw_validation.json` (scored after every epoch; the kept epoch is the best there):
  {history['images']} pictures, 8 views each (the chip, its mirror image and 6 robust views:
  framing, angle, resolution, blur, colour, greyscale, JPEG, tight crops).
- **Recipe**: loss 1 - cos(student, centred descriptor) plus the gap between the batch's cosine
  matrices; AdamW, {h['epochs']} epochs at lr {h['lr']:g} (warm-up {h['warmup_epochs']},
  cosine), batch {h['batch_size']}, weight decay {h['weight_decay']:g}, {100 * h['p_clean']:g} %
  clean views; kept epoch {kept}; {minutes:.0f} min on 2 CPU cores once the feature bank is built.
  On the validation people at that epoch: cosine to dlib's centred descriptor
  {best['cos_clean']:.3f} (clean) and {best['cos_robust']:.3f} (robust views), pair
  verification {pct(best['pairs'])} (dlib's own on the same pairs {pct(best['teacher_pairs'])}).
- **Command** (about 25 min for the data, then the run):
  ```bash
  pip install -r pretraining/requirements.txt   # face-recognition-models: dlib's .dat
  python -m pretraining.dlib_dat --out checkpoints/dlib_resnet.safetensors
  python scripts/build_landmarks.py              # every MTCNN face of LFW, ~5 min
  python -m pretraining.chips                    # dlib chips, the app's face rule, ~30 s
  python -m pretraining hybrid-bank              # trunk maps + descriptors, 8 views, ~10 min
  python -m pretraining hybrid --out checkpoints/backbone.safetensors --threads 2{flags}
  cp checkpoints/backbone.best.safetensors checkpoints/backbone.safetensors  # epoch {kept}
  cp checkpoints/backbone.best.json checkpoints/backbone.json
  ```
- **Scores** (`python -m bench.backbone`, {bench['date']}, {bench['machine']}):
  verification on {ver['pairs']} pairs of {ver['identities']} held-out identities (10-fold
  threshold, embeddings averaged with the mirror image): **{pct(ver['accuracy'])}** ±
  {100 * ver['std']:.1f}{teacher_pairs(bench)}.

{robust}
```json
{json.dumps(m, indent=1)}
```

"""


def teacher_pairs(bench: dict) -> str:
    t = bench.get("verification_dlib")
    return "" if not t else (f"; dlib's network on the same chips and pairs "
                             f"{pct(t['accuracy'])} ± {100 * t['std']:.1f}")


def vit_backbone_section(ck: Path, backbone: dict, stages: list[dict], bench: dict,
                         held: list[str], robust: str) -> str:
    """The pixel-distilled ViT backbone (the runs of ``pretraining pretrain``)."""
    history = stages[-1]
    last = history["history"][-1]
    minutes = sum(st["history"][-1]["seconds"] for st in stages) / 60
    schedule = recipe(stages)
    commands = [line for k, st in enumerate(stages)
                for line in stage_command(st, k, len(stages), backbone["model"])]
    ver = bench["verification"]
    m = backbone["model"]
    stem = (", with a small convolutional stem (stride-2 3x3 convs) instead of one patchify conv"
            if m.get("stem") == "conv" else "")
    params = sum(p.numel() for p in load_recognizer(ck / "backbone.safetensors").parameters())
    nl = "\n  "
    return f"""## `backbone.safetensors`: the Face Transformer backbone

- **Architecture**: timm `VisionTransformer` ({m['img_size']} px, patch {m['patch_size']}, width
  {m['embed_dim']}, depth {m['depth']}, {m['num_heads']} heads{stem}), CLS-token embedding
  (LayerNorm'd), no classes; {params / 1e6:.2f} M parameters.
  Preprocessing: MTCNN detection + 5-point similarity alignment to the ArcFace 112x112 template.
- **Data**: LFW deep-funneled (`../shared/datasets/lfw-deepfunneled`), every picture with a face
  and a teacher embedding, **minus {len(held)} held-out identities** (`lfw_holdout.json`: the
  sample gallery's 20, the unseen gallery's 20, and 150 identities with 2-14 pictures for
  verification pairs): {data_text(stages)}.
  {validation_text(stages)}
- **Recipe**: distillation of the dlib ResNet face model (PyPI `dlib-bin` +
  `face-recognition-models`, at pretraining time only) into the ViT: loss 1 - cos(student,
  centred teacher) plus the gap between the batch's student and teacher cosine matrices
  (`pretraining/pretrain.py`). AdamW, {schedule}, batch
  {history['pretrain']['batch_size']} (warm-up
  {history['pretrain']['warmup_epochs']} epoch, cosine, in each run), weight decay
  {history['pretrain']['weight_decay']:g} (views: basic = flip/scale/shift/brightness/contrast;
  robust adds framing, resolution, blur, colour, greyscale, JPEG, tight crops);
  {minutes:.0f} min wall time on one CPU core up to the kept checkpoints (2-core machine,
  sharing it with other jobs).
- **Command**:
  ```bash
  pip install -r pretraining/requirements.txt
  python scripts/build_face_cache.py --out /tmp/gslora_cache      # MTCNN + dlib, ~35 min
  {nl.join(commands)}
  ```
- **Scores** (`python -m bench.backbone`, {bench['date']}, {bench['machine']}):
  verification on {ver['pairs']} pairs of {ver['identities']} held-out identities (10-fold
  threshold, embeddings averaged with the mirror image): **{pct(ver['accuracy'])}** ±
  {100 * ver['std']:.1f}. Final training loss
  {last['loss']:.4f}.

{robust}
```json
{json.dumps(backbone['model'], indent=1)}
```

"""


def main(ck: Path = CK, out: Path | None = None) -> str:
    backbone = read_metadata(ck / "backbone.safetensors")
    sample = read_metadata(ck / "sample_recognizer.safetensors")
    stages = load_stages(ck)
    history = stages[-1]
    bench = json.loads((ROOT / "bench" / "results" / "backbone.json").read_text())
    hold = json.loads((ck / "lfw_holdout.json").read_text())
    sg, ug = bench["sample_gallery"], bench["unseen_gallery"]
    m = backbone["model"]
    held = sorted({n for v in hold.values() if isinstance(v, list) for n in v})
    robust = robustness_section(ROOT / "bench" / "results" / "robustness.json", ck)
    split = sample["data"].get("split", "rank")  # checkpoints before the split knob used rank
    if m.get("stem") == "dlib":
        backbone_text = dlib_section(ck) + hybrid_backbone_section(ck, backbone, history, bench,
                                                                   held, robust)
    else:
        backbone_text = vit_backbone_section(ck, backbone, stages, bench, held, robust)
    card = f"""# Model card: GS-LoRA Forgetting Studio checkpoints

Generated by `python scripts/write_model_card.py` from the files it describes.

{backbone_text}## `sample_recognizer.safetensors`: the recognizer the app starts with

- The backbone plus a CosFace head over the {len(sample['class_names'])} identities of
  `assets/sample_gallery` (15 LFW pictures each, none seen in pretraining), enrolled with
  `python -m gslora_core enroll --backbone checkpoints/backbone.safetensors --gallery
  assets/sample_gallery --split {split} --out checkpoints/sample_recognizer.safetensors`
  (`--split rank`: the split written before the hash split existed, which the stored results use).
- **Test top-1** on the gallery's held-back test split ({sg['test']} pictures): **{pct(sg['test_top1'])}**.
  The same recipe on 20 other unseen identities: **{pct(ug['test_top1'])}**.
- Enrolling the 300-picture gallery takes {sg['total_seconds']:.0f} s on this CPU
  ({sg['align_seconds']:.0f} s alignment at {sg['align_images_per_second']:.1f} pictures/s,
  {sg['train_seconds']:.0f} s training).
{threshold_line(sample)}{states_line(ck)}
```json
{json.dumps(sample['model'], indent=1)}
```

## Limits

LFW is mostly frontal press photos of public figures, skewed to adult, male and light-skinned
faces; accuracy elsewhere is unmeasured. This is a teaching demo of machine unlearning, not an
identification system.
"""
    out = out or ck / "README.md"
    out.write_text(card)
    print(f"wrote {out}")
    return card


if __name__ == "__main__":
    main()
