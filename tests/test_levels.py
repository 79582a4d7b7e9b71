"""The exact uint8 output laws of the noise corruptions and their alias-table sampler (robench.corruptions.levels)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from conftest import reference_noise  # tests/ is on sys.path (no package)

from robench.corruptions import noise
from robench.corruptions.levels import alias_probabilities, alias_table, level_law, packed_table, sample_levels
from robench.corruptions.noise import PARAMETERS, TORCH_CORRUPTIONS, make_generator, torch_corrupt

LEVELS_CHECKED = (0, 1, 37, 128, 200, 254, 255)
DRAWS = 100_000
Z = 5.0  # allowed |empirical − exact| in binomial standard errors, per output level


def reference_draws(name: str, c: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """Output levels of the reference formulas (imagecorruptions / make_cifar_c.py) for DRAWS copies of level k."""
    return reference_noise(np.full(DRAWS, k / 255.0), name, c, rng)


def assert_matches_law(levels: np.ndarray, law_row: np.ndarray, what: str) -> None:
    """Draws of output levels agree with the law: every level's frequency within Z binomial standard
    errors (plus 1/n for empty cells), and the sample mean and variance within Z of their standard errors
    under the law (√(v/n) and √((m₄ − v²)/n), with the law's variance v and fourth central moment m₄)."""
    n = levels.size
    freq = np.bincount(levels.astype(np.int64), minlength=256) / n
    se = np.sqrt(law_row * (1 - law_row) / n) + 1.0 / n
    worst = int(np.argmax(np.abs(freq - law_row) / se))
    assert abs(freq[worst] - law_row[worst]) <= Z * se[worst], (
        f"{what}: level {worst} drawn with frequency {freq[worst]:.5f}, law says {law_row[worst]:.5f}")
    m = np.arange(256.0)
    mean = law_row @ m
    var = law_row @ (m - mean) ** 2
    m4 = law_row @ (m - mean) ** 4
    sample = levels.astype(np.float64)
    assert abs(sample.mean() - mean) <= Z * np.sqrt(var / n) + 1e-9, f"{what}: mean {sample.mean():.4f} vs {mean:.4f}"
    # + Z²·v/n: the (mean − sample mean)² term, which dominates when m₄ ≈ v² (a fair two-point law)
    assert abs(sample.var() - var) <= Z * np.sqrt(max(m4 - var**2, 0.0) / n) + Z**2 * var / n, (
        f"{what}: variance {sample.var():.4f} vs {var:.4f}")


PARAMETER_CASES = [(name, PARAMETERS[table][name][s]) for name in TORCH_CORRUPTIONS
                   for table, s in (("imagenet-c", 0), ("imagenet-c", 4), ("cifar10-c", 0))]


@pytest.mark.parametrize(("name", "c"), PARAMETER_CASES)
def test_law_is_the_reference_formula(name: str, c: float) -> None:
    """The law computed in closed form agrees with draws of the reference's own formula, level by level."""
    law = level_law(name, c)
    assert law.shape == (256, 256) and np.all(law >= 0)
    np.testing.assert_allclose(law.sum(axis=1), 1.0, atol=1e-12)
    rng = np.random.default_rng(zlib.crc32(f"{name} {c}".encode()))
    for k in LEVELS_CHECKED:
        assert_matches_law(reference_draws(name, c, k, rng), law[k], f"{name} c={c} k={k}")


def test_law_check_detects_a_wrong_law() -> None:
    """The check above fails for the rounding the reference does not do, and for a 5 % larger σ."""
    rng = np.random.default_rng(0)
    draws = reference_draws("gaussian_noise", 0.08, 128, rng)
    rounded = np.diff(np.concatenate([[0.0], noise_cdf(0.08, 128, shift=0.5), [1.0]]))
    with pytest.raises(AssertionError):
        assert_matches_law(draws, rounded, "rounding")
    with pytest.raises(AssertionError):
        assert_matches_law(draws, level_law("gaussian_noise", 0.084)[128], "sigma +5%")


def noise_cdf(c: float, k: int, shift: float) -> np.ndarray:
    """P(output ≤ M) for M = 0..254 if the reference rounded (``shift`` = 0.5) instead of truncating."""
    upper = np.arange(1, 256) - shift
    return torch.special.ndtr(torch.from_numpy((upper / 255 - k / 255) / c)).numpy()


@pytest.mark.parametrize(("name", "c"), PARAMETER_CASES)
def test_alias_table_samples_the_law(name: str, c: float) -> None:
    law = level_law(name, c)
    assert np.abs(alias_probabilities(alias_table(law)) - law).max() < 1e-7


def test_alias_table_of_arbitrary_laws() -> None:
    rng = np.random.default_rng(1)
    law = rng.dirichlet(np.full(256, 0.05), size=256)  # spiky rows, many near-zero cells
    law[3] = 0.0
    law[3, 17] = 1.0  # a point mass
    assert np.abs(alias_probabilities(alias_table(law)) - law).max() < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_sampler_draws_the_law(name: str, dtype: type) -> None:
    """The compiled sampler's output frequencies match the law for several input levels at once."""
    c = PARAMETERS["imagenet-c"][name][2]
    law = level_law(name, c)
    ks = np.repeat(np.array(LEVELS_CHECKED), DRAWS)
    x = (ks.astype(dtype) / dtype(255)).astype(dtype)
    out = np.empty_like(x)
    assert sample_levels(x, out, packed_table(name, c), seed=12345)
    levels = (out * dtype(255)).astype(np.float64)  # k/255·255 is exactly k in either dtype
    assert np.array_equal(levels, np.round(levels)) and out.dtype == dtype
    for i, k in enumerate(LEVELS_CHECKED):
        assert_matches_law(np.round(levels[i * DRAWS:(i + 1) * DRAWS]), law[k], f"{name} k={k}")


def test_sampler_refuses_values_that_are_not_levels() -> None:
    table = packed_table("gaussian_noise", 0.08)
    good = np.arange(256, dtype=np.float32) / np.float32(255)
    assert sample_levels(good, np.empty_like(good), table, seed=0)
    for bad in (100.4 / 255, -1 / 255, 256 / 255, float("nan")):
        x = good.copy()
        x[77] = bad
        assert not sample_levels(x, np.empty_like(x), table, seed=0), bad
    odd = good[:255]  # odd length: the last value uses half of a 64-bit draw
    assert sample_levels(odd, np.empty_like(odd), table, seed=0)


def test_sampler_bits_are_splitmix64() -> None:
    """The sampler's output for seed 1234567 is the alias-table decision, redone here in Python, on the
    32-bit halves (high, then low) of SplitMix64's published first outputs for that seed (Vigna's splitmix64.c)."""
    outputs = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    x = np.full(6, 100 / 255, dtype=np.float32)
    out = np.empty_like(x)
    assert sample_levels(x, out, packed_table("impulse_noise", 1.0), seed=1234567)
    halves = [h for z in outputs for h in (z >> 32, z & 0xFFFFFFFF)]
    table = packed_table("impulse_noise", 1.0)
    expected = []
    for r in halves:
        j = r >> 24
        entry = int(table[100 * 256 + j])
        expected.append(j if (r & 0xFFFFFF) < (entry >> 8) else entry & 0xFF)
    assert np.array_equal(np.round(out * 255).astype(int), expected)


@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_off_level_inputs_use_the_formulas(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch with a value between levels is corrupted with the torch formulas (same result as forcing them)."""
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = torch_corrupt(x, name, 2, table="imagenet-c", generator=make_generator(4))
    monkeypatch.setattr(noise, "_levels", lambda *args, **kwargs: None)
    b = torch_corrupt(x, name, 2, table="imagenet-c", generator=make_generator(4))
    assert torch.equal(a, b)
