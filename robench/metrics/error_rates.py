"""Error rates of attacks (fraction of images fooled) and their bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Bound on the number of resampled values held in memory at once by bootstrap_ci.
_CHUNK_ELEMENTS = 4_000_000


def _as_array(flags: Tensor | np.ndarray | list) -> np.ndarray:
    if isinstance(flags, Tensor):
        flags = flags.detach().to("cpu")
        flags = flags.to(torch.float64) if flags.dtype != torch.bool else flags
        flags = flags.numpy()
    arr = np.asarray(flags).reshape(-1)
    if arr.size == 0:
        raise ValueError("error rate of an empty set is undefined")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("flags must be finite")
    return arr


def error_rate(fooled: Tensor | np.ndarray | list) -> float:
    """Fraction of images fooled, in [0, 1].

    Args:
        fooled: bool (or 0/1) tensor/array of shape N, True where the attack succeeded.
    """
    return float(_as_array(fooled).mean())


def bootstrap_ci(
    flags: Tensor | np.ndarray | list,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``flags``.

    Resamples the N values with replacement ``n_boot`` times (vectorized numpy, chunked to
    bound memory), takes each resample's mean, and returns the (1-c)/2 and (1+c)/2
    quantiles. Deterministic for a given seed (numpy ``default_rng(seed)``).

    Args:
        flags: shape N, bool fooled-flags (or any per-image values: the CI is for their mean).
        n_boot: number of bootstrap resamples.
        confidence: coverage in (0, 1).
        seed: RNG seed.

    Returns:
        ``(low, high)`` in the units of the mean (a fraction for bool flags).
    """
    arr = _as_array(flags)
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    n_boot = int(n_boot)
    n = arr.size
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
