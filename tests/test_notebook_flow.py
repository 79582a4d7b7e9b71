"""The notebook path of issue 27: wrap a module, evaluate, save, reload, report and compare, all from Python."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

import robench
from robench.errors import OtherRunError

FAST = {"ina_budgets": "0.01", "rn_budgets": "0.1", "occlusion_fill": "0.5", "occlusion_count": 2}


def module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 10))


@pytest.fixture(scope="module")
def run() -> robench.Run:
    wrapped = robench.wrap(module(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return robench.evaluate(wrapped, "sample", "inequality", limit=24, **FAST)


def test_saved_and_reloaded_tables_are_equal_dtypes_included(run: robench.Run, tmp_path: Path) -> None:
    run.save(tmp_path / "a")
    back = robench.load_run(tmp_path / "a")
    pd.testing.assert_frame_equal(run.per_image, back.per_image)  # dtypes too: float64 in memory as on disk
    pd.testing.assert_frame_equal(run.results, back.results)


def test_report_and_compare_a_wrapped_module_saved_or_not(run: robench.Run, tmp_path: Path) -> None:
    run.save(tmp_path / "a")
    report = robench.report(tmp_path / "a", out=tmp_path / "rep")
    assert report is not None and (tmp_path / "rep" / "report.html").exists()
    other = robench.evaluate("zoo:standard", "sample", "inequality", limit=24, out=tmp_path / "b", **FAST)
    unsaved = robench.evaluate(robench.wrap(module()), "sample", "inequality", limit=24, **FAST)
    assert unsaved.path is None
    table = robench.compare([unsaved, tmp_path / "b"], out=tmp_path / "cmp")
    assert list(table.columns[-2:]) == [unsaved.name, other.name]
    text = (tmp_path / "cmp" / "report.md").read_text()
    assert "not saved (in memory)" in text
    assert "cannot be reloaded" in text  # the example grid says why it has no maps of the in-memory module


def test_save_refuses_another_runs_directory(run: robench.Run, tmp_path: Path) -> None:
    other = robench.evaluate("zoo:standard", "sample", "inequality", limit=24, out=tmp_path / "b", **FAST)
    before = (tmp_path / "b" / "meta.json").read_bytes()
    with pytest.raises(OtherRunError, match=r"already holds results of a different run; .* overwrite=True$"):
        run.save(tmp_path / "b")
    assert (tmp_path / "b" / "meta.json").read_bytes() == before  # nothing written
    other.save(tmp_path / "b")  # the same run again: allowed
    run.save(tmp_path / "b", overwrite=True)
    assert robench.load_run(tmp_path / "b").name == run.name


def test_evaluate_into_another_runs_directory_raises_other_run_error(tmp_path: Path) -> None:
    """Another setting into a finished run's directory: refused and untouched; without its meta.json, replaced."""
    robench.evaluate("zoo:standard", "sample", "inequality", limit=8, out=tmp_path / "r", **FAST)
    before = (tmp_path / "r" / "meta.json").read_bytes()
    other = dict(FAST, ina_budgets="0.02")
    with pytest.raises(OtherRunError, match=r"already holds results of a different run; .* --overwrite$"):
        robench.evaluate("zoo:standard", "sample", "inequality", limit=8, out=tmp_path / "r", **other)
    assert (tmp_path / "r" / "meta.json").read_bytes() == before
    (tmp_path / "r" / "meta.json").unlink()  # what experiments/evaluate_imagenet.py does to replace a stale run
    replaced = robench.evaluate("zoo:standard", "sample", "inequality", limit=8, out=tmp_path / "r", **other)
    assert replaced.meta["suites"]["inequality"]["ina_budgets"] == [0.02]
