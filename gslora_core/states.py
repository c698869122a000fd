"""Hidden states below a task's first active block, computed once (the sparse task's shortcut).

LoRA sits on the blocks' MLPs only. While a task's groups are exactly zero below block ``k``,
every picture's state at the input of block ``k``'s MLP (``Recognizer.mid_state``) is the same
at every step and before and after the task: computed once, it lets the task train, check its
stopping rule and measure the gallery through the active MLPs and the blocks above only. At the
top block only the class token's row is kept (``Recognizer.kept_rows``), so a one-block task runs
on one 192-wide row per picture. ``Recognizer.embed_from_mid`` finishes the pass; the result is
the full pass's, as tests/test_states.py checks. The token grids under the top (``Grids``: the
states at the block below the top, and a hybrid's stem tokens, its frozen trunk being most of a
pass) are kept in snapshots too, so a task that releases the second block starts from kept
states, and one that releases more never runs the trunk again.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .data import Gallery
from .model import Recognizer

CHUNK = 128


@dataclass
class MidStates:
    """States at ``block``'s MLP input of a set of pictures, as they are and mirrored."""

    block: int
    plain: torch.Tensor  # (N, T, D) on CPU; T = 1 at the top block
    flip: torch.Tensor


@dataclass
class Stem:
    """Tokens entering block 0 (``Recognizer.stem_tokens``) of a set of pictures, as they are
    and mirrored. No forgetting task changes them, so a hybrid's trunk runs once a picture and
    view however many tasks and released blocks follow (``Grids``)."""

    plain: torch.Tensor  # (N, T, D) on CPU
    flip: torch.Tensor


def _both_views(model: Recognizer, n: int, rows: Callable[[slice, bool], torch.Tensor],
                chunk: int, on_done: Callable[[int], None] | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows(part, flip)`` over ``n`` pictures a chunk at a time, as they are and mirrored,
    gathered on the CPU (``on_done`` hears the pictures done after each chunk)."""
    model.eval()
    plain, flip = [], []
    for i in range(0, n, chunk):
        part = slice(i, i + chunk)
        plain.append(rows(part, False).cpu())
        flip.append(rows(part, True).cpu())
        if on_done:
            on_done(min(i + chunk, n))
    empty = torch.zeros((0, 1, model.cfg.embed_dim))
    return (torch.cat(plain) if plain else empty), (torch.cat(flip) if flip else empty)


def _view(images: torch.Tensor, part: list[int] | slice, flip: bool,
          device: torch.device) -> torch.Tensor:
    x = images[part].to(device)
    return x.flip(-1) if flip else x


@torch.no_grad()
def stem_states(model: Recognizer, images: torch.Tensor, chunk: int = CHUNK,
                on_done: Callable[[int], None] | None = None) -> Stem:
    """Both views' stem tokens of ``images`` (uint8). ``on_done`` hears the count of pictures
    done after each chunk."""
    return Stem(*_both_views(
        model, len(images),
        lambda part, flip: model.stem_tokens(_view(images, part, flip, model.device)),
        chunk, on_done))


def _mid_rows(model: Recognizer, block: int, images: torch.Tensor, part: list[int] | slice,
              flip: bool, stem: Stem | None) -> torch.Tensor:
    """States at ``block`` of pictures ``part``: from their stem tokens when there are some,
    else from the pictures."""
    if stem is not None:
        h = model.mid_state_from_stem((stem.flip if flip else stem.plain)[part].to(model.device),
                                      block)
    else:
        h = model.mid_state(_view(images, part, flip, model.device), block)
    return model.kept_rows(h, block)


@torch.no_grad()
def mid_states(model: Recognizer, images: torch.Tensor, block: int,
               chunk: int = CHUNK, on_done: Callable[[int], None] | None = None,
               stem: Stem | None = None) -> MidStates:
    """Both views' states of ``images`` (uint8) at ``block`` (the evaluation pass's first half);
    from ``stem``, the pictures' stem tokens, when given. ``on_done`` hears the count of
    pictures done after each chunk."""
    return MidStates(block, *_both_views(
        model, len(images), lambda part, flip: _mid_rows(model, block, images, part, flip, stem),
        chunk, on_done))


@torch.no_grad()
def advance(model: Recognizer, states: MidStates, block: int, chunk: int = CHUNK) -> MidStates:
    """States at ``block`` from full token grids at a lower block (``states``)."""
    def rows(part: slice, flip: bool) -> torch.Tensor:
        h = (states.flip if flip else states.plain)[part].to(model.device)
        return model.kept_rows(model.mid_state_from_mid(h, states.block, block), block)
    return MidStates(block, *_both_views(model, len(states.plain), rows, chunk, None))


def keeps_grids(model: Recognizer) -> bool:
    """Whether ``model`` keeps token grids below its top block (``Grids``): every model with a
    block under the top (the stem tokens only where the stem is costly)."""
    return len(model.blocks) > 1


def below_block(model: Recognizer) -> int:
    """The block under the top, whose states ``Grids`` keep."""
    return len(model.blocks) - 2


def _part(gallery: Gallery, part: str) -> torch.Tensor:
    return gallery.test_x if part == "test" else gallery.train_x


@dataclass
class Grids:
    """A gallery's token grids below the top block (``keeps_grids``): the stem tokens, which no
    task changes (kept where the stem is costly, a hybrid's trunk; elsewhere states come from
    the pictures), and the states at the MLP input of the block under the top
    (``below_block``), which no task that leaves every block under it alone changes. Filled
    on first need (by ``part``, "test" or "train"), carried from a snapshot to the next task
    and its "after" (a task that changed a block under ``below_block`` hands on the stem
    tokens only: ``stems_only``), so a hybrid's trunk runs once a picture and view, and a
    task that releases the second block starts from its states. Tensors only: a snapshot
    crosses a process boundary with them (``calls``)."""

    stems: dict[str, Stem | None] = field(default_factory=lambda: {"test": None, "train": None})
    belows: dict[str, MidStates | None] = field(
        default_factory=lambda: {"test": None, "train": None})

    def stem(self, model: Recognizer, gallery: Gallery, part: str,
             on_done: Callable[[int], None] | None = None) -> Stem | None:
        """The stem tokens of the gallery's ``part`` pictures (``on_done`` hears the pictures
        done, if they are computed now)."""
        if self.stems[part] is None and model.stem_is_costly and keeps_grids(model):
            self.stems[part] = stem_states(model, _part(gallery, part), on_done=on_done)
        return self.stems[part]

    def below(self, model: Recognizer, gallery: Gallery, part: str,
              on_done: Callable[[int], None] | None = None) -> MidStates | None:
        """The ``part`` pictures' states at ``below_block`` (full token grids)."""
        if self.belows[part] is None and keeps_grids(model):
            stem = self.stem(model, gallery, part, on_done)
            self.belows[part] = mid_states(model, _part(gallery, part), below_block(model),
                                           stem=stem, on_done=None if stem else on_done)
        return self.belows[part]

    def stems_only(self) -> "Grids":
        """These grids for a model whose blocks under ``below_block`` changed."""
        return Grids(stems=dict(self.stems))


