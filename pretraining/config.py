"""The backbone distillation's knobs (``python -m pretraining pretrain``): every one a flag."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gslora_core.config import knob


@dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining by distilling a face-embedding teacher (dlib, 128-d) into the ViT.

    Why distillation: 12.7k LFW pictures are too few to teach a transformer faces from labels
    alone, but every picture carries a dense target (the teacher's embedding), identity or not.
    The loss is 1 - cos(student, teacher) plus ``relation_weight`` times the mean squared gap
    between the batch's student and teacher cosine matrices, which is what verification uses.
    Every knob is a ``pretrain`` flag (``--weight-decay 0.01``, ``--p-grey 0.3``...).
    """

    epochs: int = knob(30, "epochs of the run's cosine schedule")
    batch_size: int = knob(128, "pictures per step")
    lr: float = knob(5e-4, "peak learning rate (the shipped backbone's; 1e-3 was not tried)")
    weight_decay: float = knob(0.05, "AdamW weight decay on the weight matrices")
    warmup_epochs: int = knob(1, "epochs of linear warm-up before the cosine decay")
    relation_weight: float = knob(1.0, "weight of the batch cosine-matrix gap beside 1 - cos")
    colour_jitter: float = knob(0.2, "+- share of brightness and contrast jitter")
    drop_path: float = knob(
        0.0, "stochastic depth while pretraining: the top block skips its attention and MLP "
             "branches with this probability, lower blocks proportionally less (0: off; "
             "the model that is saved and forgotten with never drops anything)")
    seed: int = knob(0, "random seed (initialisation, order, views)")
    device: str = knob("auto", "auto, cpu or cuda")
    # Views the student sees (pretraining/augment.py). Their target is the teacher's embedding
    # of the clean picture (why: bench/results/teacher_views.md); mixed faces (p_mix) differ.
    # The default is the shipped backbone's views: robust views lost on the held-out people
    # against basic ones (README, "The backbone"; bench/results/candidates/*robust*).
    augment: str = knob(
        "basic", "views: basic (the shipped backbone's: flip, scale 0.9-1.1, shift, "
                 "brightness/contrast) or robust (every knob below as well: framing, "
                 "resolution, blur, colour, greyscale, JPEG, tight crops)")
    scale_min: float = knob(0.85, "robust views: smallest framing scale (< 1 zooms in)")
    scale_max: float = knob(1.2, "robust views: largest framing scale (> 1 zooms out; needs the "
                                 "cache's wide crops)")
    shift: float = knob(0.06, "robust views: +- shift, as a share of the crop side")
    rotate_deg: float = knob(10.0, "robust views: +- rotation in degrees")
    p_tight: float = knob(0.2, "robust views: share of tight pre-cropped faces (black outside "
                               "a box around the face)")
    p_grey: float = knob(0.15, "robust views: share of greyscale pictures")
    p_blur: float = knob(0.15, "robust views: share of blurred pictures")
    blur_sigma_max: float = knob(1.8, "robust views: largest blur sigma, pixels at 112 px")
    p_lowres: float = knob(0.25, "robust views: share of faces seen at lowres_min..lowres_max "
                                 "px, then upscaled")
    lowres_min: int = knob(24, "robust views: smallest low-resolution face side (px)")
    lowres_max: int = knob(64, "robust views: largest low-resolution face side (px)")
    p_jpeg: float = knob(0.25, "robust views: share of JPEG-compressed pictures")
    jpeg_quality_min: int = knob(12, "robust views: lowest JPEG quality")
    jpeg_quality_max: int = knob(60, "robust views: highest JPEG quality")
    p_cast: float = knob(0.25, "robust views: share of colour casts")
    colour_cast: float = knob(0.35, "robust views: per-channel gains of 1 +- this")
    keep_every_epoch: bool = knob(False, "also keep <out>.epochNNN.safetensors (for average)")
    # Mixed faces: the one view whose target must come from the teacher seeing it (issue 15).
    p_mix: float = knob(
        0.0, "share of each batch replaced by a blend of two training faces, the target being "
             "the dlib teacher's embedding of that blend, computed on the fly (0: off; needs "
             "pretraining/requirements.txt; at 0.25 a 192x6 epoch on one core takes ~2.2x as long)")
    mix_min: float = knob(0.3, "mixed faces: smallest weight of the first face in a blend")
    mix_max: float = knob(0.7, "mixed faces: largest weight of the first face in a blend")
    p_bank: float = knob(
        0.0, "share of each batch replaced by blends from a mix bank (--mix-bank): blends the "
             "teacher embedded beforehand on every core (scripts/build_mix_bank.py), so they "
             "cost training nothing (0: off)")
    # Same-person pairs: verification thresholds the cosine of two pictures of one person, yet
    # a random batch of 128 training pictures holds ~32 such pairs of 8,128, most of them
    # George W Bush's; these put pictures of many people side by side and match their cosine.
    p_pairs: float = knob(
        0.0, "share of each batch drawn as two pictures of one training person (people with "
             ">= 2 pictures, chosen uniformly), whose student cosine is matched to the "
             "teacher's (pair_weight) (0: off)")
    pair_weight: float = knob(1.0, "weight of the same-person pairs' squared cosine gap to the "
                                   "teacher's (with p_pairs)")

    def __post_init__(self) -> None:
        if self.augment not in ("robust", "basic"):
            raise ValueError(f"unknown augment {self.augment!r} (choose robust or basic)")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path {self.drop_path} must be in [0, 1)")
        if not 0.0 <= self.p_mix <= 1.0:
            raise ValueError(f"p_mix {self.p_mix} must be in [0, 1]")
        if not 0.0 <= self.p_bank <= 1.0:
            raise ValueError(f"p_bank {self.p_bank} must be in [0, 1]")
        if not 0.0 <= self.p_pairs <= 1.0:
            raise ValueError(f"p_pairs {self.p_pairs} must be in [0, 1]")
        if self.p_pairs > 0 and self.p_mix > 0:
            raise ValueError("p_pairs and p_mix both replace batch rows: use p_pairs with "
                             "p_bank, whose blends leave the pairs alone")
        if not 0.0 <= self.mix_min <= self.mix_max <= 1.0:
            raise ValueError(f"mix weights need 0 <= mix_min <= mix_max <= 1, got "
                             f"{self.mix_min}..{self.mix_max}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HybridConfig:
    """Distilling the hybrid backbone's transformer blocks onto dlib's descriptor
    (``python -m pretraining hybrid``): every one a flag.

    The trunk is dlib's own network, frozen, so each view's trunk map and dlib's descriptor of
    it are computed once into a feature bank (``hybrid-bank``); an epoch then costs only the
    blocks. The loss is ``pretrain``'s: 1 - cos to the centred descriptor plus
    ``relation_weight`` times the gap between the batch's cosine matrices."""

    trunk_levels: int = knob(4, "dlib levels under the blocks: 4 (256x4x4, 16 tokens) or 3 "
                                "(128x8x8, 64 tokens)")
    width: int = knob(192, "transformer width")
    depth: int = knob(6, "transformer blocks (one LoRA group each)")
    epochs: int = knob(30, "epochs of the cosine schedule")
    batch_size: int = knob(256, "views per step")
    lr: float = knob(1e-3, "peak learning rate")
    weight_decay: float = knob(0.05, "AdamW weight decay on the weight matrices")
    warmup_epochs: int = knob(1, "epochs of linear warm-up before the cosine decay")
    relation_weight: float = knob(1.0, "weight of the batch cosine-matrix gap beside 1 - cos")
    p_clean: float = knob(0.25, "share of a batch's views that are the clean chip or its "
                                "mirror image (the rest: the bank's robust views)")
    seed: int = knob(0, "random seed (initialisation, order, views)")

    def __post_init__(self) -> None:
        if self.trunk_levels not in (3, 4):
            raise ValueError(f"trunk_levels {self.trunk_levels}: choose 3 or 4")
        if not 0.0 <= self.p_clean <= 1.0:
            raise ValueError(f"p_clean {self.p_clean} must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
