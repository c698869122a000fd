"""The recognizer: a Face Transformer backbone (timm ViT, LayerNorm'd CLS embedding) + CosFace head.

Checkpoints are a single ``.safetensors`` file whose metadata holds the JSON config (model size,
class names, preprocessing, forgetting tasks). No pickle is ever written or read.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from . import dlib_resnet, gate, lora
from .config import DataConfig, ModelConfig, TaskRecord
from .openset import Threshold

FORMAT = "gslora-recognizer/1"


class ConvStem(nn.Module):
    """Stride-2 3x3 convolutions (GroupNorm, GELU) then a 1x1 projection, in place of the single
    patchify convolution: the same token grid, but far easier to train on a small face set
    (Xiao et al. 2021, "Early convolutions help transformers see better"). GroupNorm, not
    BatchNorm: no running statistics, so forgetting in train mode changes nothing here."""

    def __init__(self, img_size: int = 112, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 192, **_: Any):
        super().__init__()
        steps = int(math.log2(patch_size))
        if 2 ** steps != patch_size:
            raise ValueError("the conv stem needs a power-of-two patch size")
        chans = [in_chans] + [max(16, embed_dim // 2 ** (steps - i)) for i in range(1, steps + 1)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                       nn.GroupNorm(min(8, c_out // 4), c_out), nn.GELU()]
        layers.append(nn.Conv2d(chans[-1], embed_dim, 1))
        self.proj = nn.Sequential(*layers)
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.dynamic_img_pad = False

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.patch_size[0] if as_scalar else self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, tokens, dim)


class TrunkEmbed(nn.Module):
    """ViT's "hybrid" patch embedding: dlib's face ResNet, frozen, up to ``levels`` levels, its
    feature map's cells as tokens, linearly projected to ``embed_dim``. The trunk's weights
    are buffers filled from the shipped file (``dlib_resnet.SHIPPED``); only the projection
    trains."""

    def __init__(self, img_size: int = 150, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 192, levels: int = 4, **_: Any):
        super().__init__()
        if img_size != dlib_resnet.CHIP:
            raise ValueError(f"the dlib trunk reads {dlib_resnet.CHIP} px chips")
        self.trunk = dlib_resnet.DlibResNet(levels, head=False).load_shipped()
        self.proj = nn.Linear(self.trunk.channels, embed_dim)
        side = self.trunk.grid
        self.img_size = (img_size, img_size)
        self.grid_size = (side, side)
        self.patch_size = (img_size // side, img_size // side)
        self.num_patches = side * side
        self.dynamic_img_pad = False

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.patch_size[0] if as_scalar else self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.trunk.features(x).flatten(2).transpose(1, 2))  # (N, tokens, dim)


def build_backbone(cfg: ModelConfig) -> VisionTransformer:
    """Plain pre-norm ViT; with token pooling it returns the normed CLS token (``out_dim``:
    mapped linearly to that width)."""
    extra: dict[str, Any] = {}
    if cfg.stem == "conv":
        extra["embed_layer"] = ConvStem
    elif cfg.stem == "dlib":
        extra["embed_layer"] = partial(TrunkEmbed, levels=cfg.trunk_levels)
    return VisionTransformer(
        img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=3, num_classes=cfg.out_dim,
        global_pool="token", embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio, class_token=True, **extra,
    )


TRUNK_PREFIX = "backbone.patch_embed.trunk."  # a hybrid's frozen trunk: shipped once, not per file


class CosFaceHead(nn.Module):
    """Cosine classifier; the margin ``m`` is applied to the true class only while training."""

    def __init__(self, embed_dim: int, num_classes: int, s: float, m: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.normal_(self.weight, std=0.01)
        self.s, self.m = s, m

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb, dim=-1), F.normalize(self.weight, dim=-1))

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(emb)
        return self.s * cos if labels is None else self.margin_logits(cos, labels)

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training logits from cosines: s * (cos - m on the true class)."""
        return self.s * (cos - self.m * F.one_hot(labels, cos.shape[1]).to(cos.dtype))


