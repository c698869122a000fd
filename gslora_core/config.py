"""Every default of the engine lives here, as dataclasses, so a reader finds each knob once.

Names follow the paper: ``alpha`` weighs the group-sparsity loss, ``beta`` the forget loss,
``bnd`` bounds the forget loss. The LoRA scaling is ``LORA_ALPHA / rank`` (authors: 1/8).
Settings that no recipe or result ever changed are constants where they act, not knobs:
``LORA_ALPHA`` here, ``lasso.ALPHA_DEPTH``, ``task.CACHE_STATES``; the fixed schedule's lasso is
always the proximal one. Stored configs that still name them are read (``from_dict`` skips
keys it does not know).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
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
    # "patch": one patchify conv (the paper); "conv": a small conv stem; "dlib": ViT's
    # "hybrid" patch embedding, dlib's pretrained face ResNet (frozen) up to ``trunk_levels``
    # of its five residual levels (4: a 256x4x4 map, 16 tokens; 3: 128x8x8, 64 tokens),
    # projected to ``embed_dim``. Its input is dlib's 150 px chip (``img_size`` 150).
    stem: str = "patch"
    trunk_levels: int = 4
    # Width of the embedding: 0 keeps the class token's (``embed_dim``, LayerNorm'd); else a
    # linear map of it to ``out_dim`` (the hybrid's 128: the width of dlib's descriptor, which
    # its blocks are distilled onto).
    out_dim: int = 0

    @property
    def embedding_dim(self) -> int:
        """Width of the embedding the CosFace head reads."""
        return self.out_dim or self.embed_dim

    @property
    def face_template(self) -> str:
        """The face chip this backbone reads (``alignment.TEMPLATES``): dlib's for the hybrid."""
        return "dlib" if self.stem == "dlib" else "arcface"

    @classmethod
    def hybrid(cls, trunk_levels: int = 4) -> "ModelConfig":
        """The hybrid backbone: dlib's frozen trunk under 6 pre-norm blocks of width 192, a
        128-d embedding."""
        return cls(img_size=150, embed_dim=192, depth=6, num_heads=3, stem="dlib",
                   trunk_levels=trunk_levels, out_dim=128)

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

    def sized(self, width: int = 0, depth: int = 0) -> "ModelConfig":
        """This config at another width and/or depth (0 keeps it); a new width keeps attention
        heads of 64 channels, as the default's (192 = 3 x 64)."""
        return replace(self, embed_dim=width or self.embed_dim, depth=depth or self.depth,
                       num_heads=max(1, width // 64) if width else self.num_heads)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data)


# What a gallery's pictures show: faces to align (mtcnn), faces already aligned (center), or
# objects, used whole (see DataConfig).
PREPROCESS = ("mtcnn", "center", "whole")


@dataclass(frozen=True)
class DataConfig:
    """How a gallery folder becomes train/test tensors.

    ``preprocess`` says what a picture shows and so how it is cropped (``PREPROCESS``): "mtcnn"
    finds and aligns a face; "center" crops the middle of the picture (fine for LFW's
    deep-funneled images, which are already roughly aligned); "whole" uses the whole picture
    (its central square, resized), for galleries of object classes, where no face is looked
    for. It is chosen by whoever makes the gallery (the recognizer's checkpoint keeps it), never
    guessed from the pictures.
    """

    preprocess: str = "center"
    center_crop_fraction: float = 0.5
    test_fraction: float = 0.25
    # Validation pictures per identity, kept out of training and test: recipes, schedules and
    # early stops are chosen there, never on test. 0 by default: an uploaded gallery of 5
    # pictures a person needs them to train; the benchmarks' galleries set it (bench/lfw100.py).
    val_fraction: float = 0.0
    min_test: int = 1
    min_val: int = 0
    min_images: int = 4
    max_per_identity: int | None = None
    split_seed: int = 0
    # "hash": each file's part is fixed by a hash of its name against the shares, so adding a
    # picture never moves another (see data.split_labels). "rank": the first checkpoints' rule
    # (the lowest-ranked quarter is test), kept so they are read with the split they trained on.
    split: str = "hash"

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS:
            raise ValueError(f"unknown preprocess {self.preprocess!r} (choose "
                             f"{', '.join(PREPROCESS)})")
        if self.split not in ("hash", "rank"):
            raise ValueError(f"unknown split {self.split!r} (choose hash or rank)")
        if not (0 <= self.test_fraction < 1 and 0 <= self.val_fraction < 1
                and self.test_fraction + self.val_fraction < 1):
            raise ValueError("test_fraction + val_fraction must leave pictures to train on")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        """A checkpoint written before ``split`` existed trained on the "rank" split."""
        return _from_dict(cls, {"split": "rank", **data})


@dataclass(frozen=True)
class IngestConfig:
    """Limits on what a gallery upload may contain; everything past them is refused with a reason.

    Why limits: a public demo gets zip bombs and 50-megapixel phone pictures; decoding those
    would take the memory every other visitor needs."""

    max_file_mb: float = 20.0  # one picture, compressed
    max_pixels: int = 25_000_000  # one picture, decoded (a 50 MP photo is refused)
    min_side: int = 24  # pixels; smaller pictures hold no usable face
    # Larger decoded pictures are scaled down to this side at once: a face needs far fewer
    # pixels, and a class uploading 12 MP phone photos would otherwise hold 36 MB a picture
    # in memory while faces are found.
    max_side: int = 2048
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
    # The open-set threshold keeps this share of the correct answers on held-back pictures
    # (openset.calibrate); 0.99 keeps the retained people within about a point of top-1.
    open_set_keep: float = 0.99

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_backbone(cls) -> "TrainConfig":
        """Enrollment on a pretrained backbone: the head starts at the class means, few epochs."""
        return cls(epochs=8, lr=1e-3, warmup_epochs=1, backbone_lr_scale=0.1)


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(path: str) -> Path:
    """A shipped file: relative paths are taken from the project root, not the working dir."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def knob(default: Any, help: str, label: str = "") -> Any:
    """A setting with its help text: the CLI's flags and the page's fields are made from these,
    so each knob is defined (and explained) once. ``label`` is its short name on the page."""
    return field(default=default, metadata={"help": help, "label": label})


# Whether a task pushes its forget pictures to "not recognized" (ForgetConfig.unknown).
UNKNOWN = ("auto", "on", "off")

# Whether a task's change is gated by closeness to the forgotten classes (ForgetConfig.gate).
GATE = ("auto", "on", "off")

# A release task's learning rate: constant, or a cosine over the task (ForgetConfig.lr_decay).
LR_DECAY = ("auto", "none", "cosine")

# A task's adapters add (LORA_ALPHA / rank) * B A: 1/8 at the default rank 8, the authors'.
LORA_ALPHA = 1.0

# The paper's face head (CosFace s = 64, m = 0.35): BND (ForgetConfig.bnd) is in its logits.
PAPER_HEAD_SCALE = 64.0
PAPER_HEAD_MARGIN = 0.35


@dataclass(frozen=True)
class ForgetConfig:
    """One GS-LoRA forgetting task. The defaults are the default recipe ("fast"), for any size.

    The default schedule ("release") trains the top block's adapter alone and releases the next
    block down only when the blocks it has cannot finish the task within ``stage_steps``; it
    stops as soon as every forget picture is forgotten by the stopping rule (see
    ``forgetting``), or at the cap (``steps``, ``max_seconds``), which the report then says.
    The "fixed" schedule is the earlier one: a group lasso picks blocks, then a fixed count."""

    rank: int = knob(8, "LoRA rank r (scale LORA_ALPHA / r: 1/8 at 8, the authors')", "rank r")
    schedule: str = knob(
        "release", "release: blocks released from the top as the task needs them, stop when "
                   "done; fixed: a group lasso over every block, then a fixed step count "
                   "(the authors' shape)", "schedule")
    start_blocks: int = knob(
        1, "release: blocks trained from the first step, counted from the top (0 = every "
           "block: dense LoRA)", "blocks at start (0 = all)")
    stage_steps: int = knob(
        80, "release: steps without progress (no fewer forget pictures left than before) "
            "after which the next block down is released (80: on the hybrid backbone the "
            "one-block stage's count of pictures left swings for tens of steps before it "
            "reaches 0; docs/results.md). At a decaying rate (lr_decay) no block is released",
        "patience before releasing a block")
    margin: float = knob(
        0.1, "release: how far below the recognizer's threshold a forget picture's best cosine "
             "must go (its push to 'not recognized' and the stopping rule's margin)",
        "margin below the threshold")
    unknown: str = knob(
        "auto", "release: also push each forget picture below the open-set threshold, so it is "
                "answered 'not recognized', and ask that of the stopping rule: on, off, or auto "
                "(on for faces, where a forgotten person must come out unknown; off for object "
                "classes, whose measure is Acc_f: a forgotten class may be taken for another)",
        "forgotten = not recognized")
    gate: str = knob(
        "auto", "apply the task's change only to pictures the recognizer, without the gated "
                "adapters, places nearest a forgotten class (gslora_core/gate.py): on, off, or "
                "auto (on for faces on the release schedule, where an ungated change cost the "
                "kept people their answer at the threshold; off for object classes). A gated "
                "task is exported as its adapter, not merged into plain weights",
        "gate the change")
    gate_k: float = knob(
        30.0, "the gate's sharpness k: g = sigmoid(k (closeness to a forgotten class - "
              "max(tau - c, closeness to any other class + lead)))", "gate: sharpness k")
    gate_c: float = knob(
        0.15, "the gate's reach c: how far under the threshold tau a picture's cosine to a "
              "forgotten class may be and still open the gate", "gate: reach c")
    gate_lead: float = knob(
        0.05, "the gate's lead: how far a picture's cosine to a forgotten class must lead its "
             "cosine to every other class (a picture the recognizer took for someone else "
             "before the task is left as it was)", "gate: lead")
    gate_bnd: float = knob(
        70.0, "BND of a gated task, in place of bnd: the gate keeps the kept people out of the "
              "push's way, so it asks the forgotten people's pictures for a wider gap, and their "
              "held-back pictures end further from their own class (chosen on validation "
              "pictures: bench/results/tuning/gate, rounds 3-4)", "gate: BND")
    gate_bnd_fallback: float = knob(
        65.0, "release: the BND a gated task falls back to when the blocks in use make no "
              "progress, before it releases a block (once; 0 or not under gate_bnd: none). The "
              "wider gap costs a few steps where it is within reach and no block where it is "
              "not", "gate: fallback BND")
    lr_decay: str = knob(
        "auto", "release: the learning rate: none (constant; blocks are released as the task "
                "needs them), cosine (from lr to 0 at the step cap, and the task keeps the "
                "blocks it starts with: the count of pictures left swings until the rate is "
                "low, too late for a released block to pay for itself), or auto (cosine for "
                "object classes, whose one-block stage swings at a constant rate and never "
                "settles on all of a class's pictures; none for faces, where cosine left more "
                "held-back pictures named; docs/objects.md)",
        "learning-rate decay")
    check_every: int = knob(5, "release: steps between checks of the stopping rule")
    max_seconds: float = knob(0.0, "cap on the task's training seconds (0 = none)",
                              "time cap (s, 0 = none)")
    alpha: float = knob(
        0.5, "fixed: group sparsity, relative: a block keeps its adapter while its gradient is "
             "at least alpha x the strongest block's (after the depth weighting, "
             "lasso.depth_weights); 0 = none",
        "α (group sparsity, fixed schedule)")
    beta: float = knob(0.25, "forget-loss weight (authors 0.15-0.3)", "β (forget loss)")
    keep: float = knob(
        100.0, "weight of holding each retained picture's embedding where it was at the task's "
             "start (1 - cosine; 0 = off)", "keep retained embeddings")
    keep_views: int = knob(
        1, "views the keep term holds: 1 = the training view; 2 = also the mirrored view (the "
           "recognizer answers with both)", "keep: views")
    bnd: float = knob(45.0, "bound BND on each forget picture's margin: "
                            "L_f = mean_i ReLU(BND - m_i), in the logits of the paper's face "
                            "head (s 64, m 0.35); another head gets the same cosine gap",
                      "BND (forget bound)")
    steps: int = knob(400, "most optimizer steps (release: the cap; fixed: the count)",
                      "step cap")
    lr: float = knob(1e-2, "learning rate (release: constant for faces; for object classes it "
                           "falls to 0 along a cosine over the task; fixed: held during the "
                           "lasso, cosine in the refit)", "learning rate")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    batch_size: int = knob(128, "retain and forget pictures per step (each)")
    sparsity_warmup: float = knob(
        0.0, "fixed: share of steps with alpha = 0 before the lasso (the authors' warm-up)")
    refit: float = knob(
        0.8, "fixed: final share of steps without sparsity, zero groups held at zero (relaxed "
             "group lasso), run from cached states below the first active block")
    replay_forgotten: int = knob(
        4, "pictures per step of identities forgotten in earlier tasks, kept forgotten by their "
           "own bounded term (0: this task's only, the authors' way)")
    data_fraction: float = knob(1.0, "share of each identity's train images used")
    shots: int | None = knob(None, "K images per identity (few-shot) instead of a fraction",
                             "shots per person (0 = all)")
    prototype_weight: float = knob(
        0.0, "GS-LoRA++ prototype-loss weight (0 = off): push each forgotten picture's embedding "
             "away from its class's K-shot prototype")
    bnd_pro: float = knob(
        1.0, "bound on the KL(softmax(prototype) || softmax(embedding)) of the GS-LoRA++ term "
             "(a picture's KL to its own prototype is ~0.1, to another person's ~0.8)")
    eval_every: int = knob(10, "steps between running Acc_r / Acc_f evaluations on the test "
                               "pictures, shown live only (0 = never)")
    seed: int = knob(0, "random seed")
    device: str = knob("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        """Refuse impossible settings up front, with the setting's name in the message."""
        checks = [
            (self.rank >= 1, "rank must be at least 1"),
            (self.schedule in ("release", "fixed"), "schedule must be release or fixed"),
            (self.start_blocks >= 0, "start_blocks must be 0 (every block) or more"),
            (self.stage_steps >= 1, "stage_steps must be at least 1"),
            (self.margin >= 0, "margin must be 0 or more"),
            (self.unknown in UNKNOWN, f"unknown must be one of {', '.join(UNKNOWN)}"),
            (self.gate in GATE, f"gate must be one of {', '.join(GATE)}"),
            (self.gate_k > 0, "gate_k must be positive"),
            (self.gate_bnd > 0, "gate_bnd (a gated task's forget-loss bound) must be positive"),
            (self.gate_bnd_fallback >= 0, "gate_bnd_fallback must be 0 (none) or more"),
            (self.lr_decay in LR_DECAY, f"lr_decay must be one of {', '.join(LR_DECAY)}"),
            (self.check_every >= 1, "check_every must be at least 1"),
            (self.max_seconds >= 0, "max_seconds must be 0 (no cap) or more"),
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
            (self.keep_views in (1, 2), "keep_views must be 1 or 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ForgetConfig":
        """A config from a stored one; keys of knobs that are gone (``proximal``,
        ``alpha_depth``, ``lora_alpha``, ``cache_hidden``: never changed, now constants) are
        skipped."""
        return _from_dict(cls, data)

    def with_overrides(self, **kw: Any) -> "ForgetConfig":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


# Named recipes: "fast" is the default for every task size; the others are comparisons.
PRESETS: dict[str, ForgetConfig] = {
    "fast": ForgetConfig(),
    # Closer to the authors' scripts: the group lasso over every block after a warm-up, a fixed
    # count of steps, a tenth of the data.
    "paper": ForgetConfig(schedule="fixed", steps=300, lr=1e-2, weight_decay=0.05,
                          data_fraction=0.1, beta=0.2, sparsity_warmup=0.3, refit=0.0,
                          batch_size=32, bnd=30.0),
    # GS-LoRA++: few-shot (K=4 per identity) with the authors' prototype term (weight and bound
    # chosen on LFW-100's validation pictures: bench/results/forgetting_lfw100.json).
    "fewshot": ForgetConfig(shots=4, prototype_weight=5.0, bnd_pro=1.0),
    # LoRA in every block from the first step (no sparsity), the same stopping rule.
    "dense": ForgetConfig(start_blocks=0),
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
    gate: dict[str, Any] | None = None  # gate.Gate's fields; None: the change acts on every picture

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
    # The second sample: 10 object classes of CIFAR-10 (40 test-set pictures each) with the
    # shipped classifier (scripts/train_objects.py), the paper's image-classification setting.
    objects_gallery: str = "assets/sample_objects"
    objects_recognizer: str = "checkpoints/objects_classifier.safetensors"
    backbone: str = "checkpoints/backbone.safetensors"
    sessions_root: str = ""  # "" = <system temp>/gslora_sessions
    session_ttl_s: float = 2 * 3600.0
    max_upload_mb: float = 200.0  # all files of one upload together
    # Trainings of uploaded galleries at once, and forgetting tasks at once, each in a line of
    # its own: a visitor whose recognizer is ready does not wait behind every training queued
    # after it (a classroom uploads 20 galleries in a minute); the two lines share the machine.
    train_concurrency: int = 1
    forget_concurrency: int = 1
    ingest_concurrency: int = 2  # uploads read and aligned at once (apart from training)
    # A classroom: sessions open at once (each holds a gallery and two models: ~60 MB for a
    # 300-picture gallery, 50 fit in a few GB), and how long an upload's training may wait
    # in line before the visitor is sent to the ready sample gallery instead.
    max_sessions: int = 50
    # glibc malloc arenas for the server process (0 = glibc's default, 8 per core). Each thread
    # that allocates gets an arena of its own and their freed memory is rarely returned: with
    # gradio's handler threads, 20 visitors drove the server to 6.2 GB; with 2 arenas 3.8 GB
    # (bench/results/classroom.json).
    malloc_arenas: int = 2
    max_wait_s: float = 900.0
    # Uploaded files are deleted this long after their last upload (identical files from
    # several visitors share one path in gradio's cache: see demo/uploads.py).
    upload_grace_s: float = 600.0
    ingest: IngestConfig = field(default_factory=IngestConfig)
    enroll: TrainConfig = field(default_factory=TrainConfig.from_backbone)
    # Seconds per training picture per epoch of an enrolment, wall clock, on the project's
    # 2-core CPU (the hybrid backbone retraining the sample gallery without 2 people: 11.6 s
    # for 198 pictures x 8 epochs, bench/results/readme_cli/inspect.json, 2026-12-06), for the
    # page's time estimates until a workspace has measured its own.
    train_seconds_per_picture: float = 0.0073
    # A forgetting task's optimizer step with the top block alone, wall clock, on that CPU
    # (the sample's 2-person task: 0.24 s for 17 steps; LFW-100 100-10: 2.2 s for 180 steps,
    # bench/results/sizes_hybrid.json), and one picture's measuring pass, both views (the
    # sample's 300 pictures: 3.8 s, 2026-12-06), for the estimates until a workspace has timed
    # its own.
    forget_seconds_per_step: float = 0.015
    measure_seconds_per_picture: float = 0.013
    # ZeroGPU (demo/gpu.py): every GPU call reserves its duration from the visitor's daily
    # quota before it starts (about 2 min a day anonymous, 3.5 min with a free account) and is
    # stopped past it. The most one call may reserve, the worker's start (fork, CUDA, the model
    # moved), and how much faster than the CPU rates above the GPU is taken to be until the
    # workspace has timed a call there: an assumption, no GPU has measured it yet.
    # A visitor is charged the seconds a call used; what it reserves must be left in their
    # quota, so a short reservation lets more visitors in (``gpu_min_call_s``: the least a call
    # reserves, room for a forgetting task that must release a block).
    gpu_call_limit_s: float = 110.0
    gpu_min_call_s: float = 20.0
    gpu_start_s: float = 10.0
    gpu_speedup: float = 5.0
