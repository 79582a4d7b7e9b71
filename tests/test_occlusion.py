"""Inductive occlusion attack (IOA): robench.attacks.occlusion."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robench.attacks import (
    OcclusionResult,
    attribution_map,
    default_max_radius,
    inductive_occlusion,
    occlusion_mask,
    occlusion_steps,
    squares_mask,
    top_positions,
)
from robench.errors import RobenchError
from tests.conftest import Recorder

H = W = 12
BASE = 0.3  # clean pixel value of the toy images; every fill value differs from it


def reference_mask(attr_map: torch.Tensor, n: int, r: int) -> torch.Tensor:
    """Literal per-pixel loop of the definition (docs/attacks.md, "Inductive occlusion attack")."""
    batch, height, width = attr_map.shape
    out = torch.zeros(batch, height, width, dtype=torch.bool)
    for b in range(batch):
        vals = attr_map[b].reshape(-1).tolist()
        top = sorted(range(height * width), key=lambda e: (-vals[e], e))[:n]
        centres = [(e // width, e % width) for e in top]
        for p in range(height):
            for q in range(width):
                out[b, p, q] = any(
                    i - r <= p < i + r and j - r <= q < j + r for i, j in centres
                )
    return out




class PixelWatcher(nn.Module):
    """Class 1 iff one of the watched pixels (any channel) differs from BASE, else class 0."""

    def __init__(self, pixels: list[tuple[int, int]]):
        super().__init__()
        self.pixels = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals = torch.stack([x[:, :, i, j] for i, j in self.pixels], dim=-1)
        changed = ((vals - BASE).abs() > 1e-6).flatten(1).any(dim=1).float()
        return torch.stack([1.0 - changed, changed], dim=1)


def make_attr(tops: list[list[tuple[int, int]]], channels: int = 3) -> torch.Tensor:
    """Attribution whose channel-mean ranking starts with the given positions per image."""
    n = len(tops)
    attr = -torch.rand(n, channels, H, W, generator=torch.Generator().manual_seed(0))
    for b, positions in enumerate(tops):
        for rank, (i, j) in enumerate(positions):
            attr[b, :, i, j] = 100.0 - rank
    return attr


def images(n: int) -> torch.Tensor:
    return torch.full((n, 3, H, W), BASE)


# ------------------------------------------------------------------------------------- masks


def test_default_max_radius():
    assert default_max_radius(32) == 3
    assert default_max_radius(224) == 20
    assert default_max_radius(8) == 2
    assert default_max_radius(64) == 6
    assert default_max_radius(299) == 27
    with pytest.raises(RobenchError):
        default_max_radius(0)


@settings(max_examples=80, deadline=None)
@given(
    height=st.integers(1, 8),
    width=st.integers(1, 8),
    r=st.integers(1, 5),
    data=st.data(),
)
def test_occlusion_mask_matches_literal_loop(height, width, r, data):
    values = data.draw(st.lists(st.integers(-2, 2), min_size=2 * height * width,
                                max_size=2 * height * width))  # small range: ties
    attr_map = torch.tensor(values, dtype=torch.float32).view(2, height, width)
    n = data.draw(st.integers(1, min(height * width, 6)))
    assert torch.equal(occlusion_mask(attr_map, n, r), reference_mask(attr_map, n, r))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("r", [1, 2, 3, 7])
def test_occlusion_mask_matches_literal_loop_grid(n, r):
    attr_map = torch.randn(3, 9, 11, generator=torch.Generator().manual_seed(n * 10 + r))
    assert torch.equal(occlusion_mask(attr_map, n, r), reference_mask(attr_map, n, r))


def hand_map(positions: list[tuple[int, int]], size: int = 6) -> torch.Tensor:
    m = torch.zeros(1, size, size)
    for rank, (i, j) in enumerate(positions):
        m[0, i, j] = 10.0 - rank
    return m


def test_occlusion_mask_clipping_and_overlap_by_hand():
    # r = 1 is a 2 × 2 square: rows [i-1, i+1), cols [j-1, j+1)
    mask = occlusion_mask(hand_map([(3, 3)]), 1, 1)[0]
    assert mask.nonzero().tolist() == [[2, 2], [2, 3], [3, 2], [3, 3]]
    # top-left corner: rows [-2, 2) and cols [-2, 2) clip to 2 × 2
    mask = occlusion_mask(hand_map([(0, 0)]), 1, 2)[0]
    assert mask.sum() == 4 and mask[:2, :2].all()
    # bottom-right corner: rows/cols [3, 7) clip to [3, 6) → 3 × 3
    mask = occlusion_mask(hand_map([(5, 5)]), 1, 2)[0]
    assert mask.sum() == 9 and mask[3:, 3:].all()
    # overlapping squares: union, not sum
    mask = occlusion_mask(hand_map([(2, 2), (2, 3)]), 2, 1)[0]
    assert mask.sum() == 6 and mask[1:3, 1:4].all()
    # only the top-n positions count
    assert occlusion_mask(hand_map([(2, 2), (2, 3)]), 1, 1)[0].sum() == 4


def test_attribution_map_is_signed_channel_mean():
    attr = torch.zeros(1, 3, 4, 4)
    attr[0, 0, 0, 0] = 9.0  # big in one channel, cancelled by the others
    attr[0, 1, 0, 0] = -5.0
    attr[0, 2, 0, 0] = -5.0
    attr[0, :, 2, 2] = 1.0  # small but consistent
    amap = attribution_map(attr)
    assert torch.allclose(amap, attr.mean(1))
    assert top_positions(amap, 1).item() == 2 * 4 + 2


def test_top_positions_distinct_and_prefix():
    amap = torch.zeros(2, 5, 5)  # all ties: lowest indices first
    assert top_positions(amap, 3).tolist() == [[0, 1, 2], [0, 1, 2]]
    amap = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(1))
    p10 = top_positions(amap, 10)
    assert torch.equal(top_positions(amap, 4), p10[:, :4])
    assert all(len(set(row)) == 10 for row in p10.tolist())
    with pytest.raises(RobenchError):
        top_positions(amap, 26)
    with pytest.raises(RobenchError):
        squares_mask(p10, 0, 5, 5)


def test_occlusion_steps_orders():
    assert occlusion_steps(2, 3, "count_first") == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert occlusion_steps(2, 3, "radius_first") == [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3)]
    with pytest.raises(RobenchError):
        occlusion_steps(2, 3, "random")


# ------------------------------------------------------------------------------------ attack

# Top-1 position P1 = (2, 2) is far from the watched pixel S = (7, 7); top-2 P2 = (8, 8) has S
# in its r = 1 square (rows [7, 9) × cols [7, 9)). S enters P1's square only at r = 6.
P1, P2, S = (2, 2), (8, 8), (7, 7)


@pytest.mark.parametrize(
    ("order", "max_radius", "count", "radius", "queries", "area"),
    [
        ("count_first", 6, 1, 6, 6, 64 / 144),  # (1,1) … (1,6): rows/cols [-4, 8) → 8 × 8
        ("count_first", 3, 2, 1, 4, 8 / 144),  # (1,1) (1,2) (1,3) (2,1): two 2 × 2 squares
        ("radius_first", 6, 2, 1, 2, 8 / 144),  # (1,1) (2,1)
    ],
)
def test_loop_order_decides_which_step_succeeds(order, max_radius, count, radius, queries, area):
    model = PixelWatcher([S])
    attr = make_attr([[P1, P2]])
    res = inductive_occlusion(model, images(1), torch.zeros(1, dtype=torch.long), attr,
                              max_count=2, max_radius=max_radius, order=order, search="sweep")
    assert res.fooled.tolist() == [True]
    assert (res.count.item(), res.radius.item(), res.queries.item()) == (count, radius, queries)
    assert math.isclose(res.area.item(), area)
    assert res.max_radius == max_radius and res.order == order


def test_early_exit_forwards_only_unfooled_images():
    model = Recorder(PixelWatcher([S]))
    attr = make_attr([
        [S, P1],  # fooled at step 1
        [P1, P2],  # fooled at (2, 1) = step 4 with R = 3, count first
        [S, P2],  # fooled at step 1
        [(0, 0), (0, 11)],  # never fooled within N = 2, R = 3
    ])
    res = inductive_occlusion(model, images(4), torch.zeros(4, dtype=torch.long), attr,
                              max_count=2, max_radius=3, search="sweep")
    sizes = [b.shape[0] for b in model.inputs]
    assert sizes == [4, 2, 2, 2, 1, 1]  # 6 steps = N·R; fooled images leave the batch
    assert res.fooled.tolist() == [True, True, True, False]
    assert res.queries.tolist() == [1, 4, 1, 6]
    assert res.count.tolist() == [1, 2, 1, -1] and res.radius.tolist() == [1, 1, 1, -1]
    assert res.area.tolist()[3] == -1.0
    assert res.total_queries == sum(sizes) == 12 and res.forward_passes == 6
    assert math.isclose(res.error_rate(), 0.75)
    assert math.isclose(res.mean_queries(), 2.0)


def test_stops_when_all_images_are_fooled():
    model = Recorder(PixelWatcher([S]))
    attr = make_attr([[S, P1], [P2, P1]])
    res = inductive_occlusion(model, images(2), torch.zeros(2, dtype=torch.long), attr,
                              max_count=10, max_radius=20, search="sweep")
    assert len(model.inputs) == 1 and res.fooled.all()


@pytest.mark.parametrize("fill", [0.0, 0.5, 1.0])
def test_forwarded_images_are_filled_occlusions(fill):
    model = Recorder(PixelWatcher([(11, 11)]))
    x = images(2)
    x[1] = torch.rand(3, H, W, generator=torch.Generator().manual_seed(3))
    attr = make_attr([[(4, 5), (9, 1)], [(0, 3), (6, 6)]])
    y = torch.tensor([0, 1])  # image 1's watched pixel is not BASE: its clean class is 1
    res = inductive_occlusion(model, x, y, attr, max_count=2, max_radius=2, fill=fill,
                              order="radius_first", search="sweep")
    assert not res.fooled.any() and len(model.inputs) == 4
    amap = attribution_map(attr)
    for step, (n, r) in enumerate(occlusion_steps(2, 2, "radius_first")):
        mask = reference_mask(amap, n, r)[:, None].expand_as(x)
        expected = torch.where(mask, torch.full_like(x, fill), x)
        assert torch.equal(model.inputs[step], expected)


def test_max_batch_splits_each_step():
    model = Recorder(PixelWatcher([(11, 11)]))
    attr = make_attr([[(0, 0), (1, 1)]] * 5)
    res = inductive_occlusion(model, images(5), torch.zeros(5, dtype=torch.long), attr,
                              max_count=2, max_radius=2, max_batch=2, search="sweep")
    assert [b.shape[0] for b in model.inputs] == [2, 2, 1] * 4
    assert not res.fooled.any() and res.queries.tolist() == [4] * 5
    assert math.isnan(res.mean_area()) and res.to_dict()["mean_area"] is None


def test_eval_mode_no_grad_and_bn_untouched():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = Recorder(inner)
    model.train()
    before = {k: v.clone() for k, v in inner[1].state_dict().items()}
    x = torch.rand(3, 3, H, W, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2])
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    a = inductive_occlusion(model, x, y, attr, max_count=3, max_radius=2)
    assert model.training and inner.training
    assert all(state == (False, False) for state in model.states)
    for k, v in inner[1].state_dict().items():
        assert torch.equal(v, before[k])
    b = inductive_occlusion(model, x, y, attr, max_count=3, max_radius=2)
    for field in ("fooled", "count", "radius", "area", "queries"):
        assert torch.equal(getattr(a, field), getattr(b, field))


def test_default_radius_is_recorded():
    model = PixelWatcher([(11, 11)])
    x = torch.full((1, 3, 32, 32), BASE)
    attr = torch.zeros_like(x)
    attr[0, :, 0, 0] = 1.0
    res = inductive_occlusion(model, x, torch.zeros(1, dtype=torch.long), attr, max_count=1, search="sweep")
    assert res.max_radius == 3 and res.queries.item() == 3 and res.fill == 0.5


def test_inductive_occlusion_errors():
    model = PixelWatcher([S])
    x, y = images(1), torch.zeros(1, dtype=torch.long)
    attr = make_attr([[P1]])
    for kwargs in ({"fill": 2.0}, {"order": "diagonal"}, {"max_radius": 0},
                   {"max_count": 0}, {"max_count": H * W + 1}, {"max_batch": 0}):
        with pytest.raises(RobenchError):
            inductive_occlusion(model, x, y, attr, **kwargs)
    with pytest.raises(RobenchError):
        inductive_occlusion(model, x, y, attr[:, :, :4])


def test_occlusion_result_summary_and_merge():
    res = OcclusionResult(
        fooled=torch.tensor([True, False, True]),
        count=torch.tensor([1, -1, 3]),
        radius=torch.tensor([2, -1, 1]),
        area=torch.tensor([0.1, -1.0, 0.3], dtype=torch.float64),
        queries=torch.tensor([2, 9, 4]),
        max_count=3, max_radius=3, fill=0.5, order="count_first",
    )
    assert math.isclose(res.error_rate(), 2 / 3)
    assert math.isclose(res.mean_area(), 0.2)
    assert math.isclose(res.mean_queries(), 3.0)
    assert res.total_queries == 15
    merged = OcclusionResult.merge([res, res])
    assert merged.n_images == 6 and math.isclose(merged.mean_area(), 0.2)
    assert res.to_dict()["n_fooled"] == 2


# ------------------------------------------------------------------------------- bisection


def test_squares_mask_with_radius_and_count_per_image_matches_reference():
    attr_map = torch.randn(5, H, W, generator=torch.Generator().manual_seed(3))
    counts, radii = torch.tensor([1, 3, 2, 4, 1]), torch.tensor([2, 1, 3, 1, 5])
    got = squares_mask(top_positions(attr_map, 4), radii, H, W, counts)
    for b in range(5):
        assert torch.equal(got[b], reference_mask(attr_map[b:b + 1], int(counts[b]), int(radii[b]))[0])


@pytest.mark.parametrize("order", ["count_first", "radius_first"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_bisection_finds_the_sweeps_first_success_when_occlusion_is_monotone(order, data):
    """PixelWatcher's decision is monotone in the occluded set: bisection must give the sweep's step and area."""
    n = 6
    watched = [(data.draw(st.integers(0, H - 1)), data.draw(st.integers(0, W - 1))) for _ in range(n)]
    tops = [[(data.draw(st.integers(0, H - 1)), data.draw(st.integers(0, W - 1))) for _ in range(3)] for _ in range(n)]
    max_count, max_radius = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 7))
    results = {}
    for search in ("sweep", "bisect"):
        parts = [inductive_occlusion(PixelWatcher([watched[b]]), images(1), torch.zeros(1, dtype=torch.long),
                                     make_attr([tops[b]]), max_count=max_count, max_radius=max_radius, order=order,
                                     search=search) for b in range(n)]
        results[search] = OcclusionResult.merge(parts)
    sweep, bisect = results["sweep"], results["bisect"]
    for field in ("fooled", "count", "radius", "area"):
        assert torch.equal(getattr(sweep, field), getattr(bisect, field)), field
    outer, inner = (max_count, max_radius) if order == "count_first" else (max_radius, max_count)
    assert int(bisect.queries.max()) <= outer + math.ceil(math.log2(inner))
    assert bisect.queries[~bisect.fooled].eq(outer).all()  # an image that resists: one query per outer value
    assert bisect.search == "bisect" and sweep.search == "sweep"


def test_bisection_batches_images_with_different_answers_together():
    """Several images in one call, each with its own first success, as when each is alone."""
    attr = make_attr([[(1, 1), (5, 7), (10, 2)], [(0, 11), (5, 5)], [(9, 9), (2, 2)], [(6, 6), (0, 0)], [(0, 0)]])
    x, y = images(5), torch.zeros(5, dtype=torch.long)
    together = inductive_occlusion(PixelWatcher([(5, 5)]), x, y, attr, max_count=3, max_radius=6, max_batch=2)
    sweep = inductive_occlusion(PixelWatcher([(5, 5)]), x, y, attr, max_count=3, max_radius=6, search="sweep")
    assert len(set(zip(sweep.count.tolist(), sweep.radius.tolist()))) >= 3  # the images differ
    for field in ("fooled", "count", "radius", "area"):
        assert torch.equal(getattr(together, field), getattr(sweep, field)), field
    assert int(together.queries.max()) <= 3 + 3  # N + ceil(log2 R)


def test_bisection_misses_a_success_that_a_larger_mask_undoes():
    """Documented limit: where a larger square restores the prediction, the search trusts the largest one."""
    class FooledOnlyByTheSmallestSquare(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            occluded = ((x - BASE).abs() > 1e-6).flatten(1).float().sum(1) / 3  # occluded pixels
            fooled = (occluded == 4).float()  # exactly one 2 × 2 square
            return torch.stack([1.0 - fooled, fooled], dim=1)

    attr = make_attr([[(5, 5)]])
    kwargs = dict(max_count=1, max_radius=4)
    sweep = inductive_occlusion(FooledOnlyByTheSmallestSquare(), images(1), torch.zeros(1, dtype=torch.long), attr,
                                search="sweep", **kwargs)
    bisect = inductive_occlusion(FooledOnlyByTheSmallestSquare(), images(1), torch.zeros(1, dtype=torch.long), attr,
                                 **kwargs)
    assert sweep.fooled.tolist() == [True] and sweep.radius.tolist() == [1]
    assert bisect.fooled.tolist() == [False] and bisect.queries.tolist() == [1]


def test_unknown_search_is_refused():
    with pytest.raises(RobenchError, match="search"):
        inductive_occlusion(PixelWatcher([S]), images(1), torch.zeros(1, dtype=torch.long), make_attr([[P1]]),
                            search="binary")
