"""pytest-benchmark benchmarks of the noise corruptions (issue 6's speed target, small inputs).

Run explicitly: ``.venv/bin/python -m pytest benchmarks -q --benchmark-only``. One group per
corruption: the library image by image (as the reference scripts run it), robench's CPU default
(exact levels) and the torch formulas it falls back to. The target ratio, on 1,000 images, is
printed by ``benchmarks/bench_corruptions.py``. No test asserts on time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from robench.corruptions import corrupt_images, make_generator, noise, torch_corrupt
from robench.data import load_dataset

IMAGES = 64
SEVERITY = 3

pytest.importorskip("imagecorruptions")


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, torch.Tensor]:
    data = load_dataset("sample", limit=IMAGES)
    return np.asarray(data.images), data.batch(0, len(data))[0]


def _torch(x: torch.Tensor, name: str) -> torch.Tensor:
    return torch_corrupt(x, name, SEVERITY, table="imagenet-c", generator=make_generator(0))


@pytest.mark.parametrize("name", noise.TORCH_CORRUPTIONS)
@pytest.mark.parametrize("variant", ["library", "levels", "formulas"])
def test_noise(benchmark: Any, sample: tuple[np.ndarray, torch.Tensor], name: str, variant: str,
               monkeypatch: pytest.MonkeyPatch) -> None:
    images, x = sample
    benchmark.group = f"noise-{name}"
    benchmark.extra_info.update(images=IMAGES, severity=SEVERITY, threads=torch.get_num_threads())
    if variant == "library":
        benchmark.pedantic(lambda: corrupt_images(images, name, SEVERITY, seed=0), rounds=3, warmup_rounds=1)
        return
    if variant == "formulas":
        monkeypatch.setattr(noise, "_levels", lambda *args, **kwargs: None)
    out = benchmark.pedantic(lambda: _torch(x, name), rounds=10, warmup_rounds=1)
    assert out.shape == x.shape
