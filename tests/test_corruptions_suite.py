"""The corruptions suite: columns and rows, the on-disk cache reused by a second model, small images, `full`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import robench.suites.corruptions as corruptions_suite
from robench.models.checkpoint import save_checkpoint
from robench.reports.runs import PER_IMAGE_FILE
from robench.suites import FULL, make_suites
from tests.conftest import tiny_model

ARGS = ["--suite", "corruptions", "--corruptions", "gaussian_noise,pixelate", "--severities", "1,5", "--limit", "12"]


def test_columns_rows_and_table(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, *ARGS, "--out", tmp_path / "run")
    assert r.code == 0, r.err
    per_image = pd.read_csv(tmp_path / "run" / PER_IMAGE_FILE)
    cols = {"corr[gaussian_noise/1]", "corr[gaussian_noise/5]", "corr[pixelate/1]", "corr[pixelate/5]"}
    assert cols <= set(per_image.columns)
    results = pd.read_csv(tmp_path / "run" / "results.csv", dtype={"param": str})
    row = results.query("test == 'pixelate' and param == '5' and metric == 'error_rate'")
    assert row["value"].item() == pytest.approx(1 - per_image["corr[pixelate/5]"].mean())
    assert row["variant"].item() == "imagecorruptions/imagenet-c"
    assert results.query("test == 'gaussian_noise' and param == '1'")["variant"].item() == "torch/cifar10-c"
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["suites"]["corruptions"]["corruption_table"] == "cifar10-c"


def test_second_model_reuses_the_cached_corruptions(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    first = save_checkpoint(tiny_model(seed=1), tmp_path / "a.pt")
    second = save_checkpoint(tiny_model(seed=2), tmp_path / "b.pt")
    calls: list[str] = []
    real = corruptions_suite.corrupt_images

    def counting(images, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        return real(images, name, *args, **kwargs)

    monkeypatch.setattr(corruptions_suite, "corrupt_images", counting)
    args = [*ARGS[:-1], "10"]  # images no other test has corrupted (the cache lives for the session)
    assert cli("evaluate", "--model", first, *args, "--out", tmp_path / "a").code == 0
    assert calls == ["pixelate", "pixelate"]  # one per severity; the noise runs in torch
    assert cli("evaluate", "--model", second, *args, "--out", tmp_path / "b").code == 0
    assert calls == ["pixelate", "pixelate"]  # nothing regenerated for the second model
    assert cli("evaluate", "--model", first, *args, "--out", tmp_path / "a2").code == 0
    a, a2 = (pd.read_csv(tmp_path / d / PER_IMAGE_FILE) for d in ("a", "a2"))
    pd.testing.assert_frame_equal(a, a2)


def test_small_images_need_the_torch_noise_family(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8), y=np.arange(4),
             classes=np.array([str(i) for i in range(10)]))
    model = tiny_model()
    model.info.input_size = (3, 28, 28)
    path = save_checkpoint(model, tmp_path / "m.pt")
    data = ["--data", f"npz:{tmp_path / 'd.npz'}", "--suite", "corruptions", "--severities", "2"]
    r = cli("evaluate", "--model", path, *data, "--corruptions", "fog", "--out", tmp_path / "x")
    assert r.code == 2 and "at least 32×32" in r.err and not (tmp_path / "x").exists()
    r = cli("evaluate", "--model", path, *data, "--corruptions", "noise", "--out", tmp_path / "y")
    assert r.code == 0, r.err


def test_full_suite_names_and_bad_options(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert [s.name for s in make_suites("full")] == list(FULL)
    for args, message in ((["--corruptions", "rain"], "rain"), (["--severities", "6"], "severity"),
                          (["--severities", "a"], "--severities"), (["--corruption-engine", "gpu"], "torch or library")):
        r = cli("evaluate", "--model", tiny_checkpoint, "--suite", "corruptions", *args, "--out", tmp_path / "z")
        assert r.code == 2 and message in r.err, (args, r.err)


def test_finished_run_does_no_corruption_work(cli, tiny_checkpoint: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    args = [*ARGS[:-1], "9", "--out", tmp_path / "run"]  # images no other test has corrupted
    assert cli("evaluate", "--model", tiny_checkpoint, *args).code == 0

    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("corrupted images were requested for a finished run")

    monkeypatch.setattr(corruptions_suite, "cached_array", refuse)
    assert cli("evaluate", "--model", tiny_checkpoint, *args).code == 0


def test_mean_rows_have_an_image_bootstrap_interval_matching_scipy() -> None:
    """The mean over severities, the noise family and all corruptions: each value as before (the mean of the
    severity error rates) with the percentile-bootstrap interval over images of each image's mean error, which
    scipy.stats.bootstrap reproduces."""
    from scipy.stats import bootstrap

    from robench.settings import CorruptionsConfig

    (suite,) = [s for s in make_suites("corruptions", suite_options={"corruptions": {"config": CorruptionsConfig(
        corruptions="gaussian_noise,shot_noise,pixelate", severities=(1, 3, 5))}}) if s.name == "corruptions"]
    suite.restore({"corruption_table": "imagenet-c"})
    rng = np.random.default_rng(4)
    columns = {f"corr[{name}/{s}]": rng.random(400) > rate for name in suite.names for s, rate in
               zip((1, 3, 5), (0.2, 0.4, 0.7), strict=True)}
    per_image = pd.DataFrame(columns)
    rows = pd.DataFrame(suite.summarize(per_image, [])).set_index(["test", "param"])
    for test, names in (("pixelate", ["pixelate"]), ("noise_family", ["gaussian_noise", "shot_noise"]),
                        ("all", suite.names)):
        row = rows.loc[(test, "mean")]
        severity_rates = [1 - per_image[f"corr[{n}/{s}]"].mean() for n in names for s in (1, 3, 5)]
        assert row["value"] == pytest.approx(np.mean(severity_rates), abs=1e-12)
        image_error = np.mean([1 - per_image[f"corr[{n}/{s}]"].to_numpy(float) for n in names for s in (1, 3, 5)], 0)
        reference = bootstrap((image_error,), np.mean, method="percentile", n_resamples=20000, random_state=0)
        assert row["ci_low"] < row["value"] < row["ci_high"]
        assert row["ci_low"] == pytest.approx(reference.confidence_interval.low, abs=0.006)
        assert row["ci_high"] == pytest.approx(reference.confidence_interval.high, abs=0.006)
