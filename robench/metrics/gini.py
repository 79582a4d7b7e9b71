"""Gini index of attribution maps (docs/metrics.md, "Gini index"): pixel (global) and regional variants.

All functions are batched: one sort over the whole batch, no Python loop over images.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from robench.errors import RobenchError

ValueTransform = Literal["abs", "positive"]
Region = Literal["sum", "avgpool"]
VALUE_TRANSFORMS: tuple[str, ...] = ("abs", "positive")
REGIONS: tuple[str, ...] = ("sum", "avgpool")
DEFAULT_VALUE: str = "abs"
DEFAULT_REGION: str = "sum"
#: Regional Gini "sum": the finest power-of-two block giving at most this many blocks per side
#: (14: 224 px -> b = 16, 196 regions, Duan's ImageNet setting; 32 px -> b = 4, 64 regions).
MAX_BLOCKS_PER_SIDE: int = 14
#: Regional Gini "avgpool": IGD's fixed block size, at every resolution.
IGD_BLOCK: int = 16


def _as_tensor(values: Tensor | np.ndarray) -> Tensor:
    t = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    if t.dtype == torch.bool:
        t = t.to(torch.float64)
    return t.detach()


def _check_sorted(first: Tensor | np.ndarray, last: Tensor | np.ndarray) -> None:
    """Validate sorted rows from their smallest and largest entries (NaN sorts last)."""
    if bool((first < 0).any()):
        raise ValueError("Gini needs non-negative values; transform the attribution first "
                         "(abs or positive part)")
    finite = np.isfinite(last) if isinstance(last, np.ndarray) else torch.isfinite(last)
    if not bool(finite.all()):
        raise ValueError("Gini needs finite values (got NaN or inf)")


def _sorted_sums_numpy(flat: Tensor) -> tuple[Tensor, Tensor]:
    """CPU path of :func:`_sorted_sums` (numpy's SIMD sort)."""
    n = flat.shape[-1]
    arr = flat.detach().to("cpu").contiguous()
    if arr.dtype in (torch.float16, torch.bfloat16):
        arr = arr.to(torch.float32)
    srt = np.sort(arr.numpy(), axis=-1)
    _check_sorted(srt[..., 0], srt[..., -1])
    srt64 = srt.astype(np.float64, copy=False)
    weights = np.arange(n, 0, -1, dtype=np.float64)  # n + 1 - i
    total = torch.as_tensor(np.asarray(srt64.sum(-1)))
    weighted = torch.as_tensor(np.asarray(srt64 @ weights))
    return total.to(flat.device), weighted.to(flat.device)


def _sorted_sums_torch(flat: Tensor) -> tuple[Tensor, Tensor]:
    """Accelerator path of :func:`_sorted_sums` (``torch.sort`` on the tensor's device)."""
    n = flat.shape[-1]
    srt = flat.sort(dim=-1).values
    _check_sorted(srt[..., 0], srt[..., -1])
    srt64 = srt.to(torch.float64)
    weights = torch.arange(n, 0, -1, dtype=torch.float64, device=srt.device)  # n + 1 - i
    return srt64.sum(-1), srt64 @ weights


def _sorted_sums(flat: Tensor) -> tuple[Tensor, Tensor]:
    """For each row (last dim, length n) of non-negative values: ``(S, W)`` in float64 with
    S = sum a and W = sum_i (n + 1 - i) a_(i) over the ascending sort; one batched sort.

    CPU tensors are sorted with numpy (its SIMD sort is an order of magnitude faster than
    torch's CPU sort); other devices use ``torch.sort``.
    """
    if flat.device.type == "cpu":
        return _sorted_sums_numpy(flat)
    return _sorted_sums_torch(flat)


def gini_with_flags(values: Tensor | np.ndarray, start_dim: int = 1) -> tuple[Tensor, Tensor]:
    """Gini index over all dims from ``start_dim`` on, plus a mask of all-zero rows.

    Uses the sorted formula (a ascending, S = sum a, i = 1..n)
    ``G = (n + 1 - 2 * sum_i (n + 1 - i) a_(i) / S) / n``, which equals the
    mean-absolute-difference Gini ``sum_ij |a_i - a_j| / (2 n^2 mean(a))``.

    Args:
        values: non-negative tensor (or array), e.g. N×C×H×W transformed attributions.
        start_dim: first dimension of each vector; dims before it are batch dims.

    Returns:
        ``(gini, all_zero)``, both of shape ``values.shape[:start_dim]``: gini in [0, 1 - 1/n]
        (dtype of ``values`` if floating, else float64; accumulated in float64) and a bool
        mask of rows that are all zero (their Gini is reported as 0, never NaN).

    Raises:
        ValueError: on negative or non-finite values, or an empty vector.
    """
    t = _as_tensor(values)
    if not 0 <= start_dim < t.dim():
        raise ValueError(f"start_dim must be in [0, {t.dim()}) for values of shape "
                         f"{tuple(t.shape)}, got {start_dim}")
    flat = t.flatten(start_dim)
    n = flat.shape[-1]
    if n == 0:
        raise ValueError("Gini of an empty vector is undefined")
    out_dtype = t.dtype if t.is_floating_point() else torch.float64
    if flat.numel() == 0:  # empty batch
        empty = torch.zeros(flat.shape[:-1], dtype=out_dtype, device=flat.device)
        return empty, empty.to(torch.bool)
    total, weighted = _sorted_sums(flat)
    all_zero = total == 0
    safe_total = torch.where(all_zero, torch.ones_like(total), total)
    g = (n + 1 - 2 * weighted / safe_total) / n
    g = torch.where(all_zero, torch.zeros_like(g), g).clamp_min(0.0)
    return g.to(out_dtype), all_zero


def gini(values: Tensor | np.ndarray, start_dim: int = 1) -> Tensor:
    """Gini index over all dims from ``start_dim`` on (shape ``values.shape[:start_dim]``).

    Non-negative input only (ValueError otherwise); all-zero rows give 0 — use
    :func:`gini_with_flags` to find them. See :func:`gini_with_flags` for the formula.
    """
    return gini_with_flags(values, start_dim)[0]


def transform_attribution(attr: Tensor, value: ValueTransform = "abs") -> Tensor:
    """Make an attribution non-negative: ``"abs"`` = |a| (default; the papers' text and IGD)
    or ``"positive"`` = max(a, 0) (Duan's released code). Shape unchanged."""
    if value == "abs":
        return attr.abs()
    if value == "positive":
        return attr.clamp_min(0)
    raise RobenchError(f"unknown attribution value transform {value!r}; choose one of: "
                       f"{', '.join(VALUE_TRANSFORMS)}")


def pixel_gini(attr: Tensor, value: ValueTransform = "abs") -> Tensor:
    """Pixel (global) Gini of each map over its flattened C·H·W entries.

    Args:
        attr: N×C×H×W signed attribution.
        value: "abs" (default) or "positive", see :func:`transform_attribution`.

    Returns:
        Tensor of shape N. All-zero maps (e.g. a wholly negative map with "positive") give 0;
        flag them with ``gini_with_flags(transform_attribution(attr, value))``.
    """
    return gini(transform_attribution(attr, value), start_dim=1)


def default_block_size(height: int, region: Region = "sum") -> int:
    """Default regional-Gini block size b for images of ``height`` pixels.

    ``"sum"`` (Duan): the smallest power of two b with ceil(height / b) <= 14, i.e. the finest
    grid of at most 14×14 = 196 regions. Reproduces both of Duan's settings (32 px -> 4,
    64 regions; 224 px -> 16, 196 regions); 28 -> 2, 64 -> 8, 96 -> 8.
    ``"avgpool"`` (IGD): 16 at every resolution, as IGD used (on 32×32 CIFAR that is a 2×2 grid,
    12 values with 3 channels — coarse, but it reproduces IGD's numbers); capped at the image
    size for images smaller than 16 px.
    """
    if isinstance(height, bool) or int(height) != height or height < 1:
        raise ValueError(f"height must be a positive integer, got {height!r}")
    height = int(height)
    if region == "sum":
        b = 1
        while -(-height // b) > MAX_BLOCKS_PER_SIDE:
            b *= 2
        return b
    if region == "avgpool":
        return min(IGD_BLOCK, height)
    raise RobenchError(f"unknown region variant {region!r}; choose one of: {', '.join(REGIONS)}")


def _pad_to_multiple(t: Tensor, block: int) -> Tensor:
    """Reflect-pad the last two dims at the bottom/right up to a multiple of ``block``."""
    h, w = t.shape[-2:]
    ph, pw = (-h) % block, (-w) % block
    if ph == 0 and pw == 0:
        return t
    return F.pad(t, (0, pw, 0, ph), mode="reflect")


def region_values(
    attr: Tensor,
    *,
    region: Region = "sum",
    block: int | None = None,
    value: ValueTransform = "abs",
) -> Tensor:
    """The per-region values a regional Gini is taken over, shape N×m.

    ``"sum"`` (Duan): transformed attribution summed over channels and over each b×b block;
    m = ceil(H/b)·ceil(W/b). ``"avgpool"`` (IGD): transformed attribution average-pooled per
    channel with kernel = stride = b; m = C·ceil(H/b)·ceil(W/b). In both variants H and W that
    are not multiples of b are first reflect-padded at the bottom/right (IGD's rule; pixels
    mirrored into a ragged edge block are counted twice there). Standard sizes (32 with
    b = 4 or 16, 224 with b = 16) need no padding.

    Args:
        attr: N×C×H×W signed attribution.
        block: b; None = :func:`default_block_size` for H.
    """
    if attr.dim() != 4:
        raise ValueError("regional Gini needs N×C×H×W attributions, got shape "
                         f"{tuple(attr.shape)}")
    if region not in REGIONS:
        raise RobenchError(f"unknown region variant {region!r}; choose one of: "
                           f"{', '.join(REGIONS)}")
    n, c, h, w = attr.shape
    b = default_block_size(h, region) if block is None else block
    if isinstance(b, bool) or int(b) != b or b < 1:
        raise RobenchError(f"block must be a positive integer, got {block!r}")
    b = int(b)
    if b > h or b > w:
        raise RobenchError(f"block size {b} is larger than the {h}×{w} attribution map")
    t = transform_attribution(attr.detach(), value)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if region == "sum":
        t = t.sum(dim=1, keepdim=True)
    t = _pad_to_multiple(t, b)
    hb, wb = t.shape[-2] // b, t.shape[-1] // b
    blocks = t.reshape(n, t.shape[1], hb, b, wb, b)
    pooled = blocks.sum(dim=(3, 5)) if region == "sum" else blocks.mean(dim=(3, 5))
    return pooled.reshape(n, -1)


def regional_gini(
    attr: Tensor,
    *,
    region: Region = "sum",
    block: int | None = None,
    value: ValueTransform = "abs",
) -> Tensor:
    """Regional Gini per image, shape N: Gini of :func:`region_values`.

    Args:
        attr: N×C×H×W signed attribution.
        region: "sum" (default; Duan: channel-and-block sums) or "avgpool" (IGD: per-channel
            block means after reflect padding).
        block: block side b in pixels; None = :func:`default_block_size` (sum: 4 on 32 px,
            16 on 224 px; avgpool: 16).
        value: "abs" (default) or "positive", applied before pooling.
    """
    return gini(region_values(attr, region=region, block=block, value=value), start_dim=1)
