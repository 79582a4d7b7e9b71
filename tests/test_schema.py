"""The per-image schema: every suite column of a real run is described, and names round-trip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, committed

import robench
from robench.reports.runs import load_run
from robench.schema import (
    FAMILIES,
    RESULT_COLUMNS,
    ResultsRow,
    alignment_column,
    all_zero_column,
    column_name,
    concentration_column,
    corruption_column,
    describe_column,
    gini_column,
    large_eps_column,
    lorenz_column,
    mprt_column,
    mprt_step,
    mprt_step_parts,
    noise_column,
    occlusion_column,
    occlusion_limits,
    occlusion_order,
    occlusion_param,
    occlusion_variant,
    per_image_columns,
    robust_column,
    significant,
    top_mass_fraction,
    top_mass_measure,
)
from robench.suites.inequality import InequalitySuite

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
    families = {c.family for c in per_image_columns(names)}
    assert {"gini", "concentration", "lorenz", "all_zero", "inductive_noise", "random_noise", "inductive_occlusion",
            "robust", "corruption", "sanity"} <= families


def test_flags_convert_to_errors_by_their_meaning() -> None:
    flags = np.array([1.0, 0.0, np.nan])
    assert np.array_equal(describe_column("ina@0.01").errors(flags), flags, equal_nan=True)  # fooled: as is
    for robust_or_correct in ("pgd@0.0313725", "corr[gaussian_noise/1]"):
        assert np.array_equal(describe_column(robust_or_correct).errors(flags), [0.0, 1.0, np.nan], equal_nan=True)


# ------------------------------------------------------------------- every column family, declared once

ZOO = "reports/zoo/standard"
FAST = "reports/reproduction/cifar10-fast"


def _mprt_step(run: robench.Run) -> str:
    return per_image_columns(run.per_image.columns, family="mprt", part="spearman")[0].param


#: (family, committed run holding such a column, the column by its builder); ``run`` None: rows made by the suite
FAMILY_CASES = [
    ("gini", ZOO, lambda run: gini_column("pixel")),
    ("gini", ZOO, lambda run: gini_column("region_avgpool")),
    ("gini", f"{FAST}/attributions/runs/igd-lam1", lambda run: gini_column("pixel", "integrated_gradients")),
    ("concentration", ZOO, lambda run: concentration_column("entropy")),
    ("concentration", ZOO, lambda run: concentration_column(top_mass_measure(0.01))),
    ("lorenz", ZOO, lambda run: lorenz_column(0.05)),
    ("all_zero", ZOO, lambda run: all_zero_column()),
    ("mprt", f"{FAST}/attributions/sanity/igd-lam1-integrated_gradients", lambda run: mprt_column(_mprt_step(run), "spearman")),
    ("inductive_noise", ZOO, lambda run: noise_column("inductive_noise", 0.002)),
    ("random_noise", ZOO, lambda run: noise_column("random_noise", 0.2)),
    ("inductive_occlusion", ZOO, lambda run: occlusion_column(0.5, "fooled")),
    ("inductive_occlusion", ZOO, lambda run: occlusion_column(0, "queries")),
    ("inductive_occlusion", f"{FAST}/runs/igd-lam1-seed1", lambda run: occlusion_column(1, "area")),
    ("robust", ZOO, lambda run: robust_column("pgd", 8 / 255)),
    ("robust", ZOO, lambda run: robust_column("fgsm", 8 / 255)),
    ("robust", "reports/benchmarks/fast-recipe/runs/airbench_s-igd-15ep-autoattack",
     lambda run: robust_column("autoattack", 8 / 255)),
    ("corruption", f"{FAST}/runs/igd-lam1-seed1", lambda run: corruption_column("gaussian_noise", 3)),
    ("sanity", ZOO, lambda run: large_eps_column()),
    ("alignment", None, lambda run: alignment_column("spearman")),
]


def test_every_family_has_a_case() -> None:
    assert {family for family, _, _ in FAMILY_CASES} == set(FAMILIES)


@pytest.mark.parametrize(("family", "run_dir", "build"), FAMILY_CASES,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(FAMILY_CASES)])
def test_a_built_column_round_trips_and_names_rows_its_run_has(family: str, run_dir: str | None, build) -> None:  # type: ignore[no-untyped-def]
    """The builder's column is what describe_column reads back from its name, has a dtype and a meaning, and the
    results.csv rows it names are in a run that has the column (for alignment, in the suite's own rows)."""
    if run_dir is None:  # no committed run has a reference model: the suite summarises a made-up table
        per_image = pd.DataFrame({"correct": [True, True, False], "attribution_cosine": [0.5, 0.2, np.nan],
                                  "attribution_spearman": [0.1, np.nan, 0.3]})
        results = pd.DataFrame(InequalitySuite()._alignment_rows(per_image, per_image["correct"].to_numpy()),
                               columns=RESULT_COLUMNS)
        run = None
    else:
        committed(ROOT / run_dir / "results.csv")
        run = load_run(ROOT / run_dir)
        per_image, results = run.per_image, run.results
    column = build(run)
    assert column.family == family
    assert describe_column(column.name) == column
    assert column.name in per_image
    assert column.dtype in ("bool", "float") and column.meaning
    assert column_name(column.test, column.param, column.part, column.attribution) == column.name
    if column.part in ("count", "radius"):
        assert column.row is None  # no row summarises them
        return
    assert column.row is not None
    rows = column.row.select(results)
    assert len(rows), column.row
    assert (rows["test"] == column.row.test).all() and (rows["metric"] == column.row.metric).all()


def test_occlusion_and_corruption_columns_name_the_rows_they_feed() -> None:
    """The two families whose rows keep their setting elsewhere: occlusion rows name the fill in their variant,
    corruption rows are one test per corruption with the severity as param."""
    occlusion = describe_column("ioa[0.5]_fooled")
    assert occlusion is not None and occlusion.row == ResultsRow("inductive_occlusion", "error_rate", "fill=0.5")
    assert occlusion.setting == "fill=0.5" and occlusion_variant(0.5, "count_first").startswith("fill=0.5/")
    corruption = describe_column("corr[gaussian_noise/3]")
    assert corruption is not None and (corruption.test, corruption.param) == ("gaussian_noise", "3")
    assert corruption.row == ResultsRow("gaussian_noise", "error_rate", None, "3")
    results = pd.DataFrame([{"test": "inductive_occlusion", "variant": v, "param": "N=1,R=1", "metric": "error_rate"}
                            for v in ("fill=0.5/count_first", "fill=0.55/count_first", "fill=0.5/count_first/attribution=x")])
    assert list(occlusion.row.select(results).index) == [0, 2]


def test_settings_kept_in_rows_are_formatted_and_read_back_in_one_place() -> None:
    assert occlusion_limits(occlusion_param(10, 3)) == (10, 3)
    assert occlusion_order(occlusion_variant(0, "radius_first", "/attribution=saliency")) == "radius_first"
    assert mprt_step_parts(mprt_step(3, 13, "stages.2.conv2")) == (3, 13, "stages.2.conv2")
    assert top_mass_fraction(top_mass_measure(0.05)) == 0.05 and top_mass_fraction("entropy") is None


BASE_NAMES = "|".join(sorted(BASE))
#: Per-image column names written out by hand (built by f-string, or a suite column's name as a literal indexing
#: or looked up in a per-image table): they belong in robench/schema.py only.
HAND_MADE_NAME = re.compile(r"""f["'](?:ina|rn|pgd|fgsm|autoattack|lorenz|top_mass)@|f["'](?:ioa|corr|mprt)\[|"""
                            r"""f["']\{\w+\}@|f["']\{\w+\}_\{|f["']gini_|f["']fill=|"""
                            rf"""per_image(?:\.loc\[[^,\]]+,\s*|\[)f?["'](?!(?:{BASE_NAMES})["'])|"""
                            rf"""["'](?!(?:{BASE_NAMES})["'])[^"'\s]+["'] (?:not )?in (?:\w+\.)?per_image\b""")


def test_no_reader_or_writer_spells_a_column_name() -> None:
    files = [*(ROOT / "robench" / "suites").glob("*.py"), *(ROOT / "robench" / "reports").glob("*.py"),
             *(ROOT / "robench" / "metrics").glob("*.py"), ROOT / "robench" / "gini_check.py", ROOT / "robench" / "run.py"]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text().splitlines(), 1) if HAND_MADE_NAME.search(line)]
    assert not found, "column names built outside robench/schema.py:\n" + "\n".join(found)


def test_significant_rounds_as_a_value_read_back_from_a_run_file_would() -> None:
    """Rounding goes by way of the six digits a run's files keep: 0.123449996 is 0.12345 there, so 0.1235 (rounding
    the raw value would give 0.1234 and a table re-saved from its file would change); NaN stays; idempotent."""
    assert significant([0.123449996, 0.00074415926, 123.456, 0.0], 4) == [0.1235, 0.0007442, 123.5, 0.0]
    assert np.isnan(significant([float("nan")], 4)[0])
    values = np.random.default_rng(0).uniform(1e-5, 1.0, size=2000)
    once = significant(values, 4)
    assert significant(once, 4) == once and significant([float(f"{v:.6g}") for v in values], 4) == once
    assert np.allclose(once, values, rtol=5.01e-4, atol=0) and not np.allclose(once, values, rtol=1e-6, atol=0)
