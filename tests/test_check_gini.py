"""robench/gini_check.py: the independent Gini check agrees with robench and catches a wrong value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from robench import gini_check as check_gini  # captum and quantus (dev extras) are imported where used
from robench.reports.runs import PER_IMAGE_FILE


@pytest.fixture
def run_dir(cli, tiny_checkpoint: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    r = cli("evaluate", "--model", tiny_checkpoint, "--data", "sample", "--limit", 60, "--suite", "inequality",
            "--ina-budgets", "0.01", "--rn-budgets", "0.1", "--occlusion-count", 1, "--occlusion-fill", "0.5",
            "--out", out)
    assert r.code == 0, r.err
    return out


def test_independent_gini_agrees_and_detects_a_wrong_value(run_dir: Path, tmp_path: Path) -> None:
    assert check_gini.main([str(run_dir), "--images", "10", "--out", str(tmp_path / "check.md")]) == 0
    assert "| yes |" in (tmp_path / "check.md").read_text() and "mean absolute difference" in (tmp_path / "check.md").read_text()
    pytest.importorskip("quantus")
    assert check_gini.main([str(run_dir), "--images", "10", "--mad-limit", "10"]) == 0  # Quantus for every map
    per_image = pd.read_csv(run_dir / PER_IMAGE_FILE)
    per_image["gini_pixel"] += 0.001
    per_image.to_csv(run_dir / PER_IMAGE_FILE, index=False)
    assert check_gini.main([str(run_dir), "--images", "10"]) == 1
