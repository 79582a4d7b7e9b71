"""Concentration measures (entropy, participation ratio, top-k mass) against direct computations, and all-zero maps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robench.metrics.concentration import normalized_entropy, participation_ratio, top_mass


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    """Non-negative maps of several shapes of inequality: uniform noise, heavy-tailed, sparse."""
    rng = np.random.default_rng(0)
    heavy = rng.pareto(1.5, size=(4, 3, 8, 8))
    sparse = rng.random((4, 3, 8, 8)) * (rng.random((4, 3, 8, 8)) < 0.05)
    return np.concatenate([rng.random((4, 3, 8, 8)), heavy, sparse])


def test_entropy_against_scipy_and_quantus_complexity(maps: np.ndarray) -> None:
    from scipy.stats import entropy

    n = maps[0].size
    ours = normalized_entropy(torch.from_numpy(maps)).numpy()
    direct = np.array([entropy(m.ravel()) / math.log(n) for m in maps])  # scipy normalises p itself
    assert np.allclose(ours, direct, atol=1e-12)
    quantus = pytest.importorskip("quantus")
    complexity = quantus.Complexity(disable_warnings=True).evaluate_batch(x_batch=maps.copy(), a_batch=maps.copy())
    assert np.allclose(ours * math.log(n), complexity, atol=1e-6)  # Quantus: −Σ p log(p + 1e-12), natural log


def test_participation_ratio_and_top_mass_direct(maps: np.ndarray) -> None:
    flat = maps.reshape(len(maps), -1)
    p = flat / flat.sum(1, keepdims=True)
    assert np.allclose(participation_ratio(torch.from_numpy(maps)).numpy(), 1 / (p**2).sum(1) / flat.shape[1])
    for fraction in (0.01, 0.05, 0.5):
        k = math.ceil(fraction * flat.shape[1])
        want = np.sort(flat, axis=1)[:, ::-1][:, :k].sum(1) / flat.sum(1)
        assert np.allclose(top_mass(torch.from_numpy(maps), fraction).numpy(), want)


def test_extremes_and_all_zero_maps() -> None:
    n = 100
    uniform, one_hot, zero = torch.ones(1, n), torch.zeros(1, n), torch.zeros(1, n)
    one_hot[0, 7] = 3.0
    batch = torch.cat([uniform, one_hot, zero])
    assert normalized_entropy(batch)[:2].tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    assert participation_ratio(batch)[:2].tolist() == pytest.approx([1.0, 1 / n])
    assert top_mass(batch, 0.05)[:2].tolist() == pytest.approx([0.05, 1.0])
    for measure in (normalized_entropy(batch), participation_ratio(batch), top_mass(batch, 0.01)):
        assert math.isnan(measure[2])
    with pytest.raises(ValueError, match="non-negative"):
        participation_ratio(-batch)


def dark_blind_model(path: Path) -> Path:
    """A linear model of relu(x − 0.5): images darker than 0.5 everywhere have an all-zero saliency map."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    with torch.no_grad():
        net[1].bias.copy_(torch.arange(10.0) / 100)  # a dark image's logits: the bias, so class 9

    class Shift(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(torch.relu(x - 0.5))

    torch.jit.trace(Shift(), torch.rand(2, 3, 8, 8)).save(str(path))
    return path


def test_all_zero_maps_are_reported_and_warned(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    x[:5] = rng.integers(0, 100, (5, 8, 8, 3), dtype=np.uint8)  # 5 dark images: all-zero maps
    np.savez(tmp_path / "d.npz", x=x, y=np.r_[np.full(5, 9), rng.integers(0, 10, 15)],
             classes=np.array([f"c{i}" for i in range(10)]))
    r = cli("evaluate", "--model", dark_blind_model(tmp_path / "m.ts"), "--data", f"npz:{tmp_path / 'd.npz'}",
            "--suite", "inequality", "--ina-budgets", "0.05", "--rn-budgets", "0.1", "--occlusion-fill", "0.5",
            "--occlusion-count", "1", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    assert "robench: warning: 25.0% of" in r.err and "all zero" in r.err
    import robench

    run = robench.load_run(tmp_path / "run")
    assert run.value("gini", "all_zero_share", "pixel", "all") == pytest.approx(0.25)
    assert run.value("gini", "mean", "pixel", "all_nonzero") > run.value("gini", "mean", "pixel", "all")
    assert run.headline()["all_zero_share"] == pytest.approx(0.25)
    assert run.per_image.loc[:4, "entropy"].isna().all() and run.per_image.loc[5:, "entropy"].notna().all()
