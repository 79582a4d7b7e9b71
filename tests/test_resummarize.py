"""robench.resummarize / `robench resummarize`: a finished run's results.csv recomputed from its per-image table and
recorded settings, e.g. after the suites gained an interval (here: the corruptions suite's mean rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import robench
from robench.cli import main

MEAN_ROWS = "suite == 'corruptions' and param == 'mean'"


@pytest.fixture
def older_run(tmp_path: Path) -> tuple[robench.Run, Path]:
    """A run whose results.csv lacks the mean rows' intervals, as a run made before they existed."""
    run = robench.evaluate("zoo:standard", "sample", "corruptions", limit=16, out=tmp_path / "run",
                           corruptions="noise", severities="1,3")
    results = pd.read_csv(tmp_path / "run" / "results.csv", dtype={"param": str})
    results.loc[results.eval(MEAN_ROWS), ["ci_low", "ci_high"]] = np.nan
    results.to_csv(tmp_path / "run" / "results.csv", index=False)
    return run, tmp_path / "run"


def test_the_intervals_come_back_and_nothing_else_changes(older_run: tuple[robench.Run, Path]) -> None:
    run, path = older_run
    per_image, meta = (path / "per_image.csv.gz").read_bytes(), (path / "meta.json").read_bytes()
    assert robench.load_run(path).results.query(MEAN_ROWS)["ci_low"].isna().all()
    unsaved = robench.resummarize(path, save=False)
    assert robench.load_run(path).results.query(MEAN_ROWS)["ci_low"].isna().all()  # save=False writes nothing
    again = robench.resummarize(path)
    pd.testing.assert_frame_equal(again.results, unsaved.results)
    reloaded = robench.load_run(path).results
    assert reloaded.query(MEAN_ROWS)["ci_low"].notna().all() and len(reloaded.query(MEAN_ROWS)) == 5  # 4 + family + all
    pd.testing.assert_frame_equal(reloaded, run.results, check_exact=False, rtol=1e-5)  # as the run first wrote it
    assert (path / "per_image.csv.gz").read_bytes() == per_image and (path / "meta.json").read_bytes() == meta


def test_the_cli_rewrites_each_run_and_a_missing_one_is_a_one_line_error(
        older_run: tuple[robench.Run, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = older_run
    assert main(["resummarize", str(path)]) == 0
    assert "results.csv rewritten" in capsys.readouterr().out
    assert robench.load_run(path).results.query(MEAN_ROWS)["ci_high"].notna().all()
    assert main(["resummarize", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
