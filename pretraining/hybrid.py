"""The hybrid backbone's distillation: transformer blocks on dlib's frozen trunk, taught dlib's
descriptor.

Two steps. ``build_bank`` runs dlib's network once over ``views`` views of every chip
(``pretraining.chips``): view 0 is the chip, view 1 its mirror image, the others the robust views
of ``augment.robust_views`` (other framings, angles, resolutions, blur, colour, greyscale, JPEG,
tight crops); it keeps the trunk's maps at levels 3 (128x8x8) and 4 (256x4x4) and dlib's
descriptor of each view. The teacher sees exactly the view the student sees, so the student
learns dlib's function, degraded photos included. ``distill`` then trains the blocks on the
bank: an epoch is seconds to a minute on 2 cores instead of the hour pixels would cost. Both are
resumable: the bank commits rows chunk by chunk, a distillation run saves its whole state
every epoch.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from gslora_core.config import DataConfig, ModelConfig
from gslora_core.dlib_resnet import DlibResNet, teacher
from gslora_core.metrics import make_pairs, verification_accuracy
from gslora_core.model import Recognizer, save_recognizer
from gslora_core.training import decay_groups, lr_at

from .augment import robust_views
from .chips import CHIPS
from .chips import INDEX as CHIPS_INDEX
from .config import HybridConfig, PretrainConfig
from .diskarrays import open_array, run_chunks, write_index
from .pretrain import distill_loss

LEVEL_SHAPES = {3: (128, 8, 8), 4: (256, 4, 4)}
TEACHER, INDEX = "teacher.npy", "index.json"
BANK_VERSION = 1  # part of the index: change it when views or chips change


def level_file(level: int) -> str:
    return f"level{level}.npy"


# ------------------------------------------------------------------------------ the feature bank
_WORKER: dict = {}


def _init_worker(chips_dir: Path, out: Path, rows: list[int], views: int, seed: int) -> None:
    torch.set_num_threads(1)  # one core a process
    chips = np.load(chips_dir / CHIPS, mmap_mode="r")
    margin = json.loads((chips_dir / CHIPS_INDEX).read_text())["margin"]
    _WORKER.update(chips=chips, margin=margin, rows=rows, views=views, seed=seed,
                   net=teacher(),
                   levels={lv: np.load(out / level_file(lv), mmap_mode="r+") for lv in LEVEL_SHAPES},
                   teacher=np.load(out / TEACHER, mmap_mode="r+"))


def chip_views(wide: torch.Tensor, margin: int, views: int, gen: torch.Generator) -> torch.Tensor:
    """(N, V, 3, 150, 150) float views in [0, 1] of uint8 wide chips (N, 3, S, S): the chip,
    its mirror image, then ``views - 2`` robust views."""
    chip = wide[:, :, margin:margin + 150, margin:margin + 150].float() / 255.0
    out = [chip, chip.flip(-1)]
    inner = 150 / wide.shape[-1]
    robust = PretrainConfig(augment="robust")
    out += [robust_views(wide, 150, inner, robust, gen) for _ in range(views - 2)]
    return torch.stack(out, 1)


@torch.no_grad()
def _bank_chunk(bounds: tuple[int, int]) -> int:
    w = _WORKER
    rows = w["rows"][bounds[0]:bounds[1]]
    wide = torch.from_numpy(np.ascontiguousarray(w["chips"][rows])).permute(0, 3, 1, 2)
    gen = torch.Generator().manual_seed(w["seed"] * 1_000_003 + bounds[0])
    x = chip_views(wide, w["margin"], w["views"], gen).flatten(0, 1)
    net: DlibResNet = w["net"]
    l3 = net.features(DlibResNet.normalize(x), 3)
    l4 = net.onwards(l3, 3, 4)
    desc = net.head(net.onwards(l4, 4))
    n, v = len(rows), w["views"]
    w["levels"][3][bounds[0]:bounds[1]] = l3.view(n, v, *l3.shape[1:]).half().numpy()
    w["levels"][4][bounds[0]:bounds[1]] = l4.view(n, v, *l4.shape[1:]).half().numpy()
    w["teacher"][bounds[0]:bounds[1]] = desc.view(n, v, -1).numpy()
    for arr in (*w["levels"].values(), w["teacher"]):
        arr.flush()
    return n


def build_bank(chips_dir: Path, out: Path, exclude: set[str], views: int = 8, seed: int = 0,
               workers: int = 2, chunk: int = 50, log: Callable[[str], None] = print) -> None:
    """The bank of every chip whose identity is not in ``exclude`` (the test people), resumable."""
    meta = json.loads((chips_dir / CHIPS_INDEX).read_text())
    rows = [i for i, r in enumerate(meta["rows"]) if r["identity"] not in exclude]
    key = {"version": BANK_VERSION, "chips": str(chips_dir), "margin": meta["margin"],
           "rule": meta["rule"], "views": views, "seed": seed, "n": len(rows)}
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX
    done = 0
    if index_path.exists():
        old = json.loads(index_path.read_text())
        done = old["done"] if old.get("key") == key else 0
    n = len(rows)
    arrays = [open_array(out / level_file(lv), (n, views, *shape), np.float16, 0)
              for lv, shape in LEVEL_SHAPES.items()]
    arrays.append(open_array(out / TEACHER, (n, views, 128), np.float32, np.nan))
    del arrays
    entries = [{"identity": meta["rows"][i]["identity"], "file": meta["rows"][i]["file"]}
               for i in rows]
    chunks = [(c, min(c + chunk, n)) for c in range(done, n, chunk)]
    t0 = time.time()
    log(f"{n} chips x {views} views, {done} done")
    for k in run_chunks(_bank_chunk, chunks, workers, _init_worker,
                        (chips_dir, out, rows, views, seed)):
        done += k
        write_index(index_path, {"key": key, "done": done, "complete": done == n,
                                 "rows": entries})
        rate = (done - chunks[0][0]) / (time.time() - t0) if chunks else 0
        log(f"{done}/{n} chips ({rate:.1f}/s)")


@dataclass
class Bank:
    """A complete feature bank in memory: trunk maps (N, V, C, g, g) float16 at one level,
    dlib's descriptors (N, V, 128) and each row's identity."""

    feats: torch.Tensor
    teacher: torch.Tensor
    identities: list[str]
    level: int

    def rows_of(self, names: set[str], inside: bool) -> torch.Tensor:
        return torch.tensor([i for i, n in enumerate(self.identities) if (n in names) == inside],
                            dtype=torch.long)


def load_bank(folder: str | Path, level: int) -> Bank:
    folder = Path(folder)
    meta = json.loads((folder / INDEX).read_text())
    if not meta.get("complete"):
        raise ValueError(f"{folder}: the bank is incomplete; run hybrid-bank again to finish it")
    feats = torch.from_numpy(np.load(folder / level_file(level)))
    targets = torch.from_numpy(np.load(folder / TEACHER))
    return Bank(feats, targets, [r["identity"] for r in meta["rows"]], level)


# ------------------------------------------------------------------------------- distillation
@dataclass
class _Run:
    model: Recognizer
    opt: torch.optim.Optimizer
    gen: torch.Generator
    per_epoch: int
    total: int
    warmup: int
    epoch: int = 0
    step: int = 0
    best: float = -1.0
    history: list[dict] = field(default_factory=list)


def hybrid_config(cfg: HybridConfig) -> ModelConfig:
    return ModelConfig.hybrid(cfg.trunk_levels).sized(cfg.width, cfg.depth)


def _draw_views(n: int, views: int, p_clean: float, gen: torch.Generator) -> torch.Tensor:
    """Each row's view: the chip or its mirror with ``p_clean``, else a robust one."""
    clean = torch.rand(n, generator=gen) < p_clean
    plain = torch.randint(0, 2, (n,), generator=gen)
    robust = torch.randint(2, views, (n,), generator=gen) if views > 2 else plain
    return torch.where(clean, plain, robust)


