"""A run's results recomputed from its per-image table and recorded settings alone (the suites' ``summarize``
on :func:`robench.suites.restore_suites`, through :func:`robench.resummarize`), and on the common-correct images the
comparison's scope (:func:`robench.reports.compare.common_values`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, committed

import robench
from robench.reports.compare import common_correct, common_values

KEYS = ["suite", "test", "variant", "param", "metric"]
SMALL = {"ina_budgets": (0.01, 0.02), "rn_budgets": (0.1,), "occlusion_fill": (0.5,), "occlusion_count": 2,
         "eps": "2/255,8/255", "pgd_steps": 2, "corruptions": "noise", "severities": "1,3"}


def summary(run: robench.Run, mask: np.ndarray | None = None) -> pd.DataFrame:
    """Result rows recomputed from the per-image table and the recorded settings alone (no model, no images), on
    the images ``mask`` selects (all by default), in the order of the run's own results (:func:`robench.resummarize`)."""
    per_image = run.per_image if mask is None else run.per_image[np.asarray(mask, dtype=bool)].reset_index(drop=True)
    return robench.resummarize(robench.Run(None, run.meta, run.results, per_image), save=False).results


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[robench.Run]:
    out = tmp_path_factory.mktemp("summary")
    return [robench.evaluate(f"zoo:{name}", "sample", suites="inequality,adversarial,corruptions", limit=24,
                             out=out / name, **SMALL) for name in ("standard", "pgd-at")]


def test_summary_of_all_images_is_the_run_results(runs: list[robench.Run]) -> None:
    run = runs[0]
    pd.testing.assert_frame_equal(summary(run), run.results)  # in memory: exactly
    saved = robench.load_run(run.path)
    again = summary(saved)
    assert (again[KEYS].astype(str).to_numpy() == saved.results[KEYS].astype(str).to_numpy()).all()
    np.testing.assert_allclose(again["value"], saved.results["value"], rtol=2e-5, atol=1e-6)  # both CSVs keep 6 digits


def test_summary_on_the_common_correct_images_matches_the_comparison(runs: list[robench.Run]) -> None:
    mask = common_correct(runs)
    assert 0 < mask.sum() < len(mask)
    for run in runs:
        recomputed = summary(run, mask)
        common = common_values(run, mask).set_index(["test", "param", "metric"])["value"]
        gini = recomputed.query("test == 'gini' and variant == 'pixel:abs' and param == 'correct' and metric == 'mean'")
        assert float(gini["value"].iloc[0]) == pytest.approx(common[("gini", "pixel", "mean")], abs=1e-12)
        pgd = recomputed.query("test == 'pgd' and metric == 'robust_accuracy'").set_index("param")["value"]
        for eps, value in pgd.items():
            assert value == pytest.approx(common[("pgd", eps, "robust_accuracy")], abs=1e-12)
        assert int(recomputed.query("suite == 'clean' and metric == 'accuracy'")["n"].iloc[0]) == mask.sum()


@pytest.mark.parametrize("run_dir", ["reports/reproduction/cifar10/runs/igd-lam1",
                                     "reports/reproduction/cifar10/runs/igd-lam1-autoattack"])
def test_runs_recorded_under_earlier_setting_names_summarize_again(run_dir: str) -> None:
    """Committed runs from before the settings were renamed (and before later measures): every row they
    have is recomputed from their per-image table; rows added since may come on top."""
    path = ROOT / run_dir
    committed(path / "meta.json")
    run = robench.load_run(Path(path))
    merged = run.results.merge(summary(run), on=KEYS, how="left", suffixes=("", "_again"))
    assert merged["value_again"].notna().sum() == merged["value"].notna().sum()
    np.testing.assert_allclose(merged["value_again"], merged["value"], rtol=1e-5, atol=1e-9)
