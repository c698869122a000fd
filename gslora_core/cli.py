"""Command line: ``python -m gslora_core {enroll,forget,evaluate,inspect,predict,threshold,
rollback,export,report}`` (the backbone's distillation: ``python -m pretraining``).

Everything the app does goes through these same functions, so every number on screen can be
reproduced here. ``forget`` on its own output is the next continual task.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from .config import (
    PREPROCESS,
    PRESETS,
    DataConfig,
    ForgetConfig,
    ModelConfig,
    TrainConfig,
    preset,
)
from .data import load_gallery, load_gallery_for
from .evaluation import evaluate, keep_snapshot, kept_snapshot, read_report, snapshot
from .forgetting import forget, plan_task, rollback
from .model import Recognizer, load_recognizer, merged_copy, resolve_device, save_recognizer
from .report import without_curve
from .states import carry_kept, states_path
from .threads import free_cores, machine_load
from .training import from_backbone, train_recognizer

MODEL_SIZES = {"default": ModelConfig(), "paper": ModelConfig.paper(), "small": ModelConfig.small(),
               "tiny": ModelConfig.tiny()}


def print_json(data: dict, path: str | None) -> None:
    """Print a command's JSON answer, and write it to ``path`` too when given."""
    text = json.dumps(data, indent=2)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    print(text)


def _gallery_for(model: Recognizer, folder: str):
    return load_gallery_for(model, folder)


def cmd_enroll(a: argparse.Namespace) -> int:
    backbone = load_recognizer(a.backbone, resolve_device(a.device)) if a.backbone else None
    mcfg = backbone.cfg if backbone else MODEL_SIZES[a.model_size]
    preprocess = a.preprocess or (backbone.data_config.preprocess if backbone else "center")
    dcfg = DataConfig(preprocess=preprocess, max_per_identity=a.max_per_identity,
                      test_fraction=a.test_fraction, val_fraction=a.val_fraction,
                      min_images=a.min_images, split=a.split)
    gallery = load_gallery(a.gallery, mcfg.img_size, dcfg, template=mcfg.face_template)
    if len(gallery.names) < 2:
        raise ValueError(f"need at least 2 identities with {dcfg.min_images}+ usable pictures; "
                         f"found {len(gallery.names)} in {a.gallery}")
    base = TrainConfig.from_backbone() if backbone else TrainConfig()
    tcfg = replace(base, seed=a.seed, device=a.device, **{
        k: v for k, v in (("epochs", a.epochs), ("lr", a.lr), ("batch_size", a.batch_size))
        if v is not None})
    model = (from_backbone(backbone, gallery, dcfg) if backbone
             else Recognizer(mcfg, gallery.names, dcfg))
    def progress(p: dict) -> None:
        if p.get("epoch_end"):
            print(f"epoch {p['epoch']}/{p['epochs']} loss {p['loss']:.3f}", file=sys.stderr)
    report = train_recognizer(model, gallery, tcfg, on_progress=progress)
    save_recognizer(model, a.out)
    # Measured once here and kept beside the checkpoint: the first forget starts from it.
    kept = keep_snapshot(states_path(a.out), snapshot(model, gallery), model, gallery)
    report.update(checkpoint=str(a.out), states=str(kept), backbone=a.backbone, identities=len(gallery.names),
                  counts=gallery.summary(), rejected=gallery.rejected, excluded=gallery.excluded,
                  notes=gallery.notes)
    print_json(report, a.report)
    return 0


KNOB_TYPES = {"int": int, "float": float, "str": str, "int | None": int}


def add_knob_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """One flag per knob of ``config`` (see ``config.knob``), with the knob's own help text:
    ``--rank 4``; a switch gets ``--<name>`` (off by default) or ``--no-<name>`` (on by
    default). A flag left out keeps the preset's value."""
    for f in fields(config):
        if "help" not in f.metadata:
            continue
        flag = f.name.replace("_", "-")
        if f.type == "bool" and f.default:
            parser.add_argument(f"--no-{flag}", dest=f.name, action="store_false", default=None,
                                help=f"turn off: {f.metadata['help']}")
        elif f.type == "bool":
            parser.add_argument(f"--{flag}", dest=f.name, action="store_true", default=None,
                                help=f.metadata["help"])
        else:
            parser.add_argument(f"--{flag}", dest=f.name, type=KNOB_TYPES[f.type], default=None,
                                help=f"{f.metadata['help']} (default {f.default})")


