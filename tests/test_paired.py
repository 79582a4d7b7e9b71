"""Paired tests of two models on the same images: McNemar, Holm, and robench.paired on committed runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, binomtest

import robench
from robench.errors import RobenchError
from robench.metrics.paired import holm, mcnemar, mcnemar_p

ZOO = Path(__file__).resolve().parents[1] / "reports" / "zoo"


def test_mcnemar_counts_discordant_images_and_gives_the_exact_p() -> None:
    a = np.array([1, 1, 1, 0, 0, 1, np.nan, 0] + [0] * 10 + [1] * 3)
    b = np.array([0, 0, 0, 1, 0, 1, 1, np.nan] + [1] * 10 + [0] * 3)
    only_a, only_b, p = mcnemar(a, b)  # NaN: not attacked in one model, left out
    assert (only_a, only_b) == (6, 11)
    assert p == pytest.approx(2 * binom.cdf(6, 17, 0.5))  # two-sided exact test on the 17 discordant images
    assert mcnemar_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)  # by hand: 2·P(X ≤ 2), X ~ Bin(12, 1/2)
    assert mcnemar(np.array([1, 0]), np.array([1, 0]))[2] == 1.0


def test_mcnemar_refuses_shares_and_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="0/1 flags"):
        mcnemar(np.array([0.5, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar(np.array([1.0]), np.array([1.0, 0.0]))


def test_holm_steps_down_and_keeps_the_order() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running maximum: 0.04 → 0.06
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(pd.Series([0.6, 0.5])).tolist() == [1.0, 1.0]  # clipped at 1


def test_paired_errors_match_a_direct_computation_on_the_common_correct_images() -> None:
    a, b = (robench.load_run(ZOO / name) for name in ("pgd-at", "standard"))
    table = robench.paired(a, b)
    assert {"ina@0.01", "rn@0.1", "ioa[0.5]_fooled", "pgd@0.0313725"} <= set(table["column"])
    assert "ioa[0.5]_area" not in set(table["column"]) and "gini_pixel" not in set(table["column"])
    pa, pb = (pd.read_csv(ZOO / name / "per_image.csv.gz") for name in ("pgd-at", "standard"))
    common = (pa["correct"] == 1) & (pb["correct"] == 1)
    for name, robust in (("ina@0.01", False), ("ioa[0.5]_fooled", False), ("pgd@0.0313725", True)):
        ea, eb = (t.loc[common, name].astype(float) for t in (pa, pb))
        if robust:  # robust flags: an error is a 0
            ea, eb = 1 - ea, 1 - eb
        both = ea.notna() & eb.notna()
        ea, eb = ea[both], eb[both]
        row = table.set_index("column").loc[name]
        assert row["images"] == both.sum() > 500
        assert row["error_a"] == pytest.approx(ea.mean()) and row["error_b"] == pytest.approx(eb.mean())
        only_a, only_b = int(((ea == 1) & (eb == 0)).sum()), int(((ea == 0) & (eb == 1)).sum())
        assert (row["fooled_a_only"], row["fooled_b_only"]) == (only_a, only_b)
        assert row["p_mcnemar"] == pytest.approx(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]
    pgd = table.set_index("column").loc["pgd@0.0313725"]
    assert pgd["difference"] < -0.3 and pgd["ci_high"] < 0 and pgd["p_mcnemar"] < 1e-6  # PGD-AT resists PGD
    swapped = robench.paired(b, a).set_index("column")
    assert swapped.loc["ina@0.01", "difference"] == pytest.approx(-table.set_index("column").loc["ina@0.01", "difference"])


def test_paired_refuses_a_column_that_holds_no_errors(cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RobenchError, match="not a per-image error column"):
        robench.paired(ZOO / "pgd-at", ZOO / "standard", columns=["gini_pixel"])
    r = cli("paired", ZOO / "pgd-at", ZOO / "standard", "--column", "ina@0.01", "--column", "pgd@0.0313725")
    assert r.code == 0, r.err
    assert "ina@0.01" in r.out and "McNemar" in r.out
    bad = cli("paired", ZOO / "pgd-at", ZOO / "standard", "--column", "lorenz@0.05")
    assert bad.code != 0 and "not a per-image error column" in bad.err and "Traceback" not in bad.err
