"""Views of a face for distillation: the framings and cameras users' photos come with.

Why: distilled on one crop style (LFW through MTCNN), the student learned that style: it lost
14 points to its teacher on tight pre-cropped uploads (issue 15). Each function below imitates
one way a real upload differs, in the aligned-crop space pretraining works in, so the student
sees it during distillation. The target stays the teacher's embedding of the clean picture: the
student must give the same person the same embedding whatever the photo did to them.

Every function takes a float batch (N, 3, H, W) in [0, 1] (``frame`` takes the uint8 crops),
a boolean mask of the samples to change (or a probability, via ``pick``) and a torch Generator,
so a run is reproducible from its seed. Order in ``robust_views`` follows a real upload: the
camera and the file (resolution, blur, colour, greyscale, JPEG) come before the aligner's warp
runs off the edges of a tight crop (black there).
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .config import PretrainConfig

OUTSIDE_FILL = 0.0  # what the aligner's warp leaves where the template runs off the picture


def pick(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """Boolean mask: each of ``n`` samples chosen with probability ``p``."""
    return torch.rand(n, generator=gen) < p


def uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def frame(images: torch.Tensor, out_size: int, inner: float, gen: torch.Generator,
          scale: tuple[float, float] = (1.0, 1.0), shift: float = 0.0, rotate_deg: float = 0.0,
          flip: bool = True) -> torch.Tensor:
    """Crop uint8 (N, 3, S, S) pictures at another scale, offset, angle and mirror -> float.

    ``inner`` is the share of the side that is the standard aligned crop (112 / 160 for the
    cache's wide crops, 1 for plain crops). Scale 1, no shift, no angle gives back that crop
    (resampled to ``out_size``); scale > 1 shows more around the face, < 1 less. Outside the
    picture the border is repeated (wide crops make that rare)."""
    x = images.float() / 255.0
    n = x.shape[0]
    s = uniform(n, *scale, gen)
    a = uniform(n, -rotate_deg, rotate_deg, gen) * math.pi / 180
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift * 2  # normalised coords span 2
    f = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = s * torch.cos(a) * f
    theta[:, 0, 1] = -s * torch.sin(a)
    theta[:, 1, 0] = s * torch.sin(a) * f
    theta[:, 1, 1] = s * torch.cos(a)
    theta[:, :, 2] = t
    theta = theta * inner
    grid = F.affine_grid(theta, [n, 3, out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)


def low_resolution(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                   lo: int = 24, hi: int = 64) -> torch.Tensor:
    """The face seen at ``lo``..``hi`` pixels (antialiased), then upscaled back (bilinear), as
    the aligner does with a small face in a big photo."""
    out = x.clone()
    size = x.shape[-1]
    for i in torch.nonzero(mask).flatten().tolist():
        side = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        small = F.interpolate(x[i:i + 1], size=(side, side), mode="bilinear", antialias=True,
                              align_corners=False)
        out[i:i + 1] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp(0, 1)


def gaussian_blur(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                  sigma_max: float = 1.8) -> torch.Tensor:
    """Separable Gaussian blur, sigma uniform in (0.3, ``sigma_max``) pixels per chosen sample."""
    idx = torch.nonzero(mask).flatten()
    if len(idx) == 0:
        return x
    sigma = uniform(len(idx), 0.3, sigma_max, gen)
    radius = max(1, math.ceil(3 * sigma_max))
    r = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(3, 0)  # one kernel per channel
    sel = x[idx]
    m, c, h, w = sel.shape
    y = sel.reshape(1, m * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k[:, None, None, :], groups=m * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=m * c)
    out = x.clone()
    out[idx] = y.reshape(m, c, h, w)
    return out


def colour_cast(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
                strength: float = 0.35) -> torch.Tensor:
    """Per-channel gains 1 +- ``strength`` (white balance gone wrong, tinted light)."""
    gains = torch.where(mask[:, None], uniform(len(x) * 3, 1 - strength, 1 + strength, gen)
                        .reshape(-1, 3), torch.ones(len(x), 3))
    return (x * gains[:, :, None, None].to(x.dtype)).clamp(0, 1)


def brightness_contrast(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """Random brightness and contrast (+- ``amount``) on every sample."""
    if amount <= 0:
        return x
    n = x.shape[0]
    b = uniform(n, 1 - amount, 1 + amount, gen)[:, None, None, None].to(x.dtype)
    c = uniform(n, 1 - amount, 1 + amount, gen)[:, None, None, None].to(x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean * b).clamp(0, 1)


def greyscale(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma in all three channels, as PIL's ``convert("L")`` then back to RGB."""
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].expand_as(x)
    return torch.where(mask[:, None, None, None], luma, x)


