"""robench compare / report: run loading, the comparison table, plots and the report files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from robench.errors import RobenchError
from robench.reports.compare import common_correct, comparison_table, model_labels
from robench.reports.plots import save_figure
from robench.reports.report import build_report
from robench.reports.runs import headline, load_run

ZOO_RUNS = Path(__file__).resolve().parents[1] / "reports" / "zoo"
NAMES = ("standard", "pgd-at", "igd")


@pytest.fixture()
def zoo_runs(tmp_path: Path) -> list[Path]:
    """Copies of the committed evaluations of the three bundled models (1,000 sample images each)."""
    out = []
    for name in NAMES:
        shutil.copytree(ZOO_RUNS / name, tmp_path / name)
        out.append(tmp_path / name)
    return out


def test_common_correct_is_the_intersection(zoo_runs: list[Path]) -> None:
    runs = [load_run(p) for p in zoo_runs]
    frames = [pd.read_csv(p / "per_image.csv") for p in zoo_runs]
    expected = frames[0]["correct"] & frames[1]["correct"] & frames[2]["correct"]
    assert common_correct(runs).tolist() == expected.tolist()
    assert 0 < expected.sum() < min(f["correct"].sum() for f in frames)


def test_comparison_table_matches_independent_computation(zoo_runs: list[Path]) -> None:
    runs = [load_run(p) for p in zoo_runs]
    table = comparison_table(runs).set_index(["scope", "test", "param"])
    frames = [pd.read_csv(p / "per_image.csv") for p in zoo_runs]
    common = frames[0]["correct"] & frames[1]["correct"] & frames[2]["correct"]
    for name, frame in zip(NAMES, frames):
        sub = frame[common]
        assert table.loc[("common", "gini", "pixel"), name] == pytest.approx(sub["gini_pixel"].mean())
        assert table.loc[("common", "inductive_noise", "0.02"), name] == pytest.approx(sub["ina@0.02"].mean())
        assert table.loc[("common", "inductive_occlusion", "fill=0.5"), name] == pytest.approx(
            sub["ioa[0.5]_fooled"].mean())
        assert table.loc[("common", "pgd", "0.0313725"), name] == pytest.approx(sub["pgd@0.0313725"].mean())
        assert table.loc[("common", "images", "common"), name] == common.sum()
        results = pd.read_csv(ZOO_RUNS / name / "results.csv", dtype={"param": str})
        own = results[(results.test == "random_noise") & (results.param == "0.1") & (results.metric == "error_rate")]
        assert table.loc[("own", "random_noise", "0.1"), name] == pytest.approx(own["value"].iloc[0])
    # the inequality phenomenon on the bundled models, read from the table
    gini = table.loc[("common", "gini", "pixel")]
    assert gini["pgd-at"] > gini["igd"] > gini["standard"]


def test_headline_reads_results(zoo_runs: list[Path]) -> None:
    row = headline(load_run(zoo_runs[2]))
    assert row["name"] == "igd" and row["method"] == "igd"
    params = json.loads(row["method_params"])
    assert params["lam"] == 1.0 and params["inner_attack"] == "n-fgsm"  # the zoo's fast recipe
    assert row["clean_accuracy"] == pytest.approx(0.722)
    assert row["pgd_accuracy"] == pytest.approx(0.422)
    assert row["ina_budget"] == pytest.approx(0.02) and row["ioa_fill"] == 0.5
    assert np.isnan(row["autoattack_accuracy"]) and np.isnan(row["corruption_error"])


def test_labels_are_unique(zoo_runs: list[Path], tmp_path: Path) -> None:
    twin = tmp_path / "again"
    shutil.copytree(zoo_runs[0], twin)
    assert model_labels([load_run(zoo_runs[0]), load_run(twin)]) == ["standard (standard)", "standard (again)"]


def test_report_writes_tables_and_plots(zoo_runs: list[Path], tmp_path: Path) -> None:
    report = build_report(zoo_runs, tmp_path / "cmp", examples=False)
    assert set(report.plots) == {"noise", "occlusion", "gini"}  # no corruptions suite in these runs
    for paths in report.plots.values():
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert paths[0].read_bytes().startswith(b"\x89PNG") and b"<svg" in paths[1].read_bytes()[:2000]
    md = report.markdown.read_text()
    correct = [set(frame.loc[frame.correct.astype(bool), "index"]) for frame in
               (pd.read_csv(run / "per_image.csv") for run in zoo_runs)]
    common = len(set.intersection(*correct))
    assert 0 < common < min(map(len, correct))
    assert f"{common} are classified correctly by every model" in md
    assert "| pixel Gini " in md and "![noise](plots/noise.png)" in md
    page = report.html.read_text()
    assert page.count("data:image/png;base64,") == 3 and 'id="common"' in page
    csv = pd.read_csv(report.table)
    assert list(csv.columns[:4]) == ["scope", "measure", "test", "param"] and list(csv.columns[4:]) == list(NAMES)
    assert not list((tmp_path / "cmp").glob(".*.tmp"))


def test_saved_figures_are_byte_identical_when_drawn_again(tmp_path: Path) -> None:
    """No creation date and no random SVG ids: a regenerated committed report shows no spurious diff."""
    for out in ("a", "b"):
        fig, ax = plt.subplots()
        ax.scatter([0, 1], [1, 0])
        save_figure(fig, tmp_path / out, "scatter")
    for ext in ("png", "svg"):
        assert (tmp_path / "a" / f"scatter.{ext}").read_bytes() == (tmp_path / "b" / f"scatter.{ext}").read_bytes()


def test_example_grid_recomputes_attributions(zoo_runs: list[Path], tmp_path: Path) -> None:
    report = build_report(zoo_runs[:2], tmp_path / "cmp", examples=True)
    assert "examples" in report.plots, report.notes
    assert "attribution recomputed" in report.notes[0]


def test_example_grid_skips_a_changed_checkpoint(tiny_checkpoint: Path, small_npz: Path, tmp_path: Path, cli) -> None:
    run = tmp_path / "run"
    assert cli("evaluate", "--model", str(tiny_checkpoint), "--data", f"npz:{small_npz}", "--suite", "inequality",
               "--ina-budgets", "0.01", "--rn-budgets", "0.01", "--occlusion-fill", "0.5", "--out", str(run)).code == 0
    tiny_checkpoint.write_bytes(tiny_checkpoint.read_bytes() + b"x")
    report = build_report([run], tmp_path / "rep")
    assert "examples" not in report.plots and "examples skipped" in report.notes[0]
    assert {"noise", "gini"} <= set(report.plots)


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path.write_text(edit(path.read_text()))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "meta.json").unlink(), "not a robench run directory"),
    (lambda d: ((d / "meta.json").unlink(), (d / ".partial").mkdir()), "unfinished"),
    (lambda d: (d / "meta.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "meta.json").write_text('{"model": {}}'), "lacks dataset"),
    (lambda d: (d / "results.csv").unlink(), "results.csv is missing"),
    (lambda d: _rewrite(d / "results.csv", lambda t: t.replace("suite,test", "suite,tst", 1)), "expected suite,test"),
    (lambda d: _rewrite(d / "results.csv", lambda t: t.replace(",0.891,", ",zero,", 1)), "line 2: column 'value'"),
    (lambda d: _rewrite(d / "per_image.csv", lambda t: "\n".join(t.splitlines()[:-5]) + "\n"), "has 995 rows"),
    (lambda d: (d / "per_image.csv").write_bytes(b"\xff\xfe\x00garbage"), "cannot be parsed"),
])
def test_damaged_run_directories_get_one_line_errors(zoo_runs: list[Path], damage, message: str) -> None:  # type: ignore[no-untyped-def]
    damage(zoo_runs[0])
    with pytest.raises(RobenchError, match=message) as info:
        load_run(zoo_runs[0])
    assert "\n" not in str(info.value)


def test_compare_refuses_runs_on_different_images(zoo_runs: list[Path], tiny_checkpoint: Path, small_npz: Path,
                                                  tmp_path: Path, cli) -> None:
    other = tmp_path / "other"
    assert cli("evaluate", "--model", str(tiny_checkpoint), "--data", f"npz:{small_npz}", "--out", str(other)).code == 0
    result = cli("compare", str(zoo_runs[0]), str(other), "--out", str(tmp_path / "cmp"))
    assert result.code == 2 and "evaluated on different images" in result.err
    assert not (tmp_path / "cmp").exists()


def test_cli_compare_and_report(zoo_runs: list[Path], tmp_path: Path, cli) -> None:
    result = cli("compare", *map(str, zoo_runs), "--out", str(tmp_path / "cmp"), "--no-examples")
    assert result.code == 0 and "report written to" in result.out
    assert (tmp_path / "cmp" / "report.html").exists() and (tmp_path / "cmp" / "plots" / "gini.svg").exists()
    result = cli("report", str(zoo_runs[1]), "--no-examples")
    assert result.code == 0
    assert "robench report: pgd-at" in (zoo_runs[1] / "report" / "report.md").read_text()
    assert cli("report", str(tmp_path / "missing")).err.strip() == f"robench: error: run directory {tmp_path / 'missing'} does not exist"


def test_reload_reads_options_as_the_cli_wrote_them(tiny_checkpoint: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from robench.reports.examples import reload_images, reload_model

    out = tmp_path / "run"  # sizes written as 3x32x32 and numbers as given: the report parses them like the CLI
    r = cli("evaluate", "--model", tiny_checkpoint, "--input-size", "3x32x32", "--mean", "0.5,0.5,0.5", "--std",
            "0.25,0.25,0.25", "--data", "sample", "--limit", 8, "--suite", "clean", "--out", out)
    assert r.code == 0, r.err
    run = load_run(out)
    model = reload_model(run)
    assert model.info.input_size == (3, 32, 32) and model.info.mean == (0.5, 0.5, 0.5)
    x, y = reload_images(run, np.arange(3))
    assert x.shape == (3, 3, 32, 32) and y.tolist() == run.per_image["label"].tolist()[:3]