def knob_overrides(pairs: list[str], config: type = ForgetConfig, flag: str = "--set") -> dict:
    """``["bnd=60", "unknown=on"]`` -> overrides of ``config``'s knobs, typed as the knobs are
    (for a benchmark's ``--set``: choosing a recipe on validation pictures). SystemExit names
    a pair that is not NAME=VALUE with a knob of ``config``."""
    types = {f.name: KNOB_TYPES[f.type] for f in fields(config) if f.type in KNOB_TYPES}
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in types or not value:
            raise SystemExit(f"error: {flag} {pair!r}: give NAME=VALUE with a "
                             f"{config.__name__} knob")
        out[key] = types[key](value)
    return out


def config_from_args(base: Any, a: argparse.Namespace) -> Any:
    """``base`` (a knob dataclass) with every knob given on the command line."""
    names = {f.name for f in fields(base)}
    return replace(base, **{k: v for k, v in vars(a).items() if k in names and v is not None})


def forget_config_from_args(a: argparse.Namespace) -> ForgetConfig:
    """The preset, overridden by every hyper-parameter given on the command line."""
    names = {f.name for f in fields(ForgetConfig)}
    return preset(a.preset).with_overrides(
        **{k: v for k, v in vars(a).items() if k in names and v is not None})


def cmd_forget(a: argparse.Namespace) -> int:
    cfg = forget_config_from_args(a)
    device = resolve_device(cfg.device)
    model = load_recognizer(a.checkpoint, device)
    gallery = _gallery_for(model, a.gallery)

    def progress(p: dict[str, Any]) -> None:
        if "acc_r" in p or "pictures_left" in p:
            left = (f" still recognized {p['recognized_left']}/{p['people']} (not past the "
                    f"margin: {p['people_left']})" if "people_left" in p else "")
            acc = f" Acc_r {p['acc_r']:.3f} Acc_f {p['acc_f']:.3f}" if "acc_r" in p else ""
            released = f" released block {p['released'] + 1}" if "released" in p else ""
            eased = f" BND eased to {p['eased']:g}" if "eased" in p else ""
            print(f"step {p['step']} (cap {p['steps']}) loss {p['loss']:.3f}{left}{acc} "
                  f"blocks {p.get('blocks', '-')}{released}{eased}", file=sys.stderr)

    # The states the previous command kept (enroll's, or the previous task's "after"): the
    # task's "before" then costs the top block only.
    before = kept_snapshot(states_path(a.checkpoint), model, gallery)
    plan = plan_task(model, gallery, a.forget)
    result = forget(model, gallery, plan, cfg, before=before, on_progress=progress)
    report = result.report
    save_recognizer(model, a.out)
    kept = keep_snapshot(states_path(a.out), result.after, model, gallery) if result.after else None
    report["checkpoint"], report["states"] = str(a.out), str(kept) if kept else None
    if a.report:
        Path(a.report).parent.mkdir(parents=True, exist_ok=True)
        Path(a.report).write_text(json.dumps(report, indent=2) + "\n")
    print_json(without_curve(report), None)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    model = load_recognizer(a.checkpoint, resolve_device(a.device))
    gallery = _gallery_for(model, a.gallery)
    path = states_path(a.checkpoint)
    snap = kept_snapshot(path, model, gallery)
    if snap is None and a.keep_states:  # measure the training pictures too, and keep them
        snap = snapshot(model, gallery)
        keep_snapshot(path, snap, model, gallery)
    print_json(evaluate(model, gallery, snap), a.report)
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    """delete vs GS-LoRA (vs retrain) on the people the checkpoint forgot; embedding map."""
    from . import probes

    model = load_recognizer(a.checkpoint, resolve_device(a.device))
    gallery = _gallery_for(model, a.gallery)
    retrained = None
    if a.retrain:
        backbone = load_recognizer(a.backbone, resolve_device(a.device))
        retrained = probes.retrain_without(backbone, gallery, model.forgotten(),
                                           data_config=model.data_config)
    rows = probes.compare(model, gallery, a.gslora_seconds, retrained, a.shots)
    out: dict[str, Any] = {"forgotten": model.forgotten(), "methods": rows}
    if a.map:
        out["embedding_map"] = probes.embedding_map(probes.untouched_copy(model), model, gallery,
                                                    model.forgotten())
    print_json(out, a.report)
    return 0


