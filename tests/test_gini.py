"""Gini metrics against independent references (quantus Sparseness, mean-absolute-difference)."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robench.errors import RobenchError
from robench.metrics import (
    default_block_size,
    gini,
    gini_with_flags,
    pixel_gini,
    region_values,
    regional_gini,
    transform_attribution,
)


def mad_gini(a: np.ndarray) -> float:
    """Independent reference: sum_ij |a_i - a_j| / (2 n^2 mean), O(n^2), no sorting."""
    a = np.asarray(a, dtype=np.float64).ravel()
    n = a.size
    return float(np.abs(a[:, None] - a[None, :]).sum() / (2 * n * n * a.mean()))


# ---------------------------------------------------------------- reference formulas


@pytest.mark.parametrize("shape", [(1, 7), (5, 3, 4, 4), (3, 1, 9, 11), (4, 2)])
def test_gini_equals_mean_absolute_difference(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.exponential(size=shape) * rng.integers(0, 2, size=shape)  # skewed, some zeros
    a[0].flat[0] = 1.0  # no all-zero row
    got = gini(torch.from_numpy(a))
    want = [mad_gini(row) for row in a.reshape(shape[0], -1)]
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_gini_float32_close_to_float64_reference():
    a = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1)) ** 4
    got = gini(a)
    assert got.dtype == torch.float32
    want = [mad_gini(r) for r in a.double().reshape(6, -1).numpy()]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def _quantus_sparseness(a: np.ndarray) -> np.ndarray:
    quantus = pytest.importorskip("quantus")
    metric = quantus.Sparseness(abs=True, normalise=True, disable_warnings=True,
                                display_progressbar=False)
    n = a.shape[0]
    x = np.zeros_like(a, dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    return np.asarray(metric(model=None, x_batch=x, y_batch=y, a_batch=a.copy(),
                             channel_first=True, batch_size=n))


def test_gini_matches_quantus_sparseness():
    """Quantus: |a|, divide by the max |a| over the *whole batch*, add 1e-7, sorted Gini.

    (1) Replicating those steps, our gini must agree to rounding (same estimator).
    (2) On the raw signed map, pixel_gini(abs) differs from quantus only by the 1e-7 shift:
        G_q = G * S / (S + n·1e-7) with S the max-normalised sum, so the gap is bounded.
    """
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 3, 8, 8)) * rng.exponential(size=(6, 1, 1, 1))
    a[:, :, :2] *= 20  # concentrated mass: Gini well away from the U(0,1) value
    q = _quantus_sparseness(a)

    shifted = np.abs(a) / np.abs(a).max() + 1e-7
    np.testing.assert_allclose(gini(torch.from_numpy(shifted)).numpy(), q, rtol=1e-10)

    ours = pixel_gini(torch.from_numpy(a), value="abs").numpy()
    s = (np.abs(a) / np.abs(a).max()).reshape(6, -1).sum(1)
    bound = ours * (a[0].size * 1e-7) / (s + a[0].size * 1e-7) + 1e-12
    assert np.all(np.abs(ours - q) <= bound)
    assert np.all(np.abs(ours - q) < 1e-4)
    assert not np.allclose(ours, ours.mean())  # the comparison is not between constants


# ---------------------------------------------------------------- sanity values of the definition (docs/metrics.md)


def test_constant_gives_zero():
    assert gini(torch.full((3, 100), 2.5)).abs().max() < 1e-12


@pytest.mark.parametrize("n", [1, 2, 10, 1000])
def test_one_hot_gives_one_minus_one_over_n(n):
    v = torch.zeros(2, n, dtype=torch.float64)
    v[0, 0] = 3.0
    v[1, n - 1] = 0.5
    torch.testing.assert_close(gini(v), torch.full((2,), 1 - 1 / n, dtype=torch.float64))


def test_uniform_samples_give_one_third():
    u = torch.rand(4, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.all((gini(u) - 1 / 3).abs() < 3e-3)


def test_scale_and_repetition_invariance():
    a = torch.rand(3, 50, generator=torch.Generator().manual_seed(2), dtype=torch.float64) ** 3
    g = gini(a)
    torch.testing.assert_close(gini(a * 1e4), g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gini(a * 1e-6), g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gini(a.repeat_interleave(4, dim=1)), g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gini(a.repeat(1, 3)), g, rtol=1e-12, atol=1e-12)


def test_all_zero_rows_return_zero_and_are_flagged():
    v = torch.zeros(3, 2, 4, 4)
    v[1, 0, 0, 0] = 1.0
    g, flags = gini_with_flags(v)
    assert not torch.isnan(g).any()
    assert g.tolist() == [0.0, pytest.approx(1 - 1 / 32), 0.0]
    assert flags.tolist() == [True, False, True]
    assert torch.equal(gini(v), g)


def test_start_dim_and_batch_dims():
    a = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = gini(a, start_dim=2)
    assert g.shape == (2, 3)
    for i, j in itertools.product(range(2), range(3)):
        assert g[i, j].item() == pytest.approx(mad_gini(a[i, j].numpy()), abs=1e-12)
    assert gini(a[0, 0, 0], start_dim=0).item() == pytest.approx(mad_gini(a[0, 0, 0].numpy()))
    assert gini(a[0].numpy(), start_dim=0).item() == pytest.approx(mad_gini(a[0].numpy()))
    with pytest.raises(ValueError):
        gini(a, start_dim=4)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="non-negative"):
        gini(torch.tensor([[0.5, -1e-9, 2.0]]))
    with pytest.raises(ValueError, match="finite"):
        gini(torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(ValueError, match="finite"):
        gini(torch.tensor([[0.5, float("inf")]]))


# ---------------------------------------------------------------- property tests

# zeros or values in [1e-6, 1e6]: scaling by 1e-3 then stays far from float64 underflow
_nonneg = arrays(np.float64, st.integers(1, 40),
                 elements=st.one_of(st.just(0.0), st.floats(1e-6, 1e6)))


@settings(max_examples=60, deadline=None)
@given(a=_nonneg, scale=st.floats(1e-3, 1e3))
def test_property_scale_invariance(a, scale):
    g1, z1 = gini_with_flags(torch.from_numpy(a), start_dim=0)
    g2, z2 = gini_with_flags(torch.from_numpy(a * scale), start_dim=0)
    assert bool(z1) == bool(z2)
    assert abs(g1.item() - g2.item()) < 1e-9
    assert 0.0 <= g1.item() <= 1 - 1 / a.size + 1e-12


@settings(max_examples=60, deadline=None)
@given(a=_nonneg, seed=st.integers(0, 2**32 - 1))
def test_property_permutation_invariance_and_mad(a, seed):
    perm = np.random.default_rng(seed).permutation(a.size)
    g = gini(torch.from_numpy(a), start_dim=0).item()
    assert abs(gini(torch.from_numpy(a[perm]), start_dim=0).item() - g) < 1e-12
    if a.sum() > 0:
        assert abs(g - mad_gini(a)) < 1e-9


# ---------------------------------------------------------------- pixel / regional Gini


def test_pixel_gini_value_transforms():
    a = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a[3] = -a[3].abs()  # wholly negative map
    torch.testing.assert_close(pixel_gini(a), gini(a.abs()))
    pos = pixel_gini(a, value="positive")
    torch.testing.assert_close(pos[:3], gini(torch.where(a > 0, a, 0.0)[:3]))
    assert pos[3].item() == 0.0
    assert gini_with_flags(transform_attribution(a, "positive"))[1].tolist() == [
        False, False, False, True]
    with pytest.raises(RobenchError, match="abs"):
        pixel_gini(a, value="square")


def _loop_block_sums(a: np.ndarray, b: int, value: str) -> np.ndarray:
    t = np.abs(a) if value == "abs" else np.maximum(a, 0)
    n, _, h, w = t.shape
    out = []
    for k in range(n):
        sums = []
        for i in range(0, h, b):
            for j in range(0, w, b):
                sums.append(t[k, :, i:i + b, j:j + b].sum())
        out.append(sums)
    return np.array(out)


@pytest.mark.parametrize("value", ["abs", "positive"])
@pytest.mark.parametrize("hw,b", [((8, 8), 4), ((12, 8), 2), ((16, 16), 8)])
def test_regional_sum_matches_explicit_loop(value, hw, b):
    rng = np.random.default_rng(hw[0] * b)
    a = rng.normal(size=(3, 3) + hw)
    vals = region_values(torch.from_numpy(a), region="sum", block=b, value=value)
    want = _loop_block_sums(a, b, value)
    np.testing.assert_allclose(vals.numpy(), want, rtol=1e-12)
    got = regional_gini(torch.from_numpy(a), region="sum", block=b, value=value)
    np.testing.assert_allclose(got.numpy(), [mad_gini(r) for r in want], rtol=1e-10)


def test_regional_avgpool_matches_pad_and_pool():
    rng = np.random.default_rng(7)
    a = torch.from_numpy(rng.normal(size=(2, 3, 10, 13)))
    b = 4
    ref = F.avg_pool2d(F.pad(a.abs(), (0, 3, 0, 2), mode="reflect"), kernel_size=b, stride=b)
    vals = region_values(a, region="avgpool", block=b)
    assert vals.shape == (2, 3 * 3 * 4)
    torch.testing.assert_close(vals, ref.reshape(2, -1))
    torch.testing.assert_close(regional_gini(a, region="avgpool", block=b), gini(ref))


def test_regional_ragged_sum_uses_reflect_padding():
    a = torch.rand(1, 2, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    padded = F.pad(a, (0, 2, 0, 2), mode="reflect")
    want = _loop_block_sums(padded.numpy(), 4, "abs")
    np.testing.assert_allclose(region_values(a, region="sum", block=4).numpy(), want)


def test_regional_defaults_reproduce_papers():
    assert default_block_size(32, "sum") == 4
    assert default_block_size(224, "sum") == 16
    assert default_block_size(32, "avgpool") == 16
    assert default_block_size(224, "avgpool") == 16
    assert [default_block_size(h, "sum") for h in (28, 64, 96)] == [2, 8, 8]
    a32 = torch.randn(2, 3, 32, 32)
    assert region_values(a32).shape == (2, 64)  # Duan: 64 regions on CIFAR
    assert region_values(a32, region="avgpool").shape == (2, 12)  # IGD: 12 values on CIFAR
    assert region_values(torch.randn(1, 3, 224, 224)).shape == (1, 196)
    torch.testing.assert_close(regional_gini(a32), regional_gini(a32, region="sum", block=4))


def test_regional_gini_of_concentrated_map_is_high_and_errors():
    a = torch.zeros(1, 3, 32, 32)
    a[0, :, 5, 5] = 1.0  # one hot pixel -> one non-zero region of 64
    assert regional_gini(a).item() == pytest.approx(1 - 1 / 64)
    with pytest.raises(RobenchError, match="region"):
        regional_gini(a, region="max")
    with pytest.raises(RobenchError, match="larger"):
        regional_gini(a, block=64)


def test_numpy_and_torch_sort_paths_agree():
    # robench.metrics.gini (attribute) is the function; fetch the module itself
    gini_module = importlib.import_module("robench.metrics.gini")

    a = torch.rand(5, 300, generator=torch.Generator().manual_seed(9)) ** 5
    a[2] = 0
    for flat in (a, a.double(), a[0]):
        s_np, w_np = gini_module._sorted_sums_numpy(flat)
        s_t, w_t = gini_module._sorted_sums_torch(flat)
        torch.testing.assert_close(s_np, s_t, rtol=1e-12, atol=0)
        torch.testing.assert_close(w_np, w_t, rtol=1e-12, atol=0)
    for path in (gini_module._sorted_sums_numpy, gini_module._sorted_sums_torch):
        with pytest.raises(ValueError, match="non-negative"):
            path(torch.tensor([[1.0, -2.0]]))
        with pytest.raises(ValueError, match="finite"):
            path(torch.tensor([[1.0, float("nan")]]))
    if torch.cuda.is_available():
        torch.testing.assert_close(gini(a.cuda()).cpu(), gini(a))
