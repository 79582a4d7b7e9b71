"""The bundled models load with their metadata and show the phenomenon they are bundled to show."""

from __future__ import annotations

import pytest
import torch

from robench.attribution import saliency
from robench.data import load_dataset
from robench.metrics import pixel_gini
from robench.models.loading import load_model
from robench.zoo import zoo_names


@pytest.mark.parametrize("name", ["standard", "pgd-at", "igd"])
def test_zoo_model_loads_with_metadata(name: str) -> None:
    assert name in zoo_names()
    model = load_model(f"zoo:{name}")
    assert model.info.arch == "cnn_small" and model.info.input_size == (3, 32, 32) and model.info.num_classes == 10
    assert model.info.training["config"]["method"] == name and model.info.training["log"]
    assert len(model.info.sha256 or "") == 64


def test_pgd_at_raises_gini_and_igd_lowers_it() -> None:
    x, y = load_dataset("sample", limit=200).batch(0, 200)
    means = {}
    for name in ("standard", "pgd-at", "igd"):
        model = load_model(f"zoo:{name}")
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        means[name] = float(pixel_gini(saliency(model, x[correct], y[correct])).mean())
    assert means["pgd-at"] > means["standard"] + 0.05  # 0.651 vs 0.527 on all 1,000 sample images
    assert means["igd"] < means["pgd-at"] - 0.02  # 0.594
