"""pytest-benchmark benchmarks of the inequality suite's performance targets (small inputs).

Run explicitly (not part of the test run; pyproject's testpaths is ``tests``)::

    .venv/bin/python -m pytest benchmarks -q --benchmark-only

Each group holds the variants one target compares; compare their means within a group
(``--benchmark-group-by=group``, the default). The targets, measured as ratios on larger inputs,
are printed by ``benchmarks/bench_inequality.py``. No test asserts on time.

1. ``suite-vs-floor``: the whole suite on one batch vs a bare replay of the passes it made;
2. ``attribution-*``: robench vs Captum, same method, steps and internal batch size;
3. ``gini-*``: robench pixel Gini vs Quantus Sparseness on the same maps;
4. ``per-image-vs-suite``: the reference scripts' one-image-at-a-time loop vs the suite;
5. ``memory``: peak RSS of the suite on two dataset sizes, each in a fresh process
   (in ``extra_info``; the time is of the two subprocesses).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

SUITE_IMAGES = 16
REFERENCE_IMAGES = 4
ROUNDS = 3


def _run(benchmark: Any, fn: Any, rounds: int = ROUNDS, warmup: int = 0) -> Any:
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)


# ------------------------------------------------------------------------------------------
# 1. the suite against the floor of its passes
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_case(bench: ModuleType, model: Any) -> dict[str, Any]:
    """One batch of real images, the default config, and the passes the suite makes on it."""
    data = bench.sample_data(SUITE_IMAGES)
    config = bench.InequalityConfig()
    with bench.PassRecorder(model) as rec:  # also the warm-up
        ev = bench.run_suite(model, data, config, batch_size=SUITE_IMAGES)
    layout = list(rec.calls)
    assert rec.summary()["forward_images"] == bench.expected_image_forwards(ev.per_image, config)
    inputs = bench.floor_inputs(layout, data.image_shape)
    bench.replay_passes(model, layout, data.image_shape, inputs)
    return {"data": data, "config": config, "layout": layout, "inputs": inputs, "passes": rec.summary()}


@pytest.mark.benchmark(group="1-suite-vs-floor")
def test_suite_batch(benchmark: Any, bench: ModuleType, model: Any, suite_case: dict[str, Any]) -> None:
    benchmark.extra_info.update(images=SUITE_IMAGES, **suite_case["passes"])
    ev = _run(benchmark, lambda: bench.run_suite(model, suite_case["data"], suite_case["config"],
                                                 batch_size=SUITE_IMAGES))
    assert len(ev.per_image) == SUITE_IMAGES


@pytest.mark.benchmark(group="1-suite-vs-floor")
def test_suite_floor(benchmark: Any, bench: ModuleType, model: Any, suite_case: dict[str, Any]) -> None:
    benchmark.extra_info.update(images=SUITE_IMAGES, **suite_case["passes"])
    data = suite_case["data"]
    _run(benchmark, lambda: bench.replay_passes(model, suite_case["layout"], data.image_shape, suite_case["inputs"]))


# ------------------------------------------------------------------------------------------
# 2. attribution against Captum
# ------------------------------------------------------------------------------------------

ATTRIBUTION_CASES = {  # method: (images, steps or samples, internal batch size)
    "saliency": (32, 1, 128),
    "integrated_gradients": (4, 50, 100),
    "smoothgrad": (4, 20, 40),
}


@pytest.mark.parametrize("impl", ["robench", "captum"])
@pytest.mark.parametrize("method", list(ATTRIBUTION_CASES))
def test_attribution(benchmark: Any, bench: ModuleType, model: Any, method: str, impl: str) -> None:
    n, steps, ibs = ATTRIBUTION_CASES[method]
    benchmark.group = f"2-attribution-{method}"
    benchmark.extra_info.update(images=n, steps=steps, internal_batch_size=ibs)
    x, y = bench.sample_data(n).batch(0, n)
    fn = bench.attribution_pairs(model, x, y, method, steps=steps, internal_batch_size=ibs)[impl]
    out = _run(benchmark, fn, warmup=1)
    assert out.shape == x.shape


# ------------------------------------------------------------------------------------------
# 3. Gini against Quantus Sparseness
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gini_cases(bench: ModuleType, model: Any) -> dict[str, tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    from robench.attribution import saliency

    x, y = bench.sample_data(128).batch(0, 128)
    gen = torch.Generator().manual_seed(0)
    big = torch.randn((16, 3, 224, 224), generator=gen)
    return {"cifar-128x3x32x32": (saliency(model, x, y), x.numpy(), y.numpy()),
            "random-16x3x224x224": (big, torch.rand(big.shape, generator=gen).numpy(), np.zeros(16, dtype=np.int64))}


@pytest.mark.parametrize("impl", ["robench", "quantus"])
@pytest.mark.parametrize("case", ["cifar-128x3x32x32", "random-16x3x224x224"])
def test_gini(benchmark: Any, bench: ModuleType, gini_cases: dict[str, Any], case: str, impl: str) -> None:
    benchmark.group = f"3-gini-{case}"
    attr, x, y = gini_cases[case]
    fn = bench.gini_pair(attr, x, y)[impl]
    scores = _run(benchmark, fn, rounds=5 if impl == "robench" else ROUNDS, warmup=1)
    assert len(scores) == attr.shape[0]


# ------------------------------------------------------------------------------------------
# 4. the reference scripts' per-image loop against the suite
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_data(bench: ModuleType) -> Any:
    return bench.sample_data(REFERENCE_IMAGES)


@pytest.mark.benchmark(group="4-per-image-vs-suite")
def test_per_image_reference(benchmark: Any, bench: ModuleType, model: Any, reference_data: Any) -> None:
    benchmark.extra_info.update(images=REFERENCE_IMAGES)
    per_image = _run(benchmark, lambda: bench.per_image_reference(model, reference_data, bench.InequalityConfig()),
                     warmup=1)
    assert len(per_image) == REFERENCE_IMAGES


@pytest.mark.benchmark(group="4-per-image-vs-suite")
def test_per_image_suite(benchmark: Any, bench: ModuleType, model: Any, reference_data: Any) -> None:
    benchmark.extra_info.update(images=REFERENCE_IMAGES)
    ev = _run(benchmark, lambda: bench.run_suite(model, reference_data, bench.InequalityConfig(),
                                                 batch_size=REFERENCE_IMAGES), warmup=1)
    assert len(ev.per_image) == REFERENCE_IMAGES


# ------------------------------------------------------------------------------------------
# 5. peak memory against dataset size
# ------------------------------------------------------------------------------------------

MEMORY_SIZES = (500, 5000)


@pytest.mark.benchmark(group="5-memory")
def test_peak_rss_vs_dataset_size(benchmark: Any, bench: ModuleType) -> None:
    """cnn_tiny, the ``tiny`` preset, batch size 128; peak RSS of each size in extra_info."""
    runs = _run(benchmark, lambda: [bench.measure_rss(n, "tiny", bench.torch.get_num_threads(), 128)
                                    for n in MEMORY_SIZES], rounds=1)
    small, large = runs
    benchmark.extra_info.update({f"peak_rss_mb_{r['images']}": round(r["peak_rss_mb"], 1) for r in runs})
    benchmark.extra_info["peak_rss_ratio"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)
    assert small["images"] == MEMORY_SIZES[0] and large["images"] == MEMORY_SIZES[1]
