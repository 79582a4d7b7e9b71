"""Batched PGD equals foolbox's LinfPGD iterates, respects the ε-ball, and leaves the model untouched."""

from __future__ import annotations

import pytest
import torch

from robench.attacks.pgd import pgd_linf, robust_accuracy, trades_adversary
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    from robench.data import load_dataset

    return load_dataset("sample", limit=16).batch(0, 16)


def test_matches_foolbox_without_random_start(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    import foolbox as fb

    x, y = batch
    model = tiny_model().eval()
    eps, steps, step = 8 / 255, 5, 2 / 255
    ours = pgd_linf(model, x, y, eps=eps, steps=steps, step_size=step, random_start=False)
    attack = fb.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=False)
    raw, _, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    assert torch.allclose(ours, raw, atol=1e-6)


def test_stays_in_ball_and_bounds_and_reduces_accuracy(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    model = tiny_model().eval()
    g = torch.Generator().manual_seed(0)
    adv = pgd_linf(model, x, y, eps=4 / 255, steps=10, step_size=1 / 255, generator=g)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        clean_loss = torch.nn.functional.cross_entropy(model(x), y)
        adv_loss = torch.nn.functional.cross_entropy(model(adv), y)
    assert adv_loss > clean_loss
    again = pgd_linf(model, x, y, eps=4 / 255, steps=10, step_size=1 / 255, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv, again)
    big = robust_accuracy(model, x, y, eps=1.0, steps=20, step_size=0.1)
    assert big.float().mean() <= 0.2


def test_model_mode_stats_and_grads_untouched(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    model = tiny_model().train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    trades_adversary(model, x, steps=2)
    pgd_linf(model, x, y, steps=2)
    assert model.training
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