def jpeg(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator,
         q_lo: int = 12, q_hi: int = 60) -> torch.Tensor:
    """JPEG round trip at quality ``q_lo``..``q_hi`` (blocking, ringing, chroma smear)."""
    out = x.clone()
    for i in torch.nonzero(mask).flatten().tolist():
        q = int(torch.randint(q_lo, q_hi + 1, (1,), generator=gen))
        arr = (x[i].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
                                      ).permute(2, 0, 1)
    return out


def tight_crop(x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What the aligner makes of a tight pre-cropped upload: the picture ends close around the
    face, and where the template runs past its edges the aligned crop is black (seen on LFW
    faces cropped to their MTCNN box: bench/robustness.py's tight_crop). The kept box always
    holds the eyes-to-mouth region of the template (rows ~0.35-0.85, columns ~0.3-0.7)."""
    n, _, h, w = x.shape
    left = uniform(n, 0.0, 0.2, gen)
    right = uniform(n, 0.8, 1.0, gen)
    top = uniform(n, 0.0, 0.2, gen)
    bottom = uniform(n, 0.85, 1.0, gen)
    cols = (torch.arange(w, dtype=x.dtype) + 0.5) / w
    rows = (torch.arange(h, dtype=x.dtype) + 0.5) / h
    inside = (((cols[None] >= left[:, None]) & (cols[None] <= right[:, None]))[:, None, :]
              & ((rows[None] >= top[:, None]) & (rows[None] <= bottom[:, None]))[:, :, None])
    keep = inside | ~mask[:, None, None]
    return torch.where(keep[:, None], x, torch.full_like(x, OUTSIDE_FILL))


def robust_views(images: torch.Tensor, out_size: int, inner: float, cfg: PretrainConfig,
                 gen: torch.Generator) -> torch.Tensor:
    """One training view of each uint8 crop (N, 3, S, S): framing, then camera and file, then
    the aligner's padding. ``cfg.augment == "basic"`` gives the shipped backbone's recipe."""
    n = images.shape[0]
    if cfg.augment == "basic":
        x = frame(images, out_size, inner, gen, (0.9, 1.1), 0.03, 0.0)
        return brightness_contrast(x, cfg.colour_jitter, gen)
    if cfg.augment != "robust":
        raise ValueError(f"unknown augment {cfg.augment!r} (robust or basic)")
    x = frame(images, out_size, inner, gen, (cfg.scale_min, cfg.scale_max), cfg.shift,
              cfg.rotate_deg)
    x = low_resolution(x, pick(n, cfg.p_lowres, gen), gen, cfg.lowres_min, cfg.lowres_max)
    x = gaussian_blur(x, pick(n, cfg.p_blur, gen), gen, cfg.blur_sigma_max)
    x = brightness_contrast(x, cfg.colour_jitter, gen)
    x = colour_cast(x, pick(n, cfg.p_cast, gen), gen, cfg.colour_cast)
    x = greyscale(x, pick(n, cfg.p_grey, gen))
    x = jpeg(x, pick(n, cfg.p_jpeg, gen), gen, cfg.jpeg_quality_min, cfg.jpeg_quality_max)
    return tight_crop(x, pick(n, cfg.p_tight, gen), gen)
