"""Distillation views (pretraining/augment.py): each one does what it says, on tiny batches."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pretraining import augment as A
from pretraining.config import PretrainConfig


def batch(n: int = 4, side: int = 24, seed: int = 0) -> torch.Tensor:
    """Smooth random float pictures in [0, 1] (upsampled noise: JPEG and blur behave)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, side // 4, side // 4, generator=g)
    return torch.nn.functional.interpolate(small, size=(side, side), mode="bilinear", align_corners=False)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_frame_identity_recovers_the_inner_crop() -> None:
    wide = (batch(2, 40) * 255).round().to(torch.uint8)
    inner = wide[:, :, 8:32, 8:32]
    out = A.frame(wide, 24, 24 / 40, gen(), flip=False)
    assert out.shape == (2, 3, 24, 24) and out.dtype == torch.float32
    assert torch.allclose(out * 255, inner.float(), atol=1e-3)


def test_frame_flip_mirrors_and_zoom_out_shows_context() -> None:
    wide = (batch(1, 40) * 255).round().to(torch.uint8)
    flipped = A.frame(wide, 24, 24 / 40, gen(1), flip=True)
    plain = A.frame(wide, 24, 24 / 40, gen(1), flip=False)
    assert torch.allclose(flipped, plain) or torch.allclose(flipped, plain.flip(-1), atol=1e-4)
    wide[:, :, :4] = 255  # a white band in the context only
    zoomed = A.frame(wide, 24, 24 / 40, gen(), scale=(1.6, 1.6), flip=False)
    plain = A.frame(wide, 24, 24 / 40, gen(), flip=False)
    assert zoomed[0, :, 0].mean() > 0.99 and plain[0, :, 0].mean() < 0.99


def test_masks_leave_unchosen_samples_untouched() -> None:
    x = batch()
    mask = torch.tensor([True, False, True, False])
    for out in (A.low_resolution(x, mask, gen(), 6, 8), A.gaussian_blur(x, mask, gen(), 1.5),
                A.colour_cast(x, mask, gen()), A.greyscale(x, mask), A.jpeg(x, mask, gen(), 10, 10),
                A.tight_crop(x, mask, gen())):
        assert out.shape == x.shape and torch.equal(out[~mask], x[~mask])
        assert not torch.equal(out[mask], x[mask])
        assert out.min() >= 0 and out.max() <= 1


def test_low_resolution_removes_fine_detail() -> None:
    x = torch.rand(1, 3, 32, 32, generator=gen())  # pixel noise: all fine detail
    out = A.low_resolution(x, torch.tensor([True]), gen(), 8, 8)
    assert out.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()


def test_blur_keeps_flat_pictures_and_mean() -> None:
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(A.gaussian_blur(flat, torch.tensor([True, True]), gen()), flat, atol=1e-6)
    x = batch(2)
    out = A.gaussian_blur(x, torch.tensor([True, True]), gen(), 1.5)
    assert abs(out.mean() - x.mean()) < 0.01


def test_greyscale_is_luma_in_every_channel() -> None:
    out = A.greyscale(batch(), torch.ones(4, dtype=torch.bool))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_colour_cast_gains_are_per_channel_and_bounded() -> None:
    grey = torch.full((3, 3, 8, 8), 0.5)
    out = A.colour_cast(grey, torch.ones(3, dtype=torch.bool), gen(), strength=0.3)
    gains = out[:, :, 0, 0] / 0.5
    assert (gains >= 0.7 - 1e-6).all() and (gains <= 1.3 + 1e-6).all()
    assert (gains.std(1) > 0).all()  # a tint, not just brightness


def test_jpeg_changes_little_at_quality_60_and_more_at_10() -> None:
    x = batch(1, 32)
    every = torch.tensor([True])
    err_hi = (A.jpeg(x, every, gen(), 60, 60) - x).abs().mean()
    err_lo = (A.jpeg(x, every, gen(), 10, 10) - x).abs().mean()
    assert 0 < err_hi < err_lo < 0.2


def test_tight_crop_blacks_out_only_the_border() -> None:
    x = torch.full((8, 3, 20, 20), 0.6)
    out = A.tight_crop(x, torch.ones(8, dtype=torch.bool), gen())
    assert (out[:, :, 7:17, 6:14] == 0.6).all()  # eyes to mouth always kept
    assert ((out == 0) | (out == x)).all() and (out == 0).any()


@pytest.mark.parametrize("mode", ["robust", "basic"])
def test_robust_views_shape_range_and_seed(mode: str) -> None:
    wide = (batch(6, 40) * 255).round().to(torch.uint8)
    cfg = replace(PretrainConfig(), augment=mode)
    a = A.robust_views(wide, 24, 24 / 40, cfg, gen(3))
    b = A.robust_views(wide, 24, 24 / 40, cfg, gen(3))
    assert a.shape == (6, 3, 24, 24) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


def test_unknown_augment_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown augment"):
        A.robust_views(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 8, 1.0,
                       replace(PretrainConfig(), augment="heavy"), gen())
