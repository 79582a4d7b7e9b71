"""The shared merge rule of per-batch attack results (robench.attacks.results.concat_batches)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robench.attacks.noise import NoiseResult
from robench.attacks.occlusion import OcclusionResult
from robench.errors import RobenchError


def _noise(n: int, **changes: object) -> NoiseResult:
    fooled = torch.arange(2 * 1 * n).reshape(2, 1, n) % 2 == 0
    res = NoiseResult(budgets=(0.1, 0.2), ks=(1, 2), fooled=fooled, predictions=fooled.long(), selection="random",
                      mode="add", noise="gaussian", trials=1, numel=10, forward_passes=n)
    return dataclasses.replace(res, **changes)


def test_tensors_join_on_the_image_axis_and_forward_passes_add_up() -> None:
    a, b = _noise(2), _noise(3)
    merged = NoiseResult.merge([a, b])
    assert merged.fooled.shape == (2, 1, 5) and torch.equal(merged.fooled[..., 2:], b.fooled)
    assert torch.equal(merged.predictions, torch.cat([a.predictions, b.predictions], dim=2))
    assert merged.forward_passes == 5 and merged.ks == (1, 2) and merged.mode == "add"


@pytest.mark.parametrize("field,value", [("ks", (1, 3)), ("mode", "replace"), ("trials", 2), ("budgets", (0.1, 0.3))])
def test_batches_with_different_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(RobenchError, match="cannot merge noise results with different settings"):
        NoiseResult.merge([_noise(2), _noise(2, **{field: value})])


def test_nothing_to_merge_is_an_error() -> None:
    with pytest.raises(RobenchError, match="nothing to merge: no occlusion results"):
        OcclusionResult.merge([])
