"""The sanity suite (model-parameter randomisation test): its similarity measures against scikit-image and
SciPy, its randomisation against Quantus' MPRT, its verdict on a weight-independent attribution, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import robench
from robench.attribution import ATTRIBUTIONS, saliency
from robench.data import load_dataset
from robench.errors import RobenchError
from robench.metrics.similarity import spearman, ssim
from robench.reports.report import build_report
from robench.schema import per_image_columns
from robench.suites import SanityConfig, make_suites
from robench.suites.base import Batch
from robench.suites.sanity import SanitySuite, randomisable_layers
from tests.conftest import tiny_model


def _sample(n: int) -> tuple[Tensor, Tensor]:
    data = load_dataset("sample", limit=n)
    return torch.as_tensor(np.asarray(data.images)).permute(0, 3, 1, 2).float() / 255, torch.as_tensor(data.labels)


def _batch(model: nn.Module, x: Tensor, y: Tensor, seed: int = 0) -> Batch:
    with torch.no_grad():
        logits = model(x)
    return Batch(x=x, y=y, index=np.arange(len(y)), logits=logits, generator=torch.Generator().manual_seed(seed))


def _steps(per_image: pd.DataFrame, part: str) -> list[str]:
    return [c.name for c in per_image_columns(per_image.columns, "mprt", part)]


def test_ssim_matches_scikit_image_and_spearman_matches_scipy() -> None:
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(5, 3, 32, 24, generator=g, dtype=torch.float64)
    b = (0.6 * a + 0.4 * torch.rand(5, 3, 32, 24, generator=g, dtype=torch.float64)).clamp(0, 1)
    b[1] = torch.round(b[1] * 4) / 4  # many ties for the ranks
    b[2] = a[2]
    expected = [structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, channel_axis=0) for i in range(5)]
    np.testing.assert_allclose(ssim(a, b).numpy(), expected, rtol=0, atol=1e-12)
    assert ssim(a, b)[2] == pytest.approx(1.0)
    expected = [stats.spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(5)]
    np.testing.assert_allclose(spearman(a, b).numpy(), expected, rtol=0, atol=1e-12)
    assert torch.isnan(spearman(a[:1], torch.zeros_like(a[:1]))).all()  # a constant map has no rank correlation


def test_correlation_falls_as_layers_are_randomised_and_the_model_is_left_alone() -> None:
    model = robench.load_model("zoo:standard")
    x, y = _sample(16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    columns = SanitySuite().run_batch(model, _batch(model, x, y))
    per_image = pd.DataFrame(columns)
    names = [name for name, _ in randomisable_layers(model.net)]
    # airbench_s, output first: fc, then 6 BN + 6 conv; the frozen patch whitening holds only buffers
    assert names[0] == "fc" and names[-1] == "stages.0.conv1" and len(names) == 13
    spearman_columns = _steps(per_image, "spearman")
    assert spearman_columns == [f"mprt[{k}/13:{name}]_spearman" for k, name in enumerate(names, 1)]
    first, last = per_image[spearman_columns[0]].mean(), per_image[spearman_columns[-1]].mean()
    assert first > last + 0.15, (first, last)
    ssim_columns = _steps(per_image, "ssim")
    assert per_image[ssim_columns[0]].mean() > per_image[ssim_columns[-1]].mean()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.fixture
def input_edges() -> Iterator[str]:
    """An attribution that ignores the model: the Sobel gradient magnitude of each channel of the image."""

    def input_edges(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype)
        kernels = torch.stack([sobel, sobel.T]).unsqueeze(1).repeat(x.shape[1], 1, 1, 1)  # 2C×1×3×3
        g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=x.shape[1])
        return g.view(x.shape[0], x.shape[1], 2, *x.shape[2:]).norm(dim=2)

    ATTRIBUTIONS.register()(input_edges)
    try:
        yield "input_edges"
    finally:
        del ATTRIBUTIONS._entries["input_edges"]


def test_a_weight_independent_attribution_is_flagged_and_saliency_is_not(input_edges: str, tmp_path: Path) -> None:
    flags = {}
    for attribution in (input_edges, "saliency"):
        run = robench.evaluate("zoo:standard", "sample", suites="sanity", limit=16, attribution=attribution)
        verdict = run.rows("mprt", "flagged")
        assert len(verdict) == 1 and verdict["param"].iloc[0] == "13/13:stages.0.conv1"  # every layer randomised
        flags[attribution] = verdict["value"].iloc[0]
        spearman_means = run.rows("mprt", "spearman")["value"].to_numpy()
        if attribution == input_edges:
            np.testing.assert_allclose(spearman_means, 1.0)
            run.save(tmp_path / "edges")
        else:
            assert spearman_means[-1] < 0.3
    assert flags == {input_edges: 1.0, "saliency": 0.0}
    report = build_report([tmp_path / "edges"], tmp_path / "report", examples=False)
    assert any("input_edges" in note and "FAILS" in note for note in report.notes)
    text = report.markdown.read_text()
    assert "Attribution sanity check" in text and "**attribution input_edges of standard FAILS" in text


def test_per_layer_spearman_matches_quantus_mprt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quantus' MPRT (cascading top-down, Spearman of |a| normalised by the max) on the same model and images,
    with robench's saliency as its explanation function. Quantus seeds every layer's reset_parameters() with
    torch.manual_seed(seed + 1); robench's per-layer seed is set to that value so both randomise identically:
    the comparison checks the layer list and order, the cascade, the re-initialisation and the similarity."""
    quantus = pytest.importorskip("quantus")
    monkeypatch.setattr("robench.suites.sanity.layer_seed", lambda seed, position: 42 + 1)
    model = robench.load_model("zoo:standard")
    x, y = _sample(12)

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        return saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()

    metric = quantus.MPRT(layer_order="top_down", seed=42, abs=True, normalise=True, disable_warnings=True)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, explain_func=explain,
                    device="cpu", channel_first=True)
    per_image = pd.DataFrame(SanitySuite(config=SanityConfig(mprt_steps=100)).run_batch(model, _batch(model, x, y)))
    columns = per_image_columns(per_image.columns, "mprt", "spearman")
    layers = [name for name in scores if name != "original"]
    assert [c.param.partition(":")[2] for c in columns] == [name.removeprefix("net.") for name in layers]
    for column, layer in zip(columns, layers):
        np.testing.assert_allclose(per_image[column.name].to_numpy(), scores[layer], rtol=0, atol=1e-5)
    assert np.ptp([np.mean(scores[layer]) for layer in layers]) > 0.05  # the layers' scores differ: not a trivial match


