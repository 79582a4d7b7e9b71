"""Paired tests of two models on the same images: McNemar's exact test and Holm's adjustment.

Two models attacked on the same images give paired error flags; what tells them apart are the images
fooled in one model and not the other (the discordant pairs). :func:`mcnemar` counts them and gives the
exact two-sided p-value (a binomial test of the two counts at 1/2); :func:`holm` adjusts a family of
p-values for multiple testing (Holm's step-down, which scipy does not have).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def mcnemar_p(only_a: int, only_b: int) -> float:
    """The exact two-sided McNemar p-value of ``only_a`` and ``only_b`` discordant pairs (1 when there are none)."""
    return float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0


def binary_flags(*flags: np.ndarray) -> bool:
    """Whether every non-NaN value of ``flags`` is 0 or 1 (what :func:`mcnemar` needs)."""
    return all(np.isin(f[~np.isnan(f)], (0.0, 1.0)).all() for f in (np.asarray(f, dtype=np.float64) for f in flags))


def mcnemar(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """(fooled in a only, fooled in b only, exact two-sided McNemar p) of paired 0/1 error flags.

    Args:
        a, b: shape N, 1 = fooled (or wrong), 0 = not, NaN = not attacked (the pair is left out).
    Raises:
        ValueError: for flags other than 0, 1 and NaN (e.g. shares of several noise trials: test their mean
            difference with a paired bootstrap instead), or arrays of different lengths.
    """
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired flags need equal lengths, got {a.size} and {b.size}")
    both = ~np.isnan(a) & ~np.isnan(b)
    if not binary_flags(a[both], b[both]):
        raise ValueError("McNemar's test needs 0/1 flags (NaN: not attacked); these hold other values")
    only_a = int(((a == 1) & (b == 0) & both).sum())
    only_b = int(((a == 0) & (b == 1) & both).sum())
    return only_a, only_b, mcnemar_p(only_a, only_b)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values, in their order (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)), 1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return out
