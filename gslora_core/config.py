"""Every default of the engine lives here, as dataclasses, so a reader finds each knob once.

Names follow the paper: ``alpha`` weighs the group-sparsity loss, ``beta`` the forget loss,
``bnd`` bounds the forget loss. The LoRA scaling is ``lora_alpha / rank`` (authors: 1/8).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


def _from_dict(cls, data: dict[str, Any]):
    """Build a dataclass from a dict, ignoring unknown keys (forward compatible checkpoints)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ModelConfig:
    """Face Transformer (plain pre-norm ViT, CLS pooling) plus a CosFace head.

    The default is small enough to forget in seconds on a 2-core CPU (see ENVIRONMENT.md's
    throughput table); ``ModelConfig.paper()`` is the authors' size.
    """

    img_size: int = 112
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    cosface_s: float = 64.0
    cosface_m: float = 0.35
    stem: str = "patch"  # "patch": one patchify conv (the paper); "conv": a small conv stem

    @classmethod
    def paper(cls) -> "ModelConfig":
        return cls(img_size=112, patch_size=8, embed_dim=512, depth=6, num_heads=8, mlp_ratio=4.0)

    @classmethod
    def small(cls) -> "ModelConfig":
        """64 px, patch 8: trains from scratch in about a minute on 2 cores (tests, quick demos)."""
        return cls(img_size=64, patch_size=8, embed_dim=128, depth=4, num_heads=4)

    @classmethod
    def tiny(cls) -> "ModelConfig":
        """For unit tests: random weights, runs in milliseconds."""
        return cls(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, mlp_ratio=2.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class DataConfig:
    """How a gallery folder becomes train/test tensors.

    ``preprocess`` names the face cropper: "center" crops the middle of the picture (fine for
    LFW's deep-funneled images, which are already roughly aligned).
    """

    preprocess: str = "center"
    center_crop_fraction: float = 0.5
    test_fraction: float = 0.25
    min_test: int = 1
    min_images: int = 4
    max_per_identity: int | None = None
    split_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class IngestConfig:
    """Limits on what a gallery upload may contain; everything past them is refused with a reason.

    Why limits: a public demo gets zip bombs and 50-megapixel phone pictures; decoding those
    would take the memory every other visitor needs."""

    max_file_mb: float = 20.0  # one picture, compressed
    max_pixels: int = 25_000_000  # one picture, decoded (a 50 MP photo is refused)
    min_side: int = 24  # pixels; smaller pictures hold no usable face
    max_images: int = 5000
    max_identities: int = 1000
    max_zip_mb: float = 500.0  # total uncompressed size of a zip's pictures
    max_zip_ratio: float = 200.0  # uncompressed / compressed, per member (zip bombs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Supervised CosFace training of a recognizer (enrollment) on a gallery's train split."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.0
    augment: bool = True
    # From a pretrained backbone: the backbone learns at lr * backbone_lr_scale (small, so a
    # 300-picture gallery adapts it without erasing what pretraining taught).
    backbone_lr_scale: float = 1.0
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_backbone(cls) -> "TrainConfig":
        """Enrollment on a pretrained backbone: the head starts at the class means, few epochs."""
        return cls(epochs=8, lr=1e-3, warmup_epochs=1, backbone_lr_scale=0.1)


@dataclass(frozen=True)
class PretrainConfig:
    """Backbone pretraining by distilling a face-embedding teacher (dlib, 128-d) into the ViT.

    Why distillation: 12.7k LFW pictures are too few to teach a transformer faces from labels
    alone, but every picture carries a dense target (the teacher's embedding), identity or not.
    The loss is 1 - cos(student, teacher) plus ``relation_weight`` times the mean squared gap
    between the batch's student and teacher cosine matrices, which is what verification uses.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 5e-4  # the shipped backbone's (1e-3 was not tried)
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    relation_weight: float = 1.0
    colour_jitter: float = 0.2  # +- brightness and contrast share
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ForgetConfig:
    """One GS-LoRA forgetting task. Defaults are the tested fast preset ("fast")."""

    rank: int = 8
    lora_alpha: float = 1.0  # LoRA scaling = lora_alpha / rank (authors: 1/8)
    # Group sparsity alpha * sum_g ||g||. Proximal mode: its exact proximal step in Adam's metric
    # after each step (exact zeros). proximal=False: alpha*L_struct added to the loss (authors').
    alpha: float = 0.01
    beta: float = 0.5  # forget-loss weight (authors: 0.2; too little to forget on our recognizer)
    bnd: float = 30.0  # bound on each forget picture's CE: L_f = mean_i ReLU(BND - CE_i)
    # 30 steps of 32 + 32 pictures. On the sample gallery with the shipped recognizer this
    # forgets every task of the 4-task continual benchmark completely (Acc_f and Acc_o 0) within
    # 1.6 points of Acc_r; 16 + 16 left half of one task's people recognized, 20 steps a quarter
    # (bench/results/forgetting*.json, README "Benchmarks").
    steps: int = 30
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 32  # per side: one retain and one forget batch per step
    sparsity_warmup: float = 0.3  # fraction of steps with alpha = 0 (authors' warm-up)
    # Final fraction of steps with alpha = 0 and zero groups held at zero (relaxed group lasso).
    refit: float = 0.0
    # Pictures per step of the identities forgotten in *earlier* tasks, with their own bounded
    # forget term: a new task's adapter must not bring them back (Acc_o). 0 = the authors' way
    # (only this task's identities in the forget loss). Needs their pictures in the gallery.
    replay_forgotten: int = 4
    proximal: bool = True  # exact zeros by the group soft-threshold after each step
    data_fraction: float = 1.0  # share of each identity's training images used
    shots: int | None = None  # K-shot per identity instead of a fraction (GS-LoRA++)
    prototype_weight: float = 0.0  # GS-LoRA++ prototype term weight (0 = off)
    bnd_pro: float = 10.0  # bound on the prototype KL term
    eval_every: int = 10  # steps between running Acc_r / Acc_f evaluations (0 = never)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        """Refuse impossible settings up front, with the setting's name in the message."""
        checks = [
            (self.rank >= 1, "rank must be at least 1"),
            (self.lora_alpha > 0, "lora_alpha must be positive"),
            (self.alpha >= 0, "alpha (group sparsity weight) must be 0 or more"),
            (self.beta >= 0, "beta (forget-loss weight) must be 0 or more"),
            (self.bnd > 0, "bnd (forget-loss bound) must be positive"),
            (self.steps >= 1, "steps must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.weight_decay >= 0, "weight_decay must be 0 or more"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.replay_forgotten >= 0, "replay_forgotten must be 0 or more"),
            (0 <= self.sparsity_warmup <= 1, "sparsity_warmup must be between 0 and 1"),
            (0 <= self.refit <= 1, "refit must be between 0 and 1"),
            (self.sparsity_warmup + self.refit <= 1, "sparsity_warmup + refit must be at most 1"),
            (0 < self.data_fraction <= 1, "data_fraction must be in (0, 1]"),
            (self.shots is None or self.shots >= 1, "shots must be at least 1"),
            (self.prototype_weight >= 0, "prototype_weight must be 0 or more"),
            (self.eval_every >= 0, "eval_every must be 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ForgetConfig":
        return _from_dict(cls, data)

    def with_overrides(self, **kw: Any) -> "ForgetConfig":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


# Named recipes a user picks from; "fast" is the tested default.
PRESETS: dict[str, ForgetConfig] = {
    "fast": ForgetConfig(),
    # Closer to the authors' scripts: longer schedule, authors' lr, a fraction of the data.
    "paper": ForgetConfig(steps=300, lr=1e-2, weight_decay=0.05, data_fraction=0.1,
                          beta=0.2, sparsity_warmup=0.3, batch_size=32),
    # GS-LoRA++: few-shot (K=4 per identity) with the prototype term.
    "fewshot": ForgetConfig(shots=4, prototype_weight=0.1, steps=80, batch_size=32),
    # Exact zeros: a strong group lasso picks the blocks, then a refit (warm restart, the zero
    # groups held at zero) lets the chosen blocks finish forgetting. About 40 % of the groups end
    # at zero, at some cost in Acc_r (bench/results/forgetting.json).
    "sparse": ForgetConfig(alpha=1.0, sparsity_warmup=0.2, refit=0.4),
}


def preset(name: str) -> ForgetConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


@dataclass
class TaskRecord:
    """What a checkpoint remembers of one forgetting task (one LoRA adapter set)."""

    name: str
    forgotten: list[str]
    rank: int
    lora_alpha: float
    config: dict[str, Any] = field(default_factory=dict)
    merged: bool = False  # folded into the base weights: history only, no adapter left

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskRecord":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class StudioConfig:
    """The app's per-visitor workspace: shipped files, where session files live, and limits.

    Paths are relative to the project root unless absolute. A session's directory is removed
    when the visitor leaves and, in any case, ``session_ttl_s`` after its last use."""

    sample_gallery: str = "assets/sample_gallery"
    sample_recognizer: str = "checkpoints/sample_recognizer.safetensors"
    backbone: str = "checkpoints/backbone.safetensors"
    sessions_root: str = ""  # "" = <system temp>/gslora_sessions
    session_ttl_s: float = 2 * 3600.0
    max_upload_mb: float = 200.0  # all files of one upload together
    train_concurrency: int = 1  # enroll/forget jobs at once (one CPU or GPU is shared)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    enroll: TrainConfig = field(default_factory=TrainConfig.from_backbone)
