"""Lorenz curves and error-rate confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robench.metrics import (
    bootstrap_ci,
    error_rate,
    gini,
    lorenz_curve,
    lorenz_on_grid,
    mean_lorenz_curve,
)
from robench.metrics import error_rates as error_rates_module


def test_lorenz_endpoints_monotone_convex():
    a = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0)) ** 3
    pop, share = lorenz_curve(a)
    assert pop.shape == share.shape == (5, 49)
    assert np.all(pop[:, 0] == 0) and np.all(share[:, 0] == 0)
    assert np.all(pop[:, -1] == 1) and np.all(share[:, -1] == 1)
    assert np.all(np.diff(share, axis=1) >= 0)
    assert np.all(np.diff(share, n=2, axis=1) >= -1e-12)  # convex: sorted ascending
    assert np.all(share <= pop + 1e-12)  # below the equality line


def test_lorenz_area_gives_gini():
    """Independent check: 1 - 2·(trapezoid area under the Lorenz curve) is the Gini index."""
    a = torch.rand(4, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64) ** 2
    pop, share = lorenz_curve(a)
    area = ((share[:, 1:] + share[:, :-1]) / 2 * np.diff(pop, axis=1)).sum(1)
    np.testing.assert_allclose(1 - 2 * area, gini(a).numpy(), rtol=1e-12)


def test_lorenz_equality_line_and_single_vector():
    pop, share = lorenz_curve(np.full(8, 3.0))
    assert pop.shape == share.shape == (9,)
    np.testing.assert_allclose(share, pop)
    _, zero = lorenz_curve(np.zeros((2, 4)))  # all-zero rows: equality line, like Gini 0
    np.testing.assert_allclose(zero, np.broadcast_to(np.linspace(0, 1, 5), (2, 5)))
    _, onehot = lorenz_curve([0.0, 0.0, 0.0, 2.0])
    np.testing.assert_allclose(onehot, [0, 0, 0, 0, 1])
    with pytest.raises(ValueError):
        lorenz_curve([1.0, -1.0])


def test_lorenz_on_grid_and_mean():
    a = np.random.default_rng(2).exponential(size=(6, 10))
    pop, share = lorenz_curve(a)
    grid, on_grid = lorenz_on_grid(a, grid_size=11)  # grid == the curve's own points
    np.testing.assert_allclose(grid, pop[0])
    np.testing.assert_allclose(on_grid, share, rtol=1e-12)
    grid, fine = lorenz_on_grid(a, grid_size=41)
    for row in range(6):
        np.testing.assert_allclose(fine[row], np.interp(grid, pop[row], share[row]), rtol=1e-12)
    g, mean, std = mean_lorenz_curve(a, grid_size=41)
    np.testing.assert_allclose(mean, fine.mean(0))
    np.testing.assert_allclose(std, fine.std(0))
    assert mean[0] == 0 and mean[-1] == pytest.approx(1)


def test_error_rate():
    assert error_rate(torch.tensor([True, False, True, True])) == 0.75
    assert error_rate(np.array([0, 0, 1, 0])) == 0.25
    with pytest.raises(ValueError):
        error_rate([])


def test_bootstrap_ci_deterministic_and_contains_estimate():
    flags = np.random.default_rng(3).random(400) < 0.3
    p = error_rate(flags)
    low, high = bootstrap_ci(flags, seed=5)
    assert (low, high) == bootstrap_ci(torch.from_numpy(flags), seed=5)
    values = np.random.default_rng(0).random(50)  # continuous: seeds give distinct quantiles
    assert bootstrap_ci(values, seed=5) != bootstrap_ci(values, seed=6)
    assert bootstrap_ci(values, seed=5) == bootstrap_ci(values, seed=5)
    assert low <= p <= high and low < high
    # agrees with the normal approximation p ± 1.96 sqrt(p(1-p)/n) (n = 400)
    half = 1.96 * np.sqrt(p * (1 - p) / flags.size)
    assert abs(low - (p - half)) < 0.01 and abs(high - (p + half)) < 0.01
    w90 = np.subtract(*bootstrap_ci(flags, confidence=0.9, seed=5)[::-1])
    assert w90 < high - low
    assert bootstrap_ci(np.ones(50, bool)) == (1.0, 1.0)


def test_bootstrap_ci_independent_of_memory_chunking(monkeypatch):
    flags = np.random.default_rng(4).random(37) < 0.5
    whole = bootstrap_ci(flags, n_boot=500, seed=1)
    monkeypatch.setattr(error_rates_module, "_CHUNK_ELEMENTS", 37 * 7)  # 7 resamples a chunk
    assert bootstrap_ci(flags, n_boot=500, seed=1) == whole
    with pytest.raises(ValueError):
        bootstrap_ci(flags, confidence=1.5)
