"""Batched data augmentation on tensors: random crop with zero padding and horizontal flip.

Written in torch rather than torchvision transforms so a whole batch is augmented in one
indexing operation (no per-image Python work) and draws come from an explicit generator,
which makes training reproducible and resumable.
"""

from __future__ import annotations

import torch


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random ``padding``-pixel-shift crop (zero fill) and 50% horizontal flip of an N×C×H×W batch."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    flip = torch.rand(n, generator=generator, device=x.device) < 0.5
    rows = dy[:, None] + torch.arange(h, device=x.device)[None]
    cols = torch.arange(w, device=x.device)[None].expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    batch_idx = torch.arange(n, device=x.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]