@torch.no_grad()
def embed_states(model: Recognizer, states: MidStates, chunk: int = CHUNK,
                 e0: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Evaluation embeddings from states: the mean of both views' unit embeddings, as
    ``Recognizer.embed_flip`` gives from the pictures (``e0``: both views' gate inputs, kept
    by the caller; ``Recognizer.ungated``)."""
    model.eval()
    out = []
    for i in range(0, len(states.plain), chunk):
        part = None if e0 is None else tuple(v[i:i + chunk] for v in e0)
        out.append(model.answer_from_mid(states.plain[i:i + chunk].to(model.device),
                                         states.flip[i:i + chunk].to(model.device),
                                         states.block, part).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, model.cfg.embedding_dim))


class StateCache:
    """States at ``block`` of gallery pictures ``images``, per picture and view, filled on first
    use (a large gallery costs only the pictures a task draws). ``seed`` fills it from states
    computed before (a snapshot's top-block states cost a task nothing); ``stem``, the
    pictures' stem tokens, spares the stem (a hybrid's trunk) when it fills."""

    def __init__(self, model: Recognizer, images: torch.Tensor, block: int,
                 seed: MidStates | None = None, chunk: int = CHUNK, stem: Stem | None = None):
        self.model, self.images, self.block, self.chunk = model, images, block, chunk
        self.stem = stem  # the pictures' stem tokens: states from them, not from the pictures
        self.rows: dict[tuple[int, bool], torch.Tensor] = {}
        self.computed = 0  # pictures x views run through the blocks below (the cost it saves)
        if seed is not None and seed.block == block and len(seed.plain) == len(images):
            device = model.device
            self.rows.update({(j, False): r for j, r in enumerate(seed.plain.to(device))})
            self.rows.update({(j, True): r for j, r in enumerate(seed.flip.to(device))})

    @torch.no_grad()
    def _fill(self, missing: list[int], flip: bool) -> None:
        for i in range(0, len(missing), self.chunk):
            part = missing[i:i + self.chunk]
            rows = _mid_rows(self.model, self.block, self.images, part, flip, self.stem)
            for j, row in zip(part, rows):
                self.rows[(j, flip)] = row
            self.computed += len(part)

    def __call__(self, idx: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """(len(idx), T, D) on the model's device, in the order of ``idx``."""
        wanted = idx.tolist()
        missing = sorted({j for j in wanted if (j, flip) not in self.rows})
        if missing:
            self._fill(missing, flip)
        if not wanted:
            return torch.zeros((0, 1, self.model.cfg.embed_dim), device=self.model.device)
        return torch.stack([self.rows[(j, flip)] for j in wanted])

    def states(self, idx: torch.Tensor) -> MidStates:
        """Both views of pictures ``idx`` as ``MidStates`` (for ``embed_states``)."""
        return MidStates(self.block, self(idx, False), self(idx, True))


# ------------------------------------------------------------------ states kept beside a checkpoint
# A recognizer's top-block states on its gallery, saved next to its checkpoint, make the next
# task's "before" (and ``evaluate``) cost the top block only, across processes too: the CLI's
# ``forget`` and the page's sample start from them instead of measuring the whole gallery.
# They are a cache, keyed on what they depend on: the weights up to the top block's MLP input
# (``model_key``) and the gallery's pictures (``gallery_key``); a file whose keys do not match
# is ignored, never trusted.
KEPT_FORMAT = "gslora-states/1"


def states_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's kept states live: ``x.safetensors`` -> ``x.states.safetensors``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + ".states.safetensors")


def _feeds_top_mlp(key: str, top: int) -> bool:
    """Whether a backbone weight acts before the top block's MLP input (``mid_state``)."""
    if not key.startswith("backbone."):
        return False
    rest = key[len("backbone."):]
    if rest.startswith("blocks."):
        _, index, part = rest.split(".")[:3]
        return int(index) < top or part in ("norm1", "attn", "ls1")
    return not rest.startswith(("norm.", "fc_norm.", "head", "attn_pool"))


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def model_key(model: Recognizer) -> str:
    """A digest of every weight that shapes ``mid_state`` at the top block. An adapter whose
    B is exactly zero adds exactly nothing, so it is left out: a task that changed the top
    block only leaves the key (and the states) of the recognizer before it."""
    top = len(model.blocks) - 1
    state = model.state_dict()
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(state):
        if not _feeds_top_mlp(key, top):
            continue
        name = key.replace(".base.", ".")
        if ".lora_A." in key or ".lora_B." in key:
            layer, task = key.rsplit(".lora_", 1)[0], key.rsplit(".", 1)[1]
            if not torch.any(state[f"{layer}.lora_B.{task}"]):
                continue
            name += f"@{model.get_submodule(layer).scaling[task]!r}"
        t = state[key]
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(_tensor_bytes(t))
    return digest.hexdigest()


def gallery_key(gallery: Gallery) -> str:
    """A digest of the gallery's pictures and labels, test then train, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for t in (gallery.test_x, gallery.test_y, gallery.train_x, gallery.train_y):
        digest.update(f"{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(_tensor_bytes(t))
    return digest.hexdigest()


def save_kept(path: str | Path, model: Recognizer, gallery: Gallery, test: MidStates,
              train: MidStates) -> Path:
    """Keep the top block's states of the gallery's test and train pictures at ``path``
    (written whole, then moved in place: a reader never sees half a file)."""
    top = len(model.blocks) - 1
    if test.block != top or train.block != top:
        raise ValueError("only the top block's states are kept")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"test_plain": test.plain, "test_flip": test.flip, "train_plain": train.plain,
               "train_flip": train.flip}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={"format": KEPT_FORMAT, "model": model_key(model),
                        "gallery": gallery_key(gallery)})
    os.replace(tmp, path)
    return path


def _kept_metadata(path: Path) -> dict | None:
    """The metadata of a kept-states file, or None when there is none, it cannot be read, or
    it is not ours."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, ValueError, SafetensorError):
        return None
    return meta if meta.get("format") == KEPT_FORMAT else None


def load_kept(path: str | Path, model: Recognizer,
              gallery: Gallery) -> tuple[MidStates, MidStates] | None:
    """The (test, train) top-block states kept at ``path``, or None when there are none, the
    file is unreadable, or they belong to other weights or another gallery."""
    path = Path(path)
    meta = _kept_metadata(path)
    if (meta is None or meta.get("model") != model_key(model)
            or meta.get("gallery") != gallery_key(gallery)):
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            t = {k: f.get_tensor(k) for k in ("test_plain", "test_flip", "train_plain",
                                              "train_flip")}
    except (OSError, ValueError, KeyError, SafetensorError):
        return None
    if len(t["test_plain"]) != len(gallery.test_y) or len(t["train_plain"]) != len(gallery.train_y):
        return None
    top = len(model.blocks) - 1
    return (MidStates(top, t["test_plain"], t["test_flip"]),
            MidStates(top, t["train_plain"], t["train_flip"]))


def carry_kept(src_checkpoint: str | Path, dst_checkpoint: str | Path,
               model: Recognizer) -> Path | None:
    """Copy a checkpoint's kept states beside another checkpoint of ``model`` when they still
    fit its weights (a rollback of a top-block task, an export of one); None otherwise."""
    src, dst = states_path(src_checkpoint), states_path(dst_checkpoint)
    meta = _kept_metadata(src)
    if meta is None or meta.get("model") != model_key(model):
        return None
    if src.resolve() != dst.resolve():  # in place (``threshold`` without --out): nothing to copy
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return dst
