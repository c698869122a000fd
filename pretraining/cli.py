"""Command line of the backbone's distillation: ``python -m pretraining {pretrain,average}``.

Research code, kept apart from the engine: the app and ``gslora_core`` never import it. It
builds ``checkpoints/backbone.safetensors`` (see checkpoints/README.md for the exact runs).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from gslora_core.cli import MODEL_SIZES, add_knob_flags, config_from_args, print_json
from gslora_core.model import load_recognizer, save_recognizer

from .config import HybridConfig, PretrainConfig


def read_holdout(path: str | None) -> set[str]:
    """Identity names kept out of pretraining: every name list in a JSON object (or a list)."""
    if not path:
        return set()
    data = json.loads(Path(path).read_text())
    lists = data.values() if isinstance(data, dict) else [data]
    return {n for v in lists if isinstance(v, list) for n in v}


def photo_views_of(a: argparse.Namespace, held) -> dict | None:
    """The validation people's benchmark-shift views (built once into the cache), or None for
    the aligned stand-ins (``--validation-views aligned``)."""
    if a.validation_views != "photo":
        return None
    from .facecache import shifted_views

    try:
        return shifted_views(a.cache, set(held.identities))
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None


def cmd_pretrain(a: argparse.Namespace) -> int:
    import torch

    from .facecache import load_face_cache
    from .pretrain import deepened, pretrain, split_holdout

    cfg = config_from_args(PretrainConfig(), a)  # a bad knob fails before the cache is read
    if (cfg.p_bank > 0) != bool(a.mix_bank):
        raise SystemExit("error: --p-bank and --mix-bank go together")
    if a.threads:
        torch.set_num_threads(a.threads)
    # Held-out test people are dropped, never scored here: checkpoints are chosen on the
    # validation people (also kept out of training) so the benchmarks stay honest.
    data, _ = split_holdout(load_face_cache(a.cache), read_holdout(a.holdout))
    data, held = split_holdout(data, read_holdout(a.validation))
    print(f"{len(data.images)} training faces ({'with' if data.wide is not None else 'no'} wide "
          f"crops), {len(held.images)} validation faces ({len(set(held.identities))} identities)",
          file=sys.stderr, flush=True)
    bank = None
    if a.mix_bank:  # before the validation views: a wrong bank fails in seconds
        from .mixbank import load_mix_bank

        try:
            bank = load_mix_bank(a.mix_bank, set(data.identities))
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        print(f"mix bank: {len(bank.images)} teacher-labelled blends", file=sys.stderr, flush=True)

    def progress(row: dict) -> None:
        val = row.get("validation", {})
        views = " ".join(f"{k} {v:.3f}" for k, v in val.get("views", {}).items())
        print(f"epoch {row['epoch']}/{cfg.epochs} loss {row['loss']:.4f} point {row['point']:.4f} "
              f"relation {row['relation']:.4f} validation {val.get('score', float('nan')):.4f} "
              f"[{views}] ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    init = load_recognizer(a.init) if a.init else None
    if init is not None and a.width and a.width != init.cfg.embed_dim:
        raise SystemExit("error: --width cannot change an --init backbone (only --depth grows it)")
    if init is not None and a.depth and a.depth != init.cfg.depth:
        init = deepened(init, a.depth)  # new blocks start as the identity
    size = MODEL_SIZES[a.model_size]
    mcfg = init.cfg if init else replace(size, stem=a.stem).sized(a.width, a.depth)
    has_held = len(held.images) > 0
    photo = photo_views_of(a, held) if has_held else None
    teacher = None
    if cfg.p_mix > 0:  # the blends' targets: the teacher runs during training (lazy import)
        from .teacher import DlibTeacher

        try:
            teacher = DlibTeacher().embed_aligned
        except ImportError as e:
            raise SystemExit(f"error: --p-mix {cfg.p_mix}: {e}") from None
    _, report = pretrain(data, held if has_held else None, mcfg, cfg, out=a.out,
                         on_progress=progress, init=init, resume=a.resume, photo_views=photo,
                         teacher=teacher, bank=bank)
    report["checkpoint"] = str(a.out)
    print_json(report, a.report)
    return 0


def cmd_average(a: argparse.Namespace) -> int:
    """Average backbone checkpoints; with a cache and validation people, score each and the mean."""
    import torch

    from .pretrain import average_backbones, split_holdout, validation_set, verification_scores

    if a.threads:
        torch.set_num_threads(a.threads)
    models = [load_recognizer(c) for c in a.checkpoints]
    avg = average_backbones(models)
    out = save_recognizer(avg, a.out)
    report: dict[str, Any] = {"checkpoint": str(out), "averaged": list(a.checkpoints)}
    if a.cache and a.validation:
        from .facecache import load_face_cache

        _, held = split_holdout(load_face_cache(a.cache), read_holdout(a.validation))
        if len(set(held.identities)) < 2:
            raise SystemExit("error: the validation people are not in the cache")
        views, pairs = validation_set(held, avg.cfg.img_size, photo_views=photo_views_of(a, held))
        report["validation"] = {c: verification_scores(m, views, pairs)["score"]
                                for c, m in zip(a.checkpoints, models)}
        report["validation"]["average"] = verification_scores(avg, views, pairs)["score"]
        report["validation_views"] = a.validation_views
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print_json(report, None)
    return 0


def cmd_hybrid_bank(a: argparse.Namespace) -> int:
    from .hybrid import build_bank

    build_bank(Path(a.chips), Path(a.out), read_holdout(a.holdout), a.views, a.seed, a.workers,
               log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


def cmd_hybrid(a: argparse.Namespace) -> int:
    import torch

    from .config import HybridConfig
    from .hybrid import distill, load_bank

    cfg = config_from_args(HybridConfig(), a)
    if a.threads:
        torch.set_num_threads(a.threads)
    bank = load_bank(a.bank, cfg.trunk_levels)
    report = distill(bank, read_holdout(a.validation), cfg, a.out, resume=a.resume,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    print_json({k: v for k, v in report.items() if k != "history"}, a.report)
    return 0


def add_validation_views(p: argparse.ArgumentParser) -> None:
    p.add_argument("--validation-views", choices=["photo", "aligned"], default="photo",
                   help="photo: the validation people's photos under bench/robustness.py's shifts, "
                        "through MTCNN (built once into the cache, ~2 min); aligned: cheap "
                        "stand-ins on the aligned crops (how runs before 2026-11-25 chose)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretraining",
                                description="Distil the face backbone from a teacher (research).")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("pretrain", help="train the backbone by distilling a teacher (needs a face cache)")
    t.add_argument("--cache", required=True, help="face cache folder (scripts/build_face_cache.py)")
    t.add_argument("--out", required=True, help="output backbone (.safetensors), saved every epoch")
    t.add_argument("--holdout",
                   help="JSON of identity names kept out of training (test people: not scored here)")
    t.add_argument("--validation", help="JSON of identity names kept out of training and scored after "
                   "every epoch to choose <out>.best.safetensors (checkpoints/lfw_validation.json)")
    add_validation_views(t)
    t.add_argument("--resume", action="store_true",
                   help="continue <out>'s run from <out>.state.pt (same schedule and optimiser)")
    t.add_argument("--width", type=int, default=0, help="embedding width (0: the size's)")
    t.add_argument("--depth", type=int, default=0, help="transformer blocks (0: the size's); with "
                   "--init, more than its blocks appends new ones that start as the identity")
    t.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="default")
    t.add_argument("--init", help="continue from this backbone (its size and stem are kept)")
    t.add_argument("--stem", choices=["patch", "conv"], default="conv",
                   help="conv (default, the shipped backbone's): small conv stem, trains faster; "
                        "patch: one patchify conv, as in the paper")
    t.add_argument("--mix-bank", help="mix bank folder (scripts/build_mix_bank.py, built with the "
                   "same --holdout and --validation) that --p-bank draws teacher-labelled blends from")
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    add_knob_flags(t, PretrainConfig)
    t.add_argument("--report", help="also write the JSON report here")
    t.set_defaults(func=cmd_pretrain)

    w = sub.add_parser("average", help="average backbone checkpoints of one run (weight averaging); "
                       "optionally score them on the validation people")
    w.add_argument("checkpoints", nargs="+", help="backbones (.safetensors), e.g. a run's "
                   "<out>.epochNNN.safetensors from --keep-every-epoch")
    w.add_argument("--out", required=True, help="averaged backbone (.safetensors; a .json beside it)")
    w.add_argument("--cache", help="face cache holding the validation people (to score)")
    w.add_argument("--validation", help="JSON of validation identity names (checkpoints/lfw_validation.json)")
    add_validation_views(w)
    w.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    w.set_defaults(func=cmd_average)

    b = sub.add_parser("hybrid-bank", help="the hybrid backbone's feature bank: dlib's trunk maps "
                       "and descriptors of several views of every chip (resumable)")
    b.add_argument("--chips", default=str(Path.home() / ".cache/gslora/chips"),
                   help="chips folder (python -m pretraining.chips)")
    b.add_argument("--out", default=str(Path.home() / ".cache/gslora/bank"))
    b.add_argument("--holdout", default="checkpoints/lfw_holdout.json",
                   help="JSON of the test people: left out of the bank altogether")
    b.add_argument("--views", type=int, default=8, help="views a chip: the chip, its mirror, "
                   "and robust views")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=2, help="processes, one core each")
    b.set_defaults(func=cmd_hybrid_bank)

    h = sub.add_parser("hybrid", help="distil the hybrid backbone's blocks onto dlib's "
                       "descriptor from a feature bank")
    h.add_argument("--bank", default=str(Path.home() / ".cache/gslora/bank"))
    h.add_argument("--out", required=True, help="backbone (.safetensors), saved every epoch")
    h.add_argument("--validation", default="checkpoints/lfw_validation.json",
                   help="JSON of the people kept out of training and scored every epoch")
    h.add_argument("--resume", action="store_true", help="continue <out>'s run from its state")
    h.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    add_knob_flags(h, HybridConfig)
    h.add_argument("--report", help="also write the JSON report here")
    h.set_defaults(func=cmd_hybrid)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
