"""The inequality suite end to end: columns, independent Gini checks, one attribution per batch, any image size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robench.data import load_dataset
from robench.models.checkpoint import save_checkpoint
from robench.models.loading import load_model
from robench.models.registry import create_model
from robench.models.wrapper import ModelInfo, RobenchModel
from robench.reports.runs import PER_IMAGE_FILE
from robench.runner import evaluate
from robench.suites import InequalityConfig, make_suites
from tests.conftest import USER_ARCH

FAST = ["--ina-budgets", "0.01,0.02", "--rn-budgets", "0.1", "--occlusion-fill", "0.5", "--occlusion-count", "3"]


def mad_gini(values: np.ndarray) -> float:
    """Gini as the mean absolute difference over twice the mean (an independent formula)."""
    v = values.astype(np.float64).ravel()
    return float(np.abs(v[:, None] - v[None, :]).sum() / (2 * v.size**2 * v.mean()))


def captum_abs_saliency(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    from captum.attr import Saliency

    model.eval()
    return Saliency(model).attribute(x.clone().requires_grad_(), target=y, abs=True).detach().numpy()


def test_suite_writes_every_test(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "24", "--suite", "inequality", *FAST, "--out", out)
    assert r.code == 0, r.err
    results = pd.read_csv(out / "results.csv", dtype={"param": str})
    tests = set(results.loc[results.suite == "inequality", "test"])
    assert tests == {"gini", "lorenz", "concentration", "inductive_noise", "random_noise", "inductive_occlusion"}
    per_image = pd.read_csv(out / PER_IMAGE_FILE)
    for col in ("gini_pixel", "gini_region_sum", "gini_region_avgpool", "ina@0.01", "ina@0.02", "rn@0.1",
                "ioa[0.5]_fooled", "ioa[0.5]_area", "ioa[0.5]_queries"):
        assert col in per_image.columns
    wrong = ~per_image["correct"]
    assert per_image.loc[wrong, "ina@0.01"].isna().all() and per_image.loc[~wrong, "ina@0.01"].notna().all()
    ina = results.query("test == 'inductive_noise' and param == '0.02' and metric == 'error_rate'")
    assert ina["value"].item() == pytest.approx(per_image["ina@0.02"].mean())
    assert ina["n"].item() == int((~wrong).sum())
    gini = results.query("test == 'gini' and variant == 'pixel:abs' and param == 'correct' and metric == 'mean'")
    assert gini["value"].item() == pytest.approx(per_image.loc[~wrong, "gini_pixel"].mean(), rel=1e-5)


def test_gini_column_matches_captum_and_direct_formula(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = create_model("cnn_tiny")
    model = RobenchModel(net, ModelInfo("t", "cnn_tiny", 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3)).eval()
    data = load_dataset("sample", limit=16)
    config = InequalityConfig(ina_budgets=(0.01,), rn_budgets=(0.1,), occlusion_fill=(0.5,), occlusion_count=2)
    result = evaluate(model, data, make_suites("inequality", suite_options={"inequality": {"config": config}}), out_dir=None)
    x, y = data.batch(0, len(data))
    maps = captum_abs_saliency(model, x, y)
    expected = np.array([mad_gini(m) for m in maps])
    np.testing.assert_allclose(result.per_image["gini_pixel"].to_numpy(), expected, rtol=1e-4, atol=1e-6)


def test_region_block_sets_the_regional_gini_block(tmp_path: Path) -> None:
    """--region-block 8 at 32 px: each image's regional Gini is the Gini of its 4×4 channel-and-block sums of
    Captum's |saliency| (the default block there is 4: 8×8 regions), and the block is recorded."""
    torch.manual_seed(0)
    model = RobenchModel(create_model("cnn_tiny"), ModelInfo("t", "cnn_tiny", 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3))
    data = load_dataset("sample", limit=8)
    config = InequalityConfig(ina_budgets=(0.01,), rn_budgets=(0.1,), occlusion_fill=(), region_block=8)
    result = evaluate(model, data, make_suites("inequality", suite_options={"inequality": {"config": config}}),
                      out_dir=tmp_path / "run")
    x, y = data.batch(0, len(data))
    sums = captum_abs_saliency(model.eval(), x, y).reshape(len(data), 3, 4, 8, 4, 8).sum(axis=(1, 3, 5))
    np.testing.assert_allclose(result.per_image["gini_region_sum"].to_numpy(), [mad_gini(m) for m in sums],
                               rtol=1e-4, atol=1e-6)
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["suites"]["inequality"]["block_sum"] == 8


