"""Inductive occlusion attack (IOA), methods.md section 5.

Map = channel mean of the signed attribution (H × W). For a count n and a radius r the
occlusion mask is the union of the 2r × 2r squares rows [i − r, i + r) × cols [j − r, j + r)
(clipped to the image) centred on the n distinct top positions of the map (ties go to the
lower row-major index). Occluded pixels (all channels) are set to a constant ``fill``.

The attack walks the (n, r) grid, n = 1..N, r = 1..R, in one of two orders and stops per image
at the first (n, r) that changes the prediction away from the label:

- ``order="count_first"`` (IGD, default): count outer, radius inner:
  (1,1), (1,2), …, (1,R), (2,1), …
- ``order="radius_first"`` (Duan): radius outer, count inner: (1,1), (2,1), …, (N,1), (1,2), …

R defaults to :func:`default_max_radius` (3 on 32 px, 20 on 224 px), because R = 20 on 32 px
images covers the whole image and fools every model. Which images count is the caller's
business: every image passed in is attacked (the suite normally passes only images that all
compared models classify correctly); no clean forward pass is spent.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from robench.attacks.noise import (
    DEFAULT_MAX_BATCH,
    _check_attr,
    _check_choice,
    _check_images,
    _check_labels,
    _check_max_batch,
    _predict,
)
from robench.attacks.results import concat_batches
from robench.errors import RobenchError
from robench.models.modes import eval_mode

OcclusionOrder = Literal["count_first", "radius_first"]
ORDERS: tuple[str, ...] = ("count_first", "radius_first")

#: Default number of top positions N (both papers).
DEFAULT_MAX_COUNT: int = 10
#: Fill values used by the papers: black (Duan), grey and white (IGD).
FILL_BLACK: float = 0.0
FILL_GREY: float = 0.5
FILL_WHITE: float = 1.0
DEFAULT_FILL: float = FILL_GREY


def default_max_radius(height: int) -> int:
    """Default radius budget R for images ``height`` pixels tall: max(2, round(20·H/224)).

    3 on 32 px (CIFAR), 20 on 224 px (ImageNet); rounding is half up.
    """
    if isinstance(height, bool) or not isinstance(height, numbers.Integral) or height < 1:
        raise RobenchError(f"image height must be a positive int, got {height!r}")
    return max(2, math.floor(20 * int(height) / 224 + 0.5))


def attribution_map(attr: Tensor) -> Tensor:
    """Channel mean of a signed attribution: N × C × H × W → N × H × W."""
    if not isinstance(attr, Tensor) or attr.dim() != 4:
        raise RobenchError("attribution must be a tensor of shape N x C x H x W")
    return attr.detach().mean(dim=1)


def top_positions(attr_map: Tensor, n: int) -> Tensor:
    """Flat indices (N × n, int64, row-major over H × W) of the n largest map values per image.

    Positions are distinct, ordered largest first; ties go to the lower flat index, so the
    top-n set is always a prefix of the top-(n+1) set.
    """
    if not isinstance(attr_map, Tensor) or attr_map.dim() != 3:
        raise RobenchError("attribution map must be a tensor of shape N x H x W")
    hw = attr_map.shape[1] * attr_map.shape[2]
    if isinstance(n, bool) or not isinstance(n, int) or not (1 <= n <= hw):
        raise RobenchError(f"count n must be an int in [1, {hw}] (pixels per image), got {n!r}")
    flat = attr_map.detach().reshape(attr_map.shape[0], hw)
    return torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :n]


def squares_mask(positions: Tensor, r: int, height: int, width: int) -> Tensor:
    """Union of 2r × 2r squares centred on ``positions``: N × height × width bool.

    ``positions``: N × n flat row-major indices (i = p // width, j = p % width). Pixel (p, q)
    is covered when i − r ≤ p < i + r and j − r ≤ q < j + r for some position; squares are
    clipped at the borders. Built as a batched product of row and column interval indicators
    (no pixel loops), on the positions' device.
    """
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise RobenchError(f"radius r must be an int >= 1, got {r!r}")
    dev = positions.device
    rows = (positions // width).unsqueeze(-1)  # N × n × 1
    cols = (positions % width).unsqueeze(-1)
    ph = torch.arange(height, device=dev)
    pw = torch.arange(width, device=dev)
    in_rows = (ph >= rows - r) & (ph < rows + r)  # N × n × H
    in_cols = (pw >= cols - r) & (pw < cols + r)  # N × n × W
    # covering count per pixel = Σ_k in_rows[k, p] · in_cols[k, q]; exact in float32 (≤ n)
    cover = torch.bmm(in_rows.transpose(1, 2).float(), in_cols.float())
    return cover > 0


def occlusion_mask(attr_map: Tensor, n: int, r: int) -> Tensor:
    """IOA mask for count n and radius r: N × H × W bool, True = occluded.

    ``attr_map``: N × H × W (see :func:`attribution_map`). Union of the clipped 2r × 2r squares
    rows [i − r, i + r), cols [j − r, j + r) around the n distinct top positions (i, j).
    """
    positions = top_positions(attr_map, n)
    return squares_mask(positions, r, attr_map.shape[1], attr_map.shape[2])


def _area(pixels: Tensor, hw: int) -> Tensor:
    """Occluded fraction (float64) from pixel counts; −1.0 where the count is −1."""
    return torch.where(pixels >= 0, pixels.to(torch.float64) / hw, -1.0)


def occlusion_steps(
    max_count: int, max_radius: int, order: OcclusionOrder
) -> list[tuple[int, int]]:
    """The (count, radius) grid in the order the attack tries it (1-based, N·R steps)."""
    _check_choice("order", order, ORDERS)
    if order == "count_first":
        return [(n, r) for n in range(1, max_count + 1) for r in range(1, max_radius + 1)]
    return [(n, r) for r in range(1, max_radius + 1) for n in range(1, max_count + 1)]


@dataclass(frozen=True)
class OcclusionResult:
    """Outcome of :func:`inductive_occlusion` for one batch; all tensors (N,) on the CPU.

    ``fooled``: bool, prediction ≠ label within the N × R budget. ``count``/``radius``: int64,
    the (n, r) of the first success, −1 when not fooled. ``area``: float64, occluded fraction
    of the H·W pixels of the successful mask, −1.0 when not fooled. ``queries``: int64,
    forward passes spent on the image (= its number of steps; N·R when not fooled).
    """

    fooled: Tensor
    count: Tensor
    radius: Tensor
    area: Tensor
    queries: Tensor
    max_count: int
    max_radius: int
    fill: float
    order: str
    forward_passes: int = 0

    @property
    def n_images(self) -> int:
        """Number of attacked images N."""
        return int(self.fooled.shape[0])

    @property
    def total_queries(self) -> int:
        """Image-forwards spent on all images (successful or not)."""
        return int(self.queries.sum())

    def error_rate(self) -> float:
        """Fraction of images fooled within the budget (NaN when N = 0)."""
        if self.n_images == 0:
            return float("nan")
        return float(self.fooled.to(torch.float64).mean())

    def mean_area(self) -> float:
        """Mean occluded area (fraction of H·W) over successful attacks (NaN if none)."""
        if not bool(self.fooled.any()):
            return float("nan")
        return float(self.area[self.fooled].mean())

    def mean_queries(self) -> float:
        """Mean number of queries over successful attacks (NaN if none)."""
        if not bool(self.fooled.any()):
            return float("nan")
        return float(self.queries[self.fooled].to(torch.float64).mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors); NaN values become None."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "order": self.order,
            "fill": self.fill,
            "max_count": self.max_count,
            "max_radius": self.max_radius,
            "n_images": self.n_images,
            "n_fooled": int(self.fooled.sum()),
            "error_rate": clean(self.error_rate()),
            "mean_area": clean(self.mean_area()),
            "mean_queries": clean(self.mean_queries()),
            "total_queries": self.total_queries,
            "forward_passes": self.forward_passes,
        }

    @staticmethod
    def merge(results: Iterable[OcclusionResult]) -> OcclusionResult:
        """Concatenate results of several batches (same settings) along the image axis."""
        return concat_batches(results, "occlusion")


def inductive_occlusion(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attr: Tensor,
    *,
    max_count: int = DEFAULT_MAX_COUNT,
    max_radius: int | None = None,
    fill: float = DEFAULT_FILL,
    order: OcclusionOrder = "count_first",
    max_batch: int = DEFAULT_MAX_BATCH,
) -> OcclusionResult:
    """Run IOA on one batch: ``x`` N × C × H × W in [0, 1], labels ``y`` (N,), ``attr`` signed
    attribution of x's shape.

    Tries the (n, r) steps of :func:`occlusion_steps`; at each step only the images not yet
    fooled are occluded and forwarded, together (split into chunks of ``max_batch``), and the
    loop ends as soon as every image is fooled. ``max_radius=None`` uses
    :func:`default_max_radius` of H; the R used is recorded in the result. ``fill`` ∈ [0, 1]
    (0.0 black = Duan, 0.5 grey = IGD default, 1.0 white = IGD). Model in eval mode, no_grad.
    """
    _check_choice("order", order, ORDERS)
    _check_images(x)
    y = _check_labels(y, x)
    attr = _check_attr(attr, x, "the inductive occlusion attack")
    max_batch = _check_max_batch(max_batch)
    n_img, _, height, width = x.shape
    if max_radius is None:
        max_radius = default_max_radius(height)
    if isinstance(max_radius, bool) or not isinstance(max_radius, int) or max_radius < 1:
        raise RobenchError(f"max_radius must be an int >= 1, got {max_radius!r}")
    if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
        raise RobenchError(f"max_count must be an int >= 1, got {max_count!r}")
    if max_count > height * width:
        raise RobenchError(f"max_count {max_count} exceeds the {height * width} pixels per image")
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real) or not (0.0 <= fill <= 1.0):
        raise RobenchError(f"fill must be a number in [0, 1], got {fill!r}")
    fill = float(fill)

    dev = x.device
    x = x.detach()
    positions = top_positions(attribution_map(attr), max_count)  # N × max_count
    fooled = torch.zeros(n_img, dtype=torch.bool, device=dev)
    count = torch.full((n_img,), -1, dtype=torch.long, device=dev)
    radius = torch.full((n_img,), -1, dtype=torch.long, device=dev)
    pixels = torch.full((n_img,), -1, dtype=torch.long, device=dev)  # occluded pixel count
    queries = torch.zeros(n_img, dtype=torch.long, device=dev)
    active = torch.arange(n_img, device=dev)
    calls = 0

    with eval_mode(model), torch.no_grad():
        for n, r in occlusion_steps(max_count, max_radius, order):
            n_active = active.shape[0]
            if n_active == 0:
                break
            hit_parts: list[Tensor] = []
            pixel_parts: list[Tensor] = []
            for start in range(0, n_active, max_batch):
                idx = active[start : start + max_batch]
                mask = squares_mask(positions[idx, :n], r, height, width)  # b × H × W
                xo = torch.where(mask.unsqueeze(1), fill, x[idx])
                hit_parts.append(_predict(model, xo) != y[idx])
                pixel_parts.append(mask.flatten(1).sum(dim=1))
                calls += 1
            hit = torch.cat(hit_parts)
            queries[active] += 1
            won = active[hit]
            fooled[won] = True
            count[won] = n
            radius[won] = r
            pixels[won] = torch.cat(pixel_parts)[hit]
            active = active[~hit]

    return OcclusionResult(
        fooled=fooled.cpu(),
        count=count.cpu(),
        radius=radius.cpu(),
        area=_area(pixels.cpu(), height * width),
        queries=queries.cpu(),
        max_count=max_count,
        max_radius=max_radius,
        fill=fill,
        order=order,
        forward_passes=calls,
    )
