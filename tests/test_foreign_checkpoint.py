"""The third-party ResNet-20 (state dict, module. prefixes, saved on CUDA) through a user-written --arch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from robench.data import load_dataset
from robench.models.loading import load_model
from tests.conftest import IMAGENET_NORM, USER_ARCH


def test_published_accuracy_on_lossless_images(cli, foreign_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", foreign_checkpoint, "--arch", "cifar_resnet20:resnet20", "--arch-path", USER_ARCH,
            *IMAGENET_NORM, "--data", "sample", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    accuracy = results.query("metric == 'accuracy' and variant == 'all'")["value"].item()
    assert accuracy == pytest.approx(0.915, abs=1e-9)  # published: 91.5% on official test images 0..999


@pytest.mark.slow
def test_torchscript_and_export_give_the_same_predictions(foreign_checkpoint: Path, tmp_path: Path) -> None:
    model = load_model(str(foreign_checkpoint), arch="cifar_resnet20:resnet20", arch_path=str(USER_ARCH),
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x, _ = load_dataset("sample", limit=100).batch(0, 100)
    torch.jit.trace(model, x[:2]).save(str(tmp_path / "r20.ts"))
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(model, (x[:2],), dynamic_shapes={"x": {0: batch}}), str(tmp_path / "r20.pt2"))
    with torch.no_grad():
        reference = model(x)
        for path in ("r20.ts", "r20.pt2"):
            other = load_model(str(tmp_path / path))
            logits = other(x)
            assert torch.equal(logits.argmax(1), reference.argmax(1)), path
            assert torch.allclose(logits, reference, atol=1e-4), path
