"""Test-time flip (airbench's test-time augmentation): the logits are the mean of the image's and its mirror's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

import robench


def _asymmetric() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))  # a dense layer: mirroring changes its output


def test_logits_are_the_mean_over_the_mirror_and_gradients_flow() -> None:
    net = _asymmetric()
    x = torch.rand(5, 3, 8, 8, requires_grad=True)
    model = robench.wrap(net, mean=(0.5,), std=(0.25,), test_time_flip=True)
    z = (x - 0.5) / 0.25
    expected = (net(z) + net(z.flip(-1))) / 2
    out = model(x)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, robench.wrap(net, mean=(0.5,), std=(0.25,))(x))
    out.sum().backward()  # attacks and attributions differentiate through both passes
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_cli_flag_reaches_the_model_and_its_record(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "16", "--suite", "clean", "--test-time-flip",
            "--out", tmp_path / "flip")
    assert r.code == 0, r.err
    meta = json.loads((tmp_path / "flip" / "meta.json").read_text())
    assert meta["model"]["test_time_flip"] is True
    flipped = robench.load_run(tmp_path / "flip").per_image
    model = robench.load_model(str(tiny_checkpoint), test_time_flip=True)
    x, y = robench.load_data("sample", limit=16).batch(0, 16)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    assert (flipped["prediction"].to_numpy() == predicted.numpy()).all()
