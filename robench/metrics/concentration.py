"""Concentration of an attribution map beyond the Gini: entropy, participation ratio, top-k mass.

All take non-negative maps (after :func:`robench.metrics.gini.transform_attribution`), N×... with
one map per row (flattened from ``start_dim``), and return N float64 values. An all-zero map has
no distribution: every measure is NaN for it (the Gini's convention-0 maps are flagged instead).

- ``normalized_entropy``: H(p) / log n with p = a / Σa (natural log); 1 = uniform, 0 = one entry.
- ``participation_ratio``: (Σa)² / (n · Σa²) = (1 / Σp²) / n, the effective share of entries
  carrying the map; 1 = uniform, 1/n = one entry.
- ``top_mass``: the share of Σa in the largest ⌈fraction · n⌉ entries; ``fraction`` = uniform.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from robench.schema import top_mass_measure

#: Top-k fractions reported by the inequality suite.
TOP_FRACTIONS = (0.01, 0.05)


def _rows(values: Tensor | np.ndarray, start_dim: int) -> tuple[Tensor, Tensor]:
    """(maps as N×n float64, N bool: the map is all zero); refuses negative or non-finite entries."""
    flat = torch.as_tensor(values).flatten(start_dim).double()
    if flat.ndim != 2:
        raise ValueError("concentration measures need a batch of maps (N×...)")
    if not bool(torch.isfinite(flat).all()) or bool((flat < 0).any()):
        raise ValueError("concentration measures need finite, non-negative maps; transform the attribution first")
    return flat, flat.sum(1) == 0


def normalized_entropy(values: Tensor | np.ndarray, start_dim: int = 1) -> Tensor:
    """−Σ p log p / log n per map, in [0, 1]; NaN for all-zero maps (and 0 when n = 1)."""
    flat, zero = _rows(values, start_dim)
    p = flat / flat.sum(1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    h = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(1)
    n = flat.shape[1]
    out = h / math.log(n) if n > 1 else torch.zeros_like(h)
    return out.masked_fill(zero, math.nan)


def participation_ratio(values: Tensor | np.ndarray, start_dim: int = 1) -> Tensor:
    """(Σa)² / (n Σa²) per map, in [1/n, 1]; NaN for all-zero maps."""
    flat, zero = _rows(values, start_dim)
    out = flat.sum(1) ** 2 / (flat.shape[1] * (flat**2).sum(1))
    return out.masked_fill(zero, math.nan)


def top_mass(values: Tensor | np.ndarray, fraction: float, start_dim: int = 1) -> Tensor:
    """Σ of the ⌈fraction · n⌉ largest entries / Σ of all, per map, in [fraction, 1]; NaN for all-zero maps."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    flat, zero = _rows(values, start_dim)
    k = max(1, math.ceil(fraction * flat.shape[1] - 1e-9))
    out = flat.topk(k, dim=1).values.sum(1) / flat.sum(1)
    return out.masked_fill(zero, math.nan)


def concentration_columns(values: Tensor) -> dict[str, np.ndarray]:
    """The inequality suite's per-image concentration columns of N non-negative maps."""
    columns = {"entropy": normalized_entropy(values).cpu().numpy(),
               "participation": participation_ratio(values).cpu().numpy()}
    for fraction in TOP_FRACTIONS:
        columns[top_mass_measure(fraction)] = top_mass(values, fraction).cpu().numpy()
    return columns