def test_one_seed_gives_identical_tables_and_another_seed_does_not() -> None:
    def per_image(seed: int) -> pd.DataFrame:
        run = robench.evaluate(tiny_model(), "sample", suites="sanity", limit=12, seed=seed, batch_size=8,
                               attribution="smoothgrad", smoothgrad_samples=2, mprt_steps=3)
        return run.per_image

    first = per_image(0)
    assert len(_steps(first, "spearman")) == 3
    pd.testing.assert_frame_equal(first, per_image(0))
    assert not np.allclose(first[_steps(first, "spearman")], per_image(1)[_steps(first, "spearman")])


def test_config_errors_and_cli_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RobenchError, match="mprt_steps: must be at least 1"):
        make_suites("sanity", suite_options={"sanity": {"config": SanityConfig(mprt_steps=0)}})
    scripted = robench.wrap(torch.jit.script(tiny_model().net))
    x, y = _sample(2)
    with pytest.raises(RobenchError, match="no layer to randomise"):
        SanitySuite().run_batch(scripted, _batch(scripted, x, y))
    r = cli("evaluate", "--model", "zoo:standard", "--data", "sample", "--suite", "sanity", "--limit", "16",
            "--out", tmp_path / "run")
    assert r.code == 0, r.err
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(results.loc[results["suite"] == "sanity", "metric"]) == {"spearman", "ssim", "gini", "flagged"}