class Recognizer(nn.Module):
    """Backbone + CosFace head over ``class_names``, with its forgetting history."""

    def __init__(self, cfg: ModelConfig, class_names: list[str],
                 data_config: DataConfig | None = None):
        super().__init__()
        if len(set(class_names)) != len(class_names):
            raise ValueError("class names must be unique")
        self.cfg = cfg
        self.class_names = list(class_names)
        self.data_config = data_config or DataConfig()
        self.backbone = build_backbone(cfg)
        self.head = CosFaceHead(cfg.embedding_dim, len(class_names), cfg.cosface_s, cfg.cosface_m)
        self.tasks: list[TaskRecord] = []
        # Moved on by this class's own methods at every change of what it answers (weights,
        # tasks, threshold): a Snapshot of another revision is stale. ``_added_at``: the
        # revision when each live task was added.
        self._revision = 0
        self._added_at: dict[str, int] = {}
        # The open-set operating point (openset.Threshold), fixed at enrollment; None for a
        # backbone or a checkpoint written before it existed.
        self._threshold: Threshold | None = None
        # Inputs are float images in [0, 1]; the model normalises them itself (the hybrid as
        # dlib does: (pixel - dlib's mean) / 256).
        mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.5)
        if cfg.stem == "dlib":
            mean = torch.tensor(dlib_resnet.MEAN_RGB).view(1, 3, 1, 1) / 255.0
            std = torch.full((1, 3, 1, 1), dlib_resnet.SCALE / 255.0)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def revision(self) -> int:
        """Which state of the model a measurement belongs to (``evaluation.Snapshot.fits``)."""
        return self._revision

    @property
    def threshold(self) -> Threshold | None:
        return self._threshold

    @threshold.setter
    def threshold(self, value: Threshold | None) -> None:
        if value != self._threshold:  # answers at the threshold change with it
            self._threshold = value
            self._revision += 1

    def train(self, mode: bool = True) -> "Recognizer":
        """``nn.Module.train``, skipped when the model is in that mode already: the switch walks
        every submodule (a hybrid's trunk has hundreds), and a forgetting task switches between
        its steps and its checks. Nothing sets a submodule's mode alone."""
        if self.training == mode:
            return self
        return super().train(mode)

    def freeze(self) -> None:
        """Training is over: gradients dropped, every weight frozen, evaluation mode. The
        weights may have changed, so the revision moves on (snapshots taken before are
        stale)."""
        for p in self.parameters():
            p.grad = None
        self.eval().requires_grad_(False)
        self._revision += 1

    def load_state_dict(self, state_dict, *args, **kwargs):
        """``nn.Module.load_state_dict``; the loaded weights (even a load that fails part way)
        move the revision on."""
        try:
            return super().load_state_dict(state_dict, *args, **kwargs)
        finally:
            self._revision += 1

    @property
    def blocks(self) -> nn.Sequential:
        return self.backbone.blocks

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def kind(self) -> str:
        """What its classes are: "objects" when it reads pictures whole
        (``DataConfig.preprocess``), else "faces" (people)."""
        return "objects" if self.data_config.preprocess == "whole" else "faces"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W), uint8 or float in [0, 1]."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if not self.gated_tasks:
            return self.backbone((images - self.mean) / self.std)
        x = self.stem_tokens(images)
        return self._gated(lambda: self._embed_from_tokens(x))[0]

    def _embed_from_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding from ``stem_tokens``: every block, the final norm, the pooling."""
        bb = self.backbone
        return bb.forward_head(bb.norm(bb.blocks(x)))

    @property
    def gated_tasks(self) -> list[TaskRecord]:
        """The live tasks whose change is gated (``gate``)."""
        return [t for t in self.tasks if t.gate is not None and not t.merged]

    def _gated(self, *views, e0: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Each view's embedding (``view()`` computes it) with every gated task's change let
        through by the gate: each ``view`` runs the pass from states no gated task has changed
        (``gated_from``), once as it is and, unless the caller kept them (``e0``), once with
        the gated adapters muted (``ungated``). The views of one picture share one gate, the
        widest of theirs: the answer averages them, and a view each would let a picture at the
        edge keep half the change and its old answer."""
        tasks = self.gated_tasks
        if not tasks or lora.muted_now() >= {t.name for t in tasks}:  # nothing to let through
            return [view() for view in views]
        e = [view() for view in views]
        e0 = self.ungated(*views) if e0 is None else e0
        g = self.openness(*e0)
        return [gate.blend(a0, a, g) for a0, a in zip(e0, e)]

    @torch.no_grad()
    def ungated(self, *views) -> list[torch.Tensor]:
        """The gate's ``e0``: each view's embedding with every gated task's adapters muted.
        No step of a task moves it (its own adapters are muted too), so a task may keep it."""
        with lora.muted(t.name for t in self.gated_tasks):
            return [view() for view in views]

    def openness(self, *e0: torch.Tensor) -> torch.Tensor:
        """Per picture, the share of the gated tasks' change its answer gets, from ``e0``, its
        views' embeddings with every gated adapter muted: the widest of the views' gates (1
        where no task is gated)."""
        tasks = self.gated_tasks
        if not tasks:
            return torch.ones(len(e0[0]), device=e0[0].device)
        gates = [gate.Gate.from_dict(t.gate) for t in tasks]
        return torch.stack([gate.openness(gates, self.head.cosine(view), self.class_names)
                            for view in e0]).max(0).values

    def gated_from(self) -> int:
        """The lowest block whose MLP a gated task changed (the top block when none changed a
        block under it): states at or under it are the untouched recognizer's, so the gate's
        ``e0`` can be computed from them (``embed_from_mid``)."""
        top = len(self.blocks) - 1
        lowest = [b for t in self.gated_tasks
                  for b, n in enumerate(lora.delta_norms(self.blocks, t.name)) if n != 0.0]
        return min(lowest + [top])

    @property
    def trunk(self) -> dlib_resnet.DlibResNet | None:
        """A hybrid's frozen dlib trunk (None for other stems)."""
        embed = self.backbone.patch_embed
        return embed.trunk if isinstance(embed, TrunkEmbed) else None

    def trunk_features(self, images: torch.Tensor) -> torch.Tensor:
        """A hybrid's frozen trunk map of ``images`` (N, C, g, g): what never changes while its
        blocks train, so enrolment and distillation compute it once a view."""
        if self.trunk is None:
            raise ValueError("only a hybrid recognizer has a frozen trunk")
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return self.trunk.features((images - self.mean) / self.std)

    def embed_from_trunk(self, feats: torch.Tensor) -> torch.Tensor:
        """The embedding from ``trunk_features``: the rest of ``embed``'s pass."""
        bb = self.backbone
        x = bb.patch_embed.proj(feats.flatten(2).transpose(1, 2))
        x = bb.norm_pre(bb.patch_drop(bb._pos_embed(x)))
        return self._gated(lambda: self._embed_from_tokens(x))[0]

    @property
    def stem_is_costly(self) -> bool:
        """Whether the tokens entering block 0 are worth keeping between passes: a hybrid's
        frozen trunk is most of a whole pass's cost, a patch or conv stem almost none of it."""
        return self.trunk is not None

    def stem_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Tokens (N, 1 + patches, D) entering ``blocks[0]``: the stem, positions and class
        token. No forgetting task changes them (LoRA sits on the blocks' MLPs)."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        bb = self.backbone
        return bb.norm_pre(bb.patch_drop(bb._pos_embed(bb.patch_embed((images - self.mean) / self.std))))

    def mid_state(self, images: torch.Tensor, block: int) -> torch.Tensor:
        """Tokens at the input of ``blocks[block]``'s MLP (after its attention and residual).

        LoRA sits on the MLPs only, so while a task's groups are exactly zero below ``block``
        nothing up to here changes: computed once, these let a task train and measure through
        the active MLPs and the blocks above only (``embed_from_mid``). For the top block only
        the class token's row is needed (``kept_rows``)."""
        return self.mid_state_from_stem(self.stem_tokens(images), block)

    def mid_state_from_stem(self, x: torch.Tensor, block: int, start: int = 0) -> torch.Tensor:
        """``mid_state`` from ``stem_tokens`` (or from tokens entering ``blocks[start]``): the
        blocks below ``block`` and its attention."""
        for blk in self.blocks[start:block]:
            x = blk(x)
        blk = self.blocks[block]
        return x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))

    def mid_state_from_mid(self, h: torch.Tensor, low: int, block: int) -> torch.Tensor:
        """``mid_state`` at ``block`` from the full token grid of ``mid_state`` at a lower
        block ``low``: its MLP, the blocks between, ``block``'s attention (the ops of the
        whole pass, in its order)."""
        blk = self.blocks[low]
        x = h + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(h))))
        return self.mid_state_from_stem(x, block, start=low + 1)

    def embed_from_mid(self, h: torch.Tensor, block: int,
                       e0: torch.Tensor | None = None) -> torch.Tensor:
        """The embedding from ``mid_state`` at ``block`` (``_embed_from_mid``), gated (``h``
        must then be at or under ``gated_from``; ``e0``: its ``ungated`` embedding, if kept)."""
        return self._gated(lambda: self._embed_from_mid(h, block),
                           e0=None if e0 is None else [e0])[0]

    def ungated_from_mid(self, h: torch.Tensor, block: int) -> torch.Tensor:
        """``embed_from_mid``'s ``e0``: the pass from ``h`` with every gated adapter muted."""
        return self.ungated(lambda: self._embed_from_mid(h, block))[0]

    def _embed_from_mid(self, h: torch.Tensor, block: int) -> torch.Tensor:
        """The embedding from ``mid_state`` at ``block``: that block's MLP, the blocks above,
        the final norm and the class-token pooling. After the top block's attention only the
        class token's row goes on (``kept_rows``): every later step acts on each token by
        itself and the pooling reads that row, so a task trained from a lower block skips the
        top MLP's other 49 rows, forward and backward. At the top block ``h`` may hold that
        row alone (N, 1, D)."""
        bb = self.backbone
        top = len(bb.blocks) - 1
        x = h  # at ``block``: after its attention
        for b in range(block, top + 1):
            blk = bb.blocks[b]
            if b > block:  # a block above: its attention over every token first
                x = x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))
            x = self.kept_rows(x, b)
            x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
        return bb.forward_head(bb.norm(x))

    def kept_rows(self, h: torch.Tensor, block: int) -> torch.Tensor:
        """``h`` reduced to what ``embed_from_mid`` needs: the class token's row at the top
        block (50x fewer rows to keep and to run), every token below it."""
        return h[:, :1] if block == len(self.blocks) - 1 else h

    def embed_flip(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation embedding: the mean of the picture's and its mirror image's unit embeddings.

        The usual test-time flip of face verification; on the sample gallery it is worth about
        5 points of top-1. Training steps use ``embed`` (one view)."""
        if not self.gated_tasks:
            return (F.normalize(self.embed(images), dim=-1)
                    + F.normalize(self.embed(images.flip(-1)), dim=-1)) / 2
        x, xf = self.stem_tokens(images), self.stem_tokens(images.flip(-1))
        return self._answer(lambda: self._embed_from_tokens(x),
                            lambda: self._embed_from_tokens(xf))

    def answer_from_mid(self, plain: torch.Tensor, mirrored: torch.Tensor, block: int,
                        e0: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``embed_flip`` from both views' ``mid_state`` at ``block`` (``e0``: both views'
        ``ungated`` embeddings, if kept)."""
        return self._answer(lambda: self._embed_from_mid(plain, block),
                            lambda: self._embed_from_mid(mirrored, block), e0)

    def _answer(self, plain, mirrored, e0: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Both views' unit embeddings averaged (``plain()`` and ``mirrored()`` compute them),
        gated as one picture (``_gated``)."""
        a, b = self._gated(plain, mirrored, e0=e0)
        return (F.normalize(a, dim=-1) + F.normalize(b, dim=-1)) / 2

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(images), labels)

    def class_index(self, name: str) -> int:
        try:
            return self.class_names.index(name)
        except ValueError:
            raise KeyError(f"identity {name!r} is not known to this recognizer") from None

    def forgotten(self) -> list[str]:
        """Every identity forgotten by any task so far, in task order."""
        return [n for t in self.tasks for n in t.forgotten]

    # The recognizer owns its task state: a task's adapters and its record are added and
    # removed together, here only (as peft keeps an adapter's config beside its layers), so
    # the history and the layers cannot disagree.
    def add_task(self, record: TaskRecord, seed: int = 0) -> None:
        """A task's record and, unless it is merged, its adapters: one LoRA group per block,
        B = 0, so the outputs (and a kept snapshot) are unchanged until it trains."""
        if any(t.name == record.name for t in self.tasks):
            raise ValueError(f"a task named {record.name!r} exists already")
        if not record.merged:
            lora.add_task(self.blocks, record.name, record.rank, record.lora_alpha, seed=seed)
            self._added_at[record.name] = self._revision
        self.tasks.append(record)

    def remove_task(self, name: str) -> TaskRecord:
        """Take an un-merged task out: its adapters and its record. If the model changed since
        the task was added (it trained, or its weights were loaded), the revision moves on; a
        task taken out before that (cancelled, failed) leaves the model, and its revision,
        exactly as they were."""
        rec = next((t for t in self.tasks if t.name == name), None)
        if rec is None or rec.merged:
            raise ValueError(f"no un-merged task named {name!r}")
        lora.remove_task(self.blocks, name)
        self.tasks.remove(rec)
        if self._added_at.pop(name, None) != self._revision:
            self._revision += 1
        return rec

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.cfg.to_dict(),
            "class_names": self.class_names,
            "data": self.data_config.to_dict(),
            "tasks": [t.to_dict() for t in self.tasks],
            "open_set": self.threshold.to_dict() if self.threshold else None,
        }


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def save_recognizer(model: Recognizer, path: str | Path, standalone: bool = False) -> Path:
    """Weights and config in one .safetensors file (config as JSON in the metadata).

    A hybrid's frozen trunk is dlib's, shipped once (``dlib_resnet.SHIPPED``, 22 MB): the file
    names it by digest instead of holding it, unless ``standalone`` (an export)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = model.metadata()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.stem == "dlib" and not standalone:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(TRUNK_PREFIX)}
        meta["trunk"] = {"file": dlib_resnet.SHIPPED.name, "digest": trunk_digest(model)}
    save_file(tensors, str(path), metadata={"gslora": json.dumps(meta)})
    return path


def trunk_digest(model: Recognizer) -> str:
    """A digest of a hybrid's frozen trunk weights (what a checkpoint without them relies on)."""
    digest = hashlib.blake2b(digest_size=16)
    for key, t in sorted(model.state_dict().items()):
        if key.startswith(TRUNK_PREFIX):
            digest.update(key.encode())
            digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def read_metadata(path: str | Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "gslora" not in meta:
        raise ValueError(f"{path} is not a GS-LoRA recognizer checkpoint (no 'gslora' metadata)")
    data = json.loads(meta["gslora"])
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {data.get('format')!r}")
    return data


def load_recognizer(path: str | Path, device: str | torch.device = "cpu") -> Recognizer:
    """Rebuild the recognizer (and its un-merged task adapters) from a .safetensors file."""
    meta = read_metadata(path)
    model = Recognizer(ModelConfig.from_dict(meta["model"]), meta["class_names"],
                       DataConfig.from_dict(meta.get("data", {})))
    for rec in (TaskRecord.from_dict(t) for t in meta.get("tasks", [])):
        model.add_task(rec)
    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.startswith(TRUNK_PREFIX) for k in missing):
        raise ValueError(f"{path}: weights do not fit its config (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    if missing and meta.get("trunk", {}).get("digest") != trunk_digest(model):
        raise ValueError(f"{path} was made on another dlib trunk than "
                         f"checkpoints/{dlib_resnet.SHIPPED.name}")
    if meta.get("open_set"):
        model.threshold = Threshold.from_dict(meta["open_set"])
    model.requires_grad_(False)
    return model.to(device).eval()


def merged_copy(model: Recognizer) -> Recognizer:
    """A copy with every ungated task folded into plain weights (history only). A gated task's
    change depends on the picture (``gate``), which no plain weight can hold: it stays an
    adapter with its gate, so the copy answers exactly as ``model``."""
    out = Recognizer(model.cfg, model.class_names, model.data_config)
    for rec in model.tasks:
        out.add_task(rec)
    out.load_state_dict(model.state_dict())
    folded = [t.name for t in model.tasks if t.gate is None and not t.merged]
    lora.merge_tasks(out.blocks, folded)
    out.tasks = [replace(t, merged=True) if t.name in folded else t for t in model.tasks]
    out.threshold = model.threshold
    return out.to(model.device).eval()


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