def cmd_rollback(a: argparse.Namespace) -> int:
    model = load_recognizer(a.checkpoint)
    name = rollback(model)
    save_recognizer(model, a.out)
    carry_kept(a.checkpoint, a.out, model)
    print_json({"rolled_back": name, "checkpoint": str(a.out),
                "remaining_tasks": [t.name for t in model.tasks]}, None)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    model = merged_copy(load_recognizer(a.checkpoint))
    save_recognizer(model, a.out, standalone=True)  # a file to take away: the trunk inside
    carry_kept(a.checkpoint, a.out, model)
    print_json({"exported": str(a.out), "merged": [t.name for t in model.tasks if t.merged],
                "gated": [t.name for t in model.gated_tasks]}, None)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from .inference import top_k

    model = load_recognizer(a.checkpoint, resolve_device(a.device))
    out = []
    for photo in a.photo:
        result = top_k(model, photo, k=a.k)
        result.pop("crop")
        out.append({"photo": photo, **result})
    print_json({"forgotten": model.forgotten(), "predictions": out}, a.report)
    return 0


def cmd_threshold(a: argparse.Namespace) -> int:
    """Fix a recognizer's open-set threshold on its gallery (enroll does it already; this is
    for checkpoints written before thresholds existed, or another ``--keep``)."""
    from .training import fix_threshold

    model = load_recognizer(a.checkpoint, resolve_device(a.device))
    if model.tasks:
        raise ValueError("fix the threshold before any forgetting (on the recognizer as enrolled)")
    threshold = fix_threshold(model, _gallery_for(model, a.gallery), a.keep)
    save_recognizer(model, a.out or a.checkpoint)
    carry_kept(a.checkpoint, a.out or a.checkpoint, model)
    print_json({"checkpoint": str(a.out or a.checkpoint), **threshold.to_dict()}, None)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import to_markdown

    reports = []
    for path in a.json:
        data = json.loads(Path(path).read_text())
        tasks = data["tasks"] if "tasks" in data else [data]  # app export or forget --report
        reports += [read_report(t) for t in tasks]  # older files' keys in today's words
    text = to_markdown(reports)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gslora_core",
                                description="GS-LoRA continual forgetting for face recognition.")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0 = the cores the machine's load leaves free, at "
                        "least 1: on a busy machine extra threads only wait; "
                        "bench/results/threads.json)")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_enroll, _add_forget, _add_measuring, _add_checkpoint_tools):
        add(sub)
    return p


