"""Inductive occlusion attack (IOA); docs/attacks.md, "Inductive occlusion attack".

Map = channel mean of the signed attribution (H × W). For a count n and a radius r the
occlusion mask is the union of the 2r × 2r squares rows [i − r, i + r) × cols [j − r, j + r)
(clipped to the image) centred on the n distinct top positions of the map (ties go to the
lower row-major index). Occluded pixels (all channels) are set to a constant ``fill``.

The attack walks the (n, r) grid, n = 1..N, r = 1..R, in one of two orders and stops per image
at the first (n, r) that changes the prediction away from the label:

- ``order="count_first"`` (IGD, default): count outer, radius inner:
  (1,1), (1,2), …, (1,R), (2,1), …
- ``order="radius_first"`` (Duan): radius outer, count inner: (1,1), (2,1), …, (N,1), (1,2), …

How the first success is found (``search``):

- ``"sweep"``: every step in order until the prediction changes: up to N·R forward passes per image
  (200 at N = 10, R = 20), and all of them for an image that resists;
- ``"bisect"`` (default): the outer axis is swept as in the sweep, and at each outer value one query
  at the largest inner value decides whether any inner value can succeed there (for a fixed count a
  square of radius r lies inside the one of radius r + 1; for a fixed radius the top-n positions are a
  prefix of the top-(n+1)); if it does, a bisection finds the smallest inner value that succeeds and
  ends with the value just below it queried and not fooled (the check below it). N queries for an
  image that resists (10 instead of 200 at 224 px), n + log2 R for one fooled at count n. Where a larger
  mask undoes a smaller one's success at the same outer value the two can differ;
  ``benchmarks/bench_inequality_224.py`` measures their agreement on real images.

R defaults to :func:`default_max_radius` (3 on 32 px, 20 on 224 px), because R = 20 on 32 px
images covers the whole image and fools every model. Which images count is the caller's
business: every image passed in is attacked (the suite normally passes only images that all
compared models classify correctly); no clean forward pass is spent.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
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
from robench.settings import ORDERS, SEARCHES  # the suite's settings check them without importing torch

OcclusionOrder = Literal["count_first", "radius_first"]
OcclusionSearch = Literal["bisect", "sweep"]

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


def squares_mask(positions: Tensor, r: int | Tensor, height: int, width: int, counts: Tensor | None = None) -> Tensor:
    """Union of 2r × 2r squares centred on ``positions``: N × height × width bool.

    ``positions``: N × n flat row-major indices (i = p // width, j = p % width). Pixel (p, q)
    is covered when i − r ≤ p < i + r and j − r ≤ q < j + r for some position; squares are
    clipped at the borders. ``r`` is one radius for all images or a tensor of N radii;
    ``counts`` (N ints, optional) keeps only the first ``counts[i]`` positions of image i. Built as
    a batched product of row and column interval indicators (no pixel loops), on the positions' device.
    """
    dev = positions.device
    if isinstance(r, Tensor):
        if r.shape != positions.shape[:1] or bool((r < 1).any()):
            raise RobenchError(f"radii must be a tensor of {positions.shape[0]} ints >= 1")
        radius = r.to(dev).view(-1, 1, 1)
    elif isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise RobenchError(f"radius r must be an int >= 1, got {r!r}")
    else:
        radius = torch.tensor(r, device=dev)
    rows = (positions // width).unsqueeze(-1)  # N × n × 1
    cols = (positions % width).unsqueeze(-1)
    ph = torch.arange(height, device=dev)
    pw = torch.arange(width, device=dev)
    in_rows = (ph >= rows - radius) & (ph < rows + radius)  # N × n × H
    in_cols = (pw >= cols - radius) & (pw < cols + radius)  # N × n × W
    if counts is not None:  # positions beyond an image's count cover nothing
        in_rows &= (torch.arange(positions.shape[1], device=dev) < counts.to(dev).view(-1, 1)).unsqueeze(-1)
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
    forward passes spent on the image (a sweep: its number of steps, N·R when not fooled; a bisection in
    count-first order: N when not fooled, n + about log2 R when fooled at count n).
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
    search: str = "sweep"
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
            "search": self.search,
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
    search: OcclusionSearch = "bisect",
    max_batch: int = DEFAULT_MAX_BATCH,
) -> OcclusionResult:
    """Run IOA on one batch: ``x`` N × C × H × W in [0, 1], labels ``y`` (N,), ``attr`` signed
    attribution of x's shape.

    Finds each image's first successful (n, r) of :func:`occlusion_steps` by ``search`` (module
    docstring): ``"sweep"`` tries the steps in order, ``"bisect"`` searches the monotone grid. At
    each query round only the images still searching are occluded and forwarded, together (split
    into chunks of ``max_batch``). ``max_radius=None`` uses :func:`default_max_radius` of H; the R used
    is recorded in the result. ``fill`` ∈ [0, 1] (0.0 black = Duan, 0.5 grey = IGD default, 1.0 white =
    IGD). Model in eval mode, no_grad.
    """
    _check_choice("order", order, ORDERS)
    _check_choice("search", search, SEARCHES)
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

    state = _Search(model, x.detach(), y, top_positions(attribution_map(attr), max_count), float(fill), max_batch)
    with eval_mode(model), torch.no_grad():
        if search == "sweep":
            state.sweep(occlusion_steps(max_count, max_radius, order))
        else:
            state.bisect(max_count, max_radius, order)
    return OcclusionResult(
        fooled=state.fooled.cpu(),
        count=state.count.cpu(),
        radius=state.radius.cpu(),
        area=_area(state.pixels.cpu(), height * width),
        queries=state.queries.cpu(),
        max_count=max_count,
        max_radius=max_radius,
        fill=float(fill),
        order=order,
        search=search,
        forward_passes=state.calls,
    )


class _Search:
    """Per-image state of an occlusion search over one batch: what was found and what it cost."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, positions: Tensor, fill: float, max_batch: int) -> None:
        self.model, self.x, self.y, self.positions, self.fill, self.max_batch = model, x, y, positions, fill, max_batch
        n, dev = x.shape[0], x.device
        self.fooled = torch.zeros(n, dtype=torch.bool, device=dev)
        self.count = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.radius = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.pixels = torch.full((n,), -1, dtype=torch.long, device=dev)  # occluded pixel count
        self.queries = torch.zeros(n, dtype=torch.long, device=dev)
        self.calls = 0

    def query(self, idx: Tensor, counts: Tensor, radii: Tensor) -> tuple[Tensor, Tensor]:
        """Occlude image ``idx[i]`` at (``counts[i]``, ``radii[i]``) and forward: (fooled, occluded pixels) per image."""
        hits, pixels = [], []
        height, width = self.x.shape[2:]
        for start in range(0, idx.shape[0], self.max_batch):
            part = slice(start, start + self.max_batch)
            ids = idx[part]
            mask = squares_mask(self.positions[ids], radii[part], height, width, counts[part])  # b × H × W
            xo = torch.where(mask.unsqueeze(1), self.fill, self.x[ids])
            hits.append(_predict(self.model, xo) != self.y[ids])
            pixels.append(mask.flatten(1).sum(dim=1))
            self.calls += 1
        self.queries[idx] += 1
        return torch.cat(hits), torch.cat(pixels)

    def record(self, idx: Tensor, counts: Tensor, radii: Tensor, pixels: Tensor) -> None:
        """Images ``idx`` were first fooled at (``counts``, ``radii``) with ``pixels`` occluded."""
        self.fooled[idx] = True
        self.count[idx], self.radius[idx], self.pixels[idx] = counts, radii, pixels

    def sweep(self, steps: list[tuple[int, int]]) -> None:
        """Try ``steps`` in order; each image stops at its first success."""
        active = torch.arange(self.x.shape[0], device=self.x.device)
        for n, r in steps:
            if active.shape[0] == 0:
                break
            hit, pixels = self.query(active, torch.full_like(active, n), torch.full_like(active, r))
            won = active[hit]
            self.record(won, torch.full_like(won, n), torch.full_like(won, r), pixels[hit])
            active = active[~hit]

    def bisect(self, max_count: int, max_radius: int, order: str) -> None:
        """The first success of the sweep in ``order``, the outer axis swept and the inner one bisected (the
        masks grow with the inner value at a fixed outer one, so success is taken to be monotone along it)."""
        def grid(outer: Tensor, inner: Tensor) -> tuple[Tensor, Tensor]:  # (outer, inner) → (counts, radii)
            return (outer, inner) if order == "count_first" else (inner, outer)

        outer_max, inner_max = (max_count, max_radius) if order == "count_first" else (max_radius, max_count)
        active = torch.arange(self.x.shape[0], device=self.x.device)
        for value in range(1, outer_max + 1):
            if active.shape[0] == 0:
                break
            outer = torch.full_like(active, value)
            hit, _ = self.query(active, *grid(outer, torch.full_like(active, inner_max)))
            found = active[hit]  # fooled at the largest inner value: bisect down to the smallest
            inner = self._smallest(found, inner_max, lambda rows, mid: grid(torch.full_like(mid, value), mid))
            counts, radii = grid(torch.full_like(found, value), inner)
            mask = squares_mask(self.positions[found], radii, self.x.shape[2], self.x.shape[3], counts)
            self.record(found, counts, radii, mask.flatten(1).sum(dim=1))
            active = active[~hit]

    def _smallest(self, images: Tensor, top: int, step: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]) -> Tensor:
        """Per image, the smallest value v in 1..``top`` whose ``step(rows, v)`` fools it, known to fool at ``top``:
        bisection, so v − 1 (when v > 1) has been queried and did not fool."""
        lo = torch.ones_like(images)
        hi = torch.full_like(images, top)
        while bool((open_ := lo < hi).any()):
            rows = open_.nonzero().flatten()
            mid = (lo[rows] + hi[rows]) // 2
            hit, _ = self.query(images[rows], *step(rows, mid))
            hi[rows] = torch.where(hit, mid, hi[rows])
            lo[rows] = torch.where(hit, lo[rows], mid + 1)
        return hi
