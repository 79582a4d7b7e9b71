"""Lorenz curves of attribution maps (the curve whose area gap the Gini index measures)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _rows(values: Tensor | np.ndarray) -> tuple[np.ndarray, bool]:
    """Values as a float64 2-D array (one vector per row) and whether the input was 1-D."""
    if isinstance(values, Tensor):
        arr = values.detach().to("cpu", torch.float64).numpy()
    else:
        arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("lorenz_curve needs a vector or a batch of vectors, got a scalar")
    single = arr.ndim == 1
    arr = arr.reshape(1, -1) if single else arr.reshape(arr.shape[0], -1)
    if arr.shape[1] == 0:
        raise ValueError("lorenz_curve of an empty vector is undefined")
    if not np.isfinite(arr).all():
        raise ValueError("lorenz_curve needs finite values")
    if (arr < 0).any():
        raise ValueError("lorenz_curve needs non-negative values; transform the attribution first")
    return arr, single


def lorenz_curve(values: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve(s) of non-negative values.

    Args:
        values: one vector (n,), or a batch N×... (each row flattened to n values, e.g. an
            N×C×H×W transformed attribution).

    Returns:
        ``(population_share, value_share)``, float64 arrays of shape (n+1,) for a vector or
        N×(n+1) for a batch (the batched population share is a read-only broadcast view):
        after sorting ascending, point k is (k/n, sum of the k smallest
        / total). Both start at 0 and end at 1; an all-zero row gets the equality line
        (consistent with its Gini of 0). Gini = 1 - 2·(area under the curve, trapezoid rule).
    """
    arr, single = _rows(values)
    n_rows, n = arr.shape
    srt = np.sort(arr, axis=1)
    cum = np.concatenate([np.zeros((n_rows, 1)), np.cumsum(srt, axis=1)], axis=1)
    total = cum[:, -1:]
    pop = np.linspace(0.0, 1.0, n + 1)
    zero = total[:, 0] == 0
    share = np.divide(cum, total, out=np.zeros_like(cum), where=total != 0)
    share[zero] = pop
    share[:, -1] = 1.0  # exact endpoint despite rounding
    pop_out = np.broadcast_to(pop, share.shape)
    if single:
        return pop.copy(), share[0]
    return pop_out, share


def lorenz_on_grid(values: Tensor | np.ndarray,
                   grid_size: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curves linearly interpolated onto a common population grid.

    Lets maps of different sizes (resolutions, region counts) be averaged or compared.

    Returns:
        ``(grid, shares)``: grid of shape (grid_size,) = linspace(0, 1); shares of shape
        N×grid_size (or (grid_size,) for a single vector).
    """
    if grid_size < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size}")
    pop, share = lorenz_curve(values)
    share2 = share.reshape(-1, share.shape[-1])
    n = share2.shape[1] - 1
    grid = np.linspace(0.0, 1.0, grid_size)
    pos = grid * n  # the population grid is uniform: locate each grid point directly
    lo = np.minimum(np.floor(pos).astype(np.int64), n - 1)
    frac = pos - lo
    out = share2[:, lo] * (1.0 - frac) + share2[:, lo + 1] * frac
    return grid, (out[0] if share.ndim == 1 else out)


def mean_lorenz_curve(values: Tensor | np.ndarray,
                      grid_size: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std (over the N rows) of the Lorenz curves on a common grid.

    Args:
        values: N×... non-negative values (e.g. transformed attributions of N images).

    Returns:
        ``(grid, mean_share, std_share)``, each of shape (grid_size,).
    """
    grid, shares = lorenz_on_grid(values, grid_size)
    shares = shares.reshape(-1, grid_size)
    return grid, shares.mean(axis=0), shares.std(axis=0)
