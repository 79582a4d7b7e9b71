"""The per-image schema: every suite column of a real run is described, and names round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robench.reports.runs import load_run
from robench.schema import column_name, describe_column, per_image_columns

BASE = {"index", "label", "prediction", "correct", "confidence", "true_class_prob"}


def test_every_column_of_a_full_run_is_described_and_round_trips(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--data", "sample", "--limit", "16", "--suite", "full",
            "--corruptions", "noise", "--severities", "1", "--ina-budgets", "0.01", "--rn-budgets", "0.02",
            "--occlusion-fill", "0.5", "--occlusion-count", "1", "--pgd-steps", "1", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    names = list(load_run(tmp_path / "run").per_image.columns)
    undescribed = [n for n in names if describe_column(n) is None]
    assert set(undescribed) == BASE & set(names)
    for column in per_image_columns(names):
        assert column_name(column.test, column.param, column.part) == column.name
    tests = {c.test for c in per_image_columns(names)}
    assert {"gini", "concentration", "lorenz", "inductive_noise", "random_noise", "inductive_occlusion", "pgd",
            "fgsm", "corruption"} <= tests


def test_flags_convert_to_errors_by_their_meaning() -> None:
    flags = np.array([1.0, 0.0, np.nan])
    assert np.array_equal(describe_column("ina@0.01").errors(flags), flags, equal_nan=True)  # fooled: as is
    for robust_or_correct in ("pgd@0.0313725", "corr[gaussian_noise/1]"):
        assert np.array_equal(describe_column(robust_or_correct).errors(flags), [0.0, 1.0, np.nan], equal_nan=True)