@torch.no_grad()
def student_embeddings(model: Recognizer, feats: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Embeddings of trunk maps (M, C, g, g) in eval mode."""
    model.eval()
    return torch.cat([model.embed_from_trunk(feats[i:i + chunk].float())
                      for i in range(0, len(feats), chunk)])


def validate(model: Recognizer, bank: Bank, rows: torch.Tensor, center: torch.Tensor,
             pairs: tuple[np.ndarray, np.ndarray]) -> dict:
    """The student against dlib on the validation people: cosine to the centred descriptor on
    the clean chips and on the robust views, and pair verification (mirror image averaged)
    of both, on the same pairs."""
    feats, target = bank.feats[rows], bank.teacher[rows] - center
    n, v = feats.shape[:2]
    emb = student_embeddings(model, feats.flatten(0, 1)).view(n, v, -1)
    cos = F.cosine_similarity(emb, target, dim=-1)
    both = F.normalize(emb[:, 0], dim=-1) + F.normalize(emb[:, 1], dim=-1)
    ref = F.normalize(target[:, 0], dim=-1) + F.normalize(target[:, 1], dim=-1)
    out = {"cos_clean": float(cos[:, :2].mean()),
           "cos_robust": float(cos[:, 2:].mean()) if v > 2 else None,
           "pairs": verification_accuracy(both, *pairs)["accuracy"],
           "teacher_pairs": verification_accuracy(ref, *pairs)["accuracy"]}
    out["score"] = float(cos.mean())
    return out


def _paths(out: Path) -> dict[str, Path]:
    return {"best": out.with_suffix(".best.safetensors"), "state": out.with_suffix(".state.pt"),
            "json": out.with_suffix(".json")}


def distill(bank: Bank, validation: set[str], cfg: HybridConfig, out: str | Path,
            resume: bool = False, log: Callable[[str], None] = print) -> dict:
    """Train the blocks on the bank's rows of everyone but ``validation``; score those people
    after every epoch, keep the best (``<out>.best.safetensors``) and the latest, with the
    whole state for ``resume``."""
    out = Path(out)
    paths = _paths(out)
    train, held = bank.rows_of(validation, False), bank.rows_of(validation, True)
    if len(train) == 0 or len(set(bank.identities[i] for i in held.tolist())) < 2:
        raise ValueError("need training rows and at least two validation people")
    center = bank.teacher[train, 0].mean(0)  # dlib's descriptors share one mean direction
    targets = bank.teacher - center
    names = sorted({bank.identities[i] for i in held.tolist()})
    pairs = make_pairs([names.index(bank.identities[i]) for i in held.tolist()], 3000, cfg.seed)
    torch.manual_seed(cfg.seed)
    mcfg = hybrid_config(cfg)
    model = Recognizer(mcfg, [], DataConfig(preprocess="mtcnn"))
    params = [p for p in model.backbone.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(decay_groups(params, cfg.weight_decay), lr=cfg.lr)
    per_epoch = max(1, len(train) // cfg.batch_size)
    run = _Run(model, opt, torch.Generator().manual_seed(cfg.seed), per_epoch,
               cfg.epochs * per_epoch, cfg.warmup_epochs * per_epoch)
    if resume and paths["state"].exists():
        _load_state(run, paths["state"], cfg)
    t0 = time.perf_counter() - (run.history[-1]["seconds"] if run.history else 0.0)
    while run.epoch < cfg.epochs:
        row = _epoch(run, bank, train, targets, cfg, t0)
        row["validation"] = validate(run.model, bank, held, center, pairs)
        run.history.append(row)
        _save(run, out, cfg, mcfg, len(train), len(names))
        v = row["validation"]
        log(f"epoch {run.epoch}/{cfg.epochs} loss {row['loss']:.4f} cos clean {v['cos_clean']:.4f} "
            f"robust {v['cos_robust'] or float('nan'):.4f} pairs {v['pairs']:.4f} "
            f"(dlib {v['teacher_pairs']:.4f}) ({row['seconds']:.0f} s)")
    return {"history": run.history, "best_score": run.best, "checkpoint": str(out),
            "best": str(paths["best"])}


def _epoch(run: _Run, bank: Bank, train: torch.Tensor, targets: torch.Tensor,
           cfg: HybridConfig, t0: float) -> dict:
    run.model.train()
    order = train[torch.randperm(len(train), generator=run.gen)]
    views = bank.feats.shape[1]
    sums = {"loss": 0.0, "point": 0.0, "relation": 0.0}
    for b in range(run.per_epoch):
        rows = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        v = _draw_views(len(rows), views, cfg.p_clean, run.gen)
        for g in run.opt.param_groups:
            g["lr"] = lr_at(run.step, run.total, run.warmup, cfg.lr)
        emb = run.model.embed_from_trunk(bank.feats[rows, v].float())
        loss, parts = distill_loss(emb, targets[rows, v], cfg.relation_weight)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.step += 1
        sums["loss"] += float(loss.detach())
        for k, val in parts.items():
            sums[k] += val
    run.epoch += 1
    return {"epoch": run.epoch, "seconds": round(time.perf_counter() - t0, 1),
            **{k: val / run.per_epoch for k, val in sums.items()}}


def _save(run: _Run, out: Path, cfg: HybridConfig, mcfg: ModelConfig, images: int,
          validation_people: int) -> None:
    paths = _paths(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run.model.eval()
    tmp = out.with_suffix(".tmp.safetensors")
    save_recognizer(run.model, tmp)
    tmp.replace(out)
    record = {"hybrid": cfg.to_dict(), "model": mcfg.to_dict(), "images": images,
              "validation_identities": validation_people, "history": run.history}
    paths["json"].write_text(json.dumps(record, indent=1))
    score = run.history[-1]["validation"]["score"]
    if score > run.best:
        run.best = score
        save_recognizer(run.model, paths["best"])
        paths["best"].with_suffix(".json").write_text(json.dumps(
            {**record, "kept_epoch": run.epoch}, indent=1))
    state = {"epoch": run.epoch, "step": run.step, "best": run.best, "history": run.history,
             "backbone": {k: v for k, v in run.model.backbone.state_dict().items()
                          if ".trunk." not in k},
             "opt": run.opt.state_dict(), "gen": run.gen.get_state(), "cfg": cfg.to_dict()}
    tmp_state = paths["state"].with_name(paths["state"].name + ".tmp")
    torch.save(state, tmp_state)
    tmp_state.replace(paths["state"])


def _load_state(run: _Run, path: Path, cfg: HybridConfig) -> None:
    """Continue a run from its own saved state (never a file from elsewhere)."""
    st = torch.load(path, map_location="cpu", weights_only=True)
    if {k: v for k, v in st["cfg"].items() if k != "epochs"} != \
            {k: v for k, v in cfg.to_dict().items() if k != "epochs"}:
        raise ValueError(f"{path} is another run's state (its recipe differs)")
    run.model.backbone.load_state_dict(st["backbone"], strict=False)
    run.opt.load_state_dict(st["opt"])
    run.gen.set_state(st["gen"])
    run.epoch, run.step, run.best, run.history = st["epoch"], st["step"], st["best"], st["history"]
