"""Similarity of two batches of attribution maps (the model-randomisation sanity check, docs/metrics.md).

Both take maps N×... (one per row, compared row by row) and return N float64 values:

- ``spearman``: Pearson correlation of the rows' ranks over all entries from ``start_dim`` on, ties
  given their average rank (``scipy.stats.spearmanr``); NaN when a row is constant.
- ``ssim``: the mean structural similarity (Wang et al. 2004) of N×C×H×W maps with values in
  [0, ``data_range``]: an 11×11 Gaussian window (σ = 1.5), K₁ = 0.01, K₂ = 0.03, population
  (co)variances, averaged over the window positions that lie inside the image and then over channels:
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  channel_axis=0)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def average_ranks(values: Tensor) -> Tensor:
    """N×n float64 ranks 1..n of each row of ``values`` (N×n), tied entries sharing their mean rank."""
    n = values.shape[1]
    ordered, order = values.sort(dim=1, stable=True)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.long().cumsum(1) - 1  # tie group of each sorted position
    position = torch.arange(n, device=values.device, dtype=torch.float64).expand(values.shape[0], n)
    first = torch.zeros_like(position).scatter_reduce(1, group, position, "amin", include_self=False)
    last = torch.zeros_like(position).scatter_reduce(1, group, position, "amax", include_self=False)
    sorted_ranks = (first.gather(1, group) + last.gather(1, group)) / 2 + 1
    return torch.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)


def spearman(a: Tensor, b: Tensor, start_dim: int = 1) -> Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (N values in [−1, 1])."""
    ra, rb = (average_ranks(t.detach().flatten(start_dim).double()) for t in (a, b))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.square().sum(1) * rb.square().sum(1)).sqrt()


def _gaussian_window(device: torch.device) -> Tensor:
    x = torch.arange(SSIM_WINDOW, device=device, dtype=torch.float64) - SSIM_WINDOW // 2
    w = torch.exp(-x.square() / (2 * SSIM_SIGMA**2))
    return w / w.sum()


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM of N×C×H×W maps ``a`` and ``b`` (H, W ≥ 11): N values, 1 for identical maps."""
    if a.shape != b.shape or a.dim() != 4 or min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs two N×C×H×W maps of one shape with H, W ≥ {SSIM_WINDOW}, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    n, c, h, w = a.shape
    x, y = (t.detach().double().reshape(n * c, 1, h, w) for t in (a, b))
    g = _gaussian_window(a.device)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, valid positions only (no padding)
        return F.conv2d(F.conv2d(t, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(n, c, -1).mean(2).mean(1)