def _add_enroll(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("enroll", help="train a recognizer on a gallery folder (one folder per identity)")
    e.add_argument("--gallery", required=True,
                   help="folder with one sub-folder per identity, or a .zip of such folders")
    e.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    e.add_argument("--backbone", help="pretrained backbone (.safetensors); without it, from scratch")
    e.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="default",
                   help="from scratch only (a backbone brings its own size)")
    e.add_argument("--preprocess", choices=list(PREPROCESS), default=None,
                   help="what the pictures show: mtcnn (faces, aligned), center (faces already "
                        "aligned), whole (object classes: the whole picture, no face looked "
                        "for); default: the backbone's, center from scratch")
    e.add_argument("--max-per-identity", type=int, default=None)
    e.add_argument("--test-fraction", type=float, default=DataConfig.test_fraction,
                   help="share of each person's pictures held back for test")
    e.add_argument("--val-fraction", type=float, default=DataConfig.val_fraction,
                   help="share held back for validation (choosing recipes), never trained on")
    e.add_argument("--min-images", type=int, default=DataConfig.min_images)
    e.add_argument("--split", choices=["hash", "rank"], default=DataConfig.split,
                   help="hash (default): each picture's part fixed by its file name; rank: the first "
                        "checkpoints' rule (to re-enroll one of them on the same test pictures)")
    e.add_argument("--epochs", type=int, default=None,
                   help=f"default {TrainConfig.from_backbone().epochs} on a backbone, "
                        f"{TrainConfig.epochs} from scratch")
    e.add_argument("--lr", type=float, default=None)
    e.add_argument("--batch-size", type=int, default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")
    e.add_argument("--report", help="also write the JSON report here")
    e.set_defaults(func=cmd_enroll)


def _add_forget(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("forget", help="run one GS-LoRA forgetting task (again on its output = next task)")
    f.add_argument("--checkpoint", required=True, help="recognizer checkpoint (.safetensors)")
    f.add_argument("--gallery", required=True, help="the recognizer's gallery folder")
    f.add_argument("--forget", nargs="+", required=True, metavar="NAME", help="identities to forget")
    f.add_argument("--out", required=True, help="output checkpoint with the new task's adapters")
    f.add_argument("--report", help="write the full JSON report (with the loss curve) here")
    f.add_argument("--preset", choices=sorted(PRESETS), default="fast")
    add_knob_flags(f, ForgetConfig)
    f.set_defaults(func=cmd_forget)


def _add_measuring(sub: argparse._SubParsersAction) -> None:
    """evaluate, inspect (is the person gone?) and threshold (the open-set operating point)."""
    v = sub.add_parser("evaluate", help="accuracy per identity on the gallery's test split")
    v.add_argument("--checkpoint", required=True)
    v.add_argument("--gallery", required=True)
    v.add_argument("--device", default="auto")
    v.add_argument("--report", help="also write the JSON report here")
    v.add_argument("--keep-states", action="store_true",
                   help="also measure the training pictures and keep every picture's top-block "
                        "states beside the checkpoint (x.states.safetensors), so the next forget "
                        "does not measure the gallery again (enroll and forget keep them already)")
    v.set_defaults(func=cmd_evaluate)

    i = sub.add_parser("inspect", help="is the forgotten person gone from the model? delete vs "
                                       "GS-LoRA (vs retrain): still recognizable, relearning, map")
    i.add_argument("--checkpoint", required=True, help="a checkpoint after forgetting (un-merged)")
    i.add_argument("--gallery", required=True)
    i.add_argument("--retrain", action="store_true",
                   help="also enroll again from --backbone without the forgotten people")
    i.add_argument("--backbone", default="checkpoints/backbone.safetensors")
    i.add_argument("--shots", nargs="+", type=int, default=[1, 2, 4],
                   help="pictures per forgotten person in the relearning test")
    i.add_argument("--gslora-seconds", type=float, help="the task's time, shown in the table")
    i.add_argument("--map", action="store_true", help="also the 2-D embedding map's points")
    i.add_argument("--device", default="auto")
    i.add_argument("--report", help="also write the JSON here")
    i.set_defaults(func=cmd_inspect)


def _add_checkpoint_tools(sub: argparse._SubParsersAction) -> None:
    """predict, rollback, export and report: what one does with a checkpoint afterwards."""
    q = sub.add_parser("predict", help="top-k identities for photos (aligned like the gallery)")
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--photo", nargs="+", required=True, help="one or more image files")
    q.add_argument("--k", type=int, default=5)
    q.add_argument("--device", default="auto")
    q.add_argument("--report", help="also write the JSON here")
    q.set_defaults(func=cmd_predict)

    h = sub.add_parser("threshold", help="fix a recognizer's open-set threshold (\"not "
                                         "recognized\" below it) on its gallery")
    h.add_argument("--checkpoint", required=True, help="an enrolled recognizer, before forgetting")
    h.add_argument("--gallery", required=True)
    h.add_argument("--keep", type=float, default=TrainConfig.open_set_keep,
                   help="share of correct answers on held-back pictures the threshold keeps")
    h.add_argument("--out", help="write here (default: update --checkpoint in place)")
    h.add_argument("--device", default="auto")
    h.set_defaults(func=cmd_threshold)

    r = sub.add_parser("rollback", help="remove the last forgetting task")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--out", required=True)
    r.set_defaults(func=cmd_rollback)

    x = sub.add_parser("export", help="fold every ungated task into plain weights (a gated "
                                           "task stays an adapter with its gate)")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True)
    x.set_defaults(func=cmd_export)
    m = sub.add_parser("report", help="Markdown report from forget --report JSON files (or the "
                                      "app's exported JSON), as the app exports it")
    m.add_argument("--json", nargs="+", required=True, help="JSON reports, in task order")
    m.add_argument("--out", help="write the Markdown here too")
    m.set_defaults(func=cmd_report)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads if args.threads > 0 else free_cores(machine_load()))
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2

