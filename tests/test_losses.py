"""GS-LoRA's losses (gslora_core/losses.py) and the paper's H-Mean (metrics.py)."""
from __future__ import annotations

import pytest
import torch

from gslora_core.losses import bounded_forget_loss, group_lasso, proximal_group_step
from gslora_core.metrics import h_mean


def test_proximal_step_zeroes_small_groups_exactly_and_only_shrinks_large():
    small = [torch.full((2, 3), 0.01), torch.full((3, 2), 0.01)]  # norm ~0.035
    large = [torch.full((2, 3), 1.0), torch.full((3, 2), 1.0)]  # norm sqrt(12) ~ 3.46
    norm_large = float(torch.sqrt(sum(p.pow(2).sum() for p in large)))
    zero = proximal_group_step([small, large], threshold=0.5)
    assert zero == [True, False]
    assert all(torch.count_nonzero(p) == 0 for p in small)
    new_norm = float(torch.sqrt(sum(p.pow(2).sum() for p in large)))
    assert new_norm == pytest.approx(norm_large - 0.5, rel=1e-6)
    # Shrinks, never flips direction.
    assert all((p > 0).all() for p in large)


def test_group_lasso_value():
    g1 = [torch.tensor([[3.0]]), torch.tensor([[4.0]])]  # norm 5
    g2 = [torch.tensor([[0.0, 0.0]])]
    assert float(group_lasso([g1, g2])) == pytest.approx(5.0)


def test_bounded_forget_loss_is_flat_past_bnd():
    labels = torch.tensor([0, 1])

    def loss_and_grad(scale: float) -> tuple[float, torch.Tensor]:
        logits = (torch.tensor([[-1.0, 1.0], [1.0, -1.0]]) * scale).requires_grad_(True)
        out = bounded_forget_loss(logits, labels, bnd=5.0)
        out.backward()
        return float(out.detach()), logits.grad

    low, grad_low = loss_and_grad(1.0)  # CE ~ 2.1 < BND: loss positive, gradient non-zero
    high, grad_high = loss_and_grad(10.0)  # CE ~ 20 > BND: loss 0 and flat
    assert low > 0 and grad_low.abs().sum() > 0
    assert high == 0.0 and grad_high.abs().sum() == 0
    # Per picture: one picture far past BND does not end the push on one still below it.
    mixed = torch.tensor([[-50.0, 50.0], [1.0, -1.0]], requires_grad=True)
    bounded_forget_loss(mixed, torch.tensor([0, 0]), bnd=5.0).backward()
    assert mixed.grad[0].abs().sum() == 0 and mixed.grad[1].abs().sum() > 0


def test_prototype_loss_is_the_bounded_kl_of_embeddings():
    """GS-LoRA++ per the authors: softmax over embedding dimensions, KL from the prototype."""
    from gslora_core.losses import prototype_loss
    g = torch.Generator().manual_seed(0)
    p = torch.randn(4, 16, generator=g)
    assert float(prototype_loss(p, p, 5.0)) == pytest.approx(5.0)  # KL 0: full push
    far = p.clone()
    far[:, 0] += 100.0  # all softmax mass on one dimension: a large KL
    assert float(prototype_loss(far, p, 0.5)) == 0.0  # past the bound: no push
    z = p.clone().requires_grad_(True)
    prototype_loss(z + 0.01 * torch.randn(4, 16, generator=g), p, 5.0).backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0


def test_h_mean_reproduces_paper():
    assert h_mean(74.16, 74.65) == pytest.approx(74.40, abs=0.005)
    assert h_mean(0.0, 0.0) == 0.0