def test_a_region_block_larger_than_the_image_is_a_one_line_error(cli, tiny_checkpoint: Path,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "4", "--suite", "inequality", *FAST,
            "--region-block", "64", "--out", tmp_path / "run")
    assert r.code != 0 and "--region-block 64 exceeds the 32-pixel side of one image" in r.err
    assert not (tmp_path / "run" / "meta.json").exists()


@pytest.mark.slow
def test_resnet20_mean_pixel_gini_matches_independent_computation(foreign_checkpoint: Path) -> None:
    model = load_model(str(foreign_checkpoint), arch="cifar_resnet20:resnet20", arch_path=str(USER_ARCH),
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    data = load_dataset("sample", limit=48)
    config = InequalityConfig(ina_budgets=(0.01,), rn_budgets=(0.1,), occlusion_fill=(), occlusion_count=1)
    result = evaluate(model, data, make_suites("inequality", suite_options={"inequality": {"config": config}}), out_dir=None)
    x, y = data.batch(0, len(data))
    maps = captum_abs_saliency(model, x, y)
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).numpy()
    independent = np.mean([mad_gini(m) for m, c in zip(maps, correct) if c])
    row = result.results.query("test == 'gini' and variant == 'pixel:abs' and param == 'correct' and metric == 'mean'")
    assert row["value"].item() == pytest.approx(independent, abs=5e-4)
    assert 0.4 < independent < 0.7  # a standard model: far from the AT regime (Duan: 0.58 ± 0.05 with IG)


def test_attribution_computed_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import robench.suites.inequality as inequality

    calls: list[int] = []
    original = inequality.attribute

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(args[2]))
        return original(*args, **kwargs)

    monkeypatch.setattr(inequality, "attribute", counting)
    torch.manual_seed(0)
    model = RobenchModel(create_model("cnn_tiny"), ModelInfo("t", "cnn_tiny", 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3))
    config = InequalityConfig(ina_budgets=(0.01, 0.02), rn_budgets=(0.1,), occlusion_fill=(0.0, 1.0), occlusion_count=2)
    evaluate(model, load_dataset("sample", limit=20), make_suites("inequality", suite_options={"inequality": {"config": config}}),
             out_dir=None, batch_size=8)
    assert calls == [8, 8, 4]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 224, 224)])
def test_any_input_size_and_channel_count(cli, tmp_path: Path, shape: tuple[int, int, int]) -> None:  # type: ignore[no-untyped-def]
    c, h, w = shape
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (3, h, w, c), dtype=np.uint8), y=np.array([0, 1, 2]),
             classes=np.array([str(i) for i in range(10)]))
    torch.manual_seed(0)
    model = RobenchModel(create_model("cnn_tiny", in_chans=c), ModelInfo("t", "cnn_tiny", 10, shape, (0.5,) * c, (0.25,) * c))
    path = save_checkpoint(model, tmp_path / "m.pt")
    r = cli("evaluate", "--model", path, "--data", f"npz:{tmp_path / 'd.npz'}", "--suite", "inequality", *FAST,
            "--out", tmp_path / "run")
    assert r.code == 0, r.err
    meta = (tmp_path / "run" / "meta.json").read_text()
    expected_radius = {28: 3, 224: 20}[h]  # max(2, round(20·H/224)), halves rounded up (2.5 → 3)
    assert f'"occlusion_radius": {expected_radius}' in meta


def test_integrated_gradients_options(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "6", "--suite", "inequality", *FAST,
            "--attribution", "integrated_gradients", "--ig-steps", "8", "--ig-baseline", "mean", "--out", tmp_path / "ig")
    assert r.code == 0, r.err
    recorded = json.loads((tmp_path / "ig" / "meta.json").read_text())["suites"]["inequality"]["attribution_options"]
    assert recorded == {"ig_steps": 8, "ig_baseline": "mean"}  # by the names of the flags and of robench.evaluate
    bad = cli("evaluate", "--model", tiny_checkpoint, "--suite", "inequality", "--ig-steps", "8", "--out", tmp_path / "x")
    assert bad.code == 2 and "--ig-steps does not apply to attribution 'saliency'" in bad.err
    bad = cli("evaluate", "--model", tiny_checkpoint, "--suite", "clean", "--ig-steps", "8", "--out", tmp_path / "z")
    assert bad.code == 2 and "--ig-steps is an option of the inequality and sanity suite" in bad.err
    bad = cli("evaluate", "--model", tiny_checkpoint, "--suite", "inequality", "--noise", "pink", "--out", tmp_path / "y")
    assert bad.code == 2 and "--noise" in bad.err and not (tmp_path / "y").exists()
