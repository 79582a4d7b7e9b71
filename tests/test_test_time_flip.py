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


def _flip_run(checkpoint: Path, out: Path, flip: bool) -> robench.Run:
    """A small inequality run of ``checkpoint`` through the Python API, written to ``out``."""
    return robench.evaluate(str(checkpoint), "sample", "inequality", limit=12, out=out,
                            model_options={"test_time_flip": flip}, ina_budgets="0.01", rn_budgets="0.1",
                            occlusion_fill="0.5", occlusion_count=1)


def _mirror_mean(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of the unflipped model's logits on ``x`` and on its mirror."""
    return (model(x) + model(x.flip(-1))) / 2


def test_reports_and_gini_check_rebuild_the_run_with_its_flip(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """meta.json's model_loading record rebuilds the evaluated model exactly, test-time flip included; runs
    recorded before it (no model_loading) fall back to their options and the model's recorded flip."""
    from robench.gini_check import check_run
    from robench.reports.examples import reload_model

    plain = robench.load_model(str(tiny_checkpoint))
    x, _ = robench.load_data("sample", limit=4).batch(0, 4)
    flipped_run = _flip_run(tiny_checkpoint, tmp_path / "flip", True)
    assert flipped_run.meta["model_loading"]["test_time_flip"] is True
    assert json.loads((tmp_path / "flip" / "meta.json").read_text())["model_loading"] == flipped_run.meta["model_loading"]
    rebuilt = reload_model(robench.load_run(tmp_path / "flip"))
    with torch.no_grad():
        assert rebuilt.info.test_time_flip
        torch.testing.assert_close(rebuilt(x), _mirror_mean(plain, x))
        assert not torch.allclose(rebuilt(x), plain(x))
    assert check_run(tmp_path / "flip", images=6, batch=6, mad_limit=10_000)["equal"]  # Captum on the same model

    _flip_run(tiny_checkpoint, tmp_path / "plain", False)
    unflipped = reload_model(robench.load_run(tmp_path / "plain"))
    with torch.no_grad():
        assert not unflipped.info.test_time_flip
        torch.testing.assert_close(unflipped(x), plain(x))

    meta = json.loads((tmp_path / "flip" / "meta.json").read_text())  # as runs before the record were written
    del meta["model_loading"]
    (tmp_path / "flip" / "meta.json").write_text(json.dumps(meta))
    old = reload_model(robench.load_run(tmp_path / "flip"))
    with torch.no_grad():
        torch.testing.assert_close(old(x), _mirror_mean(plain, x))


def test_a_cli_run_records_the_same_loading_as_python(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "8", "--test-time-flip", "--mean", "0.5,0.5,0.5",
            "--out", tmp_path / "cli")
    assert r.code == 0, r.err
    recorded = robench.load_run(tmp_path / "cli").meta["model_loading"]
    assert recorded == robench.evaluate(str(tiny_checkpoint), limit=8, model_options={
        "test_time_flip": True, "mean": (0.5, 0.5, 0.5)}).meta["model_loading"]
    assert recorded["mean"] == [0.5, 0.5, 0.5] and recorded["test_time_flip"] is True and recorded["arch"] is None
