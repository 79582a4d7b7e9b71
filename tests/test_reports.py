"""robench compare / report: run loading, the comparison table, plots and the report files."""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from robench.errors import RobenchError
from robench.io import gzip_bytes
from robench.reports.compare import common_correct, comparison_table, model_labels
from robench.reports.plots import fitting_font_size, palette_png, save_figure
from robench.reports.report import build_report
from robench.reports.runs import LEGACY_PER_IMAGE_FILE, PER_IMAGE_FILE, headline, load_run
from robench.schema import LORENZ_DIGITS, STORED_DIGITS, significant

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
    frames = [pd.read_csv(p / PER_IMAGE_FILE) for p in zoo_runs]
    expected = frames[0]["correct"] & frames[1]["correct"] & frames[2]["correct"]
    assert common_correct(runs).tolist() == expected.tolist()
    assert 0 < expected.sum() < min(f["correct"].sum() for f in frames)


def test_comparison_table_matches_independent_computation(zoo_runs: list[Path]) -> None:
    runs = [load_run(p) for p in zoo_runs]
    table = comparison_table(runs).set_index(["scope", "test", "param"])
    frames = [pd.read_csv(p / PER_IMAGE_FILE) for p in zoo_runs]
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
    for paths in report.plots.values():  # each plot once
        assert [p.suffix for p in paths] == [".png"] and paths[0].read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (tmp_path / "cmp" / "plots").iterdir()) == ["gini.png", "noise.png", "occlusion.png"]
    md = report.markdown.read_text()
    correct = [set(frame.loc[frame.correct.astype(bool), "index"]) for frame in
               (pd.read_csv(run / PER_IMAGE_FILE) for run in zoo_runs)]
    common = len(set.intersection(*correct))
    assert 0 < common < min(map(len, correct))
    assert f"{common} are classified correctly by every model" in md
    assert "| pixel Gini " in md and "![noise](plots/noise.png)" in md
    page = report.html.read_text()  # links the plot files, embeds nothing
    assert 'id="common"' in page and "base64" not in page and len(page) < 50_000
    assert [f'src="plots/{name}.png"' in page for name in ("noise", "occlusion", "gini")] == [True] * 3
    csv = pd.read_csv(report.table)
    assert list(csv.columns[:4]) == ["scope", "measure", "test", "param"] and list(csv.columns[4:]) == list(NAMES)
    assert not list((tmp_path / "cmp").glob(".*.tmp"))


def test_saved_figures_are_byte_identical_when_drawn_again(tmp_path: Path) -> None:
    """No creation date and no random SVG ids: a regenerated committed report shows no spurious diff."""
    for out in ("a", "b"):
        fig, ax = plt.subplots()
        ax.scatter([0, 1], [1, 0])
        assert [p.name for p in save_figure(fig, tmp_path / out, "scatter", formats=("png", "svg"))] == [
            "scatter.png", "scatter.svg"]
    for ext in ("png", "svg"):
        assert (tmp_path / "a" / f"scatter.{ext}").read_bytes() == (tmp_path / "b" / f"scatter.{ext}").read_bytes()


def test_a_saved_png_is_a_palette_image_that_looks_like_the_figure(tmp_path: Path) -> None:
    """The stored PNG has at most 256 colours, differs from matplotlib's RGBA rendering by little, and is smaller."""
    from PIL import Image

    fig, ax = plt.subplots()
    image = ax.imshow(np.linspace(0, 1, 400).reshape(20, 20), cmap="viridis")  # a smooth colour ramp: the worst case
    fig.colorbar(image)
    ax.plot([0, 19], [0, 19], color="#D55E00")
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=100, bbox_inches="tight")
    (path,) = save_figure(fig, tmp_path, "ramp")
    with Image.open(path) as stored, Image.open(rendered) as original:
        assert stored.mode == "P" and len(stored.getcolors(1 << 16) or []) <= 256
        diff = np.abs(np.asarray(stored.convert("RGB"), dtype=float) - np.asarray(original.convert("RGB"), dtype=float))
    assert diff.mean() < 2.0 and diff.max() < 32  # 8-bit levels
    assert path.stat().st_size < len(rendered.getvalue())
    assert palette_png(rendered.getvalue()) == path.read_bytes()  # deterministic, and what save_figure stores


@pytest.mark.parametrize("label", ["standard", "abcrown-cifar_marabou_medium", "salman-cifar_cnn_wide_1_NOR" * 2])
def test_a_title_at_its_fitting_font_size_fits_its_panel(label: str) -> None:
    """Measured by matplotlib's renderer: the title is no wider than the width it was sized for (long names shrink)."""
    width_pt = 0.9 * 2.6 * 72
    size = fitting_font_size(label, width_pt)
    fig = plt.figure(dpi=72)  # 1 pixel = 1 point
    text = fig.text(0, 0, label, fontsize=size)
    extent = text.get_window_extent(renderer=fig.canvas.get_renderer())
    plt.close(fig)
    assert extent.width <= width_pt or size == 6.0
    assert size == 12.0 if len(label) < 15 else size < 12.0


def test_report_opens_with_a_summary_and_the_key_plot(zoo_runs: list[Path], tmp_path: Path) -> None:
    report = build_report(zoo_runs, tmp_path / "cmp", examples=False)
    runs = [load_run(p) for p in zoo_runs]
    mask = common_correct(runs)
    gini = {r.meta["model"]["name"]: r.per_image["gini_pixel"][mask].mean() for r in runs}  # independent of the table
    pgd = {r.meta["model"]["name"]: r.per_image["pgd@0.0313725"].mean() for r in runs}
    summary, sentence = report.summary
    assert summary["pixel Gini"].to_dict() == pytest.approx(gini, rel=1e-5)
    assert sentence.startswith(f"Most unequal: **{max(gini, key=gini.get)}**")
    assert f"most robust: **{max(pgd, key=pgd.get)}**" in sentence and f"{int(mask.sum())} common-correct" in sentence
    text = report.markdown.read_text()
    assert text.index("## Summary") < text.index("![noise](plots/noise.png)") < text.index("## Models")
    assert text.count("plots/noise.png") == 1  # under the summary, not again among the plots
    page = report.html.read_text()
    assert page.index('id="summary"') < page.index('id="plot-noise"') < page.index('id="models"')
    assert "<strong>" + max(gini, key=gini.get) + "</strong>" in page and "**" not in page


def test_a_report_records_its_inputs_and_rebuilds_the_same(zoo_runs: list[Path], tmp_path: Path) -> None:
    from robench.reports.report import rebuild_report

    first = build_report(zoo_runs[:2], tmp_path / "cmp", title="two models", examples=False)
    assert json.loads(first.inputs.read_text()) == {"runs": [str(p) for p in zoo_runs[:2]], "title": "two models",
                                                    "examples": False}
    text = first.markdown.read_text()
    first.markdown.write_text("stale")
    again = rebuild_report(tmp_path / "cmp")
    assert again.markdown.read_text() == text and set(again.plots) == set(first.plots)
    with pytest.raises(RobenchError, match="no readable inputs.json"):
        rebuild_report(tmp_path)


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


def test_example_grid_leaves_out_a_model_whose_checkpoint_is_gone(tiny_checkpoint: Path, small_npz: Path,
                                                                    tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    runs = []
    for name in ("kept", "gone"):
        ckpt = tmp_path / f"{name}.pt"
        shutil.copyfile(tiny_checkpoint, ckpt)
        runs.append(tmp_path / name)
        assert cli("evaluate", "--model", str(ckpt), "--data", f"npz:{small_npz}", "--suite", "inequality",
                   "--ina-budgets", "0.01", "--rn-budgets", "0.01", "--occlusion-fill", "0.5",
                   "--out", str(runs[-1])).code == 0
    (tmp_path / "gone.pt").unlink()
    report = build_report(runs, tmp_path / "rep")
    assert "examples" in report.plots
    note = next(n for n in report.notes if "attribution recomputed" in n)
    assert "not shown: tiny (gone) (checkpoint" in note and "kept" not in note.split("not shown:")[1]


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path.write_text(edit(path.read_text()))


def _rewrite_table(run: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit the text of ``run``'s per_image.csv.gz."""
    table = run / PER_IMAGE_FILE
    table.write_bytes(gzip_bytes(edit(gzip.decompress(table.read_bytes()).decode()).encode()))


def _legacy(run: Path) -> None:
    """Turn ``run`` into one written before the table was compressed: a plain per_image.csv."""
    (run / LEGACY_PER_IMAGE_FILE).write_bytes(gzip.decompress((run / PER_IMAGE_FILE).read_bytes()))
    (run / PER_IMAGE_FILE).unlink()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "meta.json").unlink(), "not a robench run directory"),
    (lambda d: ((d / "meta.json").unlink(), (d / ".partial").mkdir()), "unfinished"),
    (lambda d: (d / "meta.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "meta.json").write_text('{"model": {}}'), "lacks dataset"),
    (lambda d: (d / "results.csv").unlink(), "results.csv is missing"),
    (lambda d: _rewrite(d / "results.csv", lambda t: t.replace("suite,test", "suite,tst", 1)), "expected suite,test"),
    (lambda d: _rewrite(d / "results.csv", lambda t: t.replace(",0.891,", ",zero,", 1)), "line 2: column 'value'"),
    (lambda d: _rewrite_table(d, lambda t: "\n".join(t.splitlines()[:-5]) + "\n"), "per_image.csv.gz has 995 rows"),
    (lambda d: (d / PER_IMAGE_FILE).write_bytes(b"\xff\xfe\x00garbage"), "per_image.csv.gz cannot be parsed"),
    (lambda d: (d / PER_IMAGE_FILE).write_bytes(gzip_bytes(b"index,label")[:-9]), "per_image.csv.gz cannot be parsed"),
    (lambda d: (d / PER_IMAGE_FILE).unlink(), "per_image.csv.gz is missing"),
    (lambda d: (_legacy(d), _rewrite(d / LEGACY_PER_IMAGE_FILE, lambda t: "\n".join(t.splitlines()[:-1]) + "\n")),
     "/per_image.csv has 999 rows"),
])
def test_damaged_run_directories_get_one_line_errors(zoo_runs: list[Path], damage, message: str) -> None:  # type: ignore[no-untyped-def]
    damage(zoo_runs[0])
    with pytest.raises(RobenchError, match=message) as info:
        load_run(zoo_runs[0])
    assert "\n" not in str(info.value)


def test_per_image_table_is_a_reproducible_gzip(zoo_runs: list[Path]) -> None:
    """No time stamp and no file name in the header: the same table gives the same bytes (what --stage verify and
    the committed reports rely on); pandas and gzip read it as it is."""
    data = (zoo_runs[0] / PER_IMAGE_FILE).read_bytes()
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\x00\x00\x00\x00"  # gzip, deflate, no flags, mtime 0
    text = gzip.decompress(data)
    assert gzip_bytes(text) == data and text.startswith(b"index,label,prediction,correct,")


def test_runs_written_before_the_compression_still_load(zoo_runs: list[Path]) -> None:
    """A plain per_image.csv (older runs) is read when there is no per_image.csv.gz; saving the run again writes the
    compressed table, byte for byte what the conversion of the plain one gives, and removes the plain one."""
    run = zoo_runs[0]
    compressed = (run / PER_IMAGE_FILE).read_bytes()
    before = load_run(run)
    _legacy(run)
    old = load_run(run)
    pd.testing.assert_frame_equal(old.per_image, before.per_image)
    old.save(run)
    assert not (run / LEGACY_PER_IMAGE_FILE).exists() and (run / PER_IMAGE_FILE).read_bytes() == compressed
    (run / LEGACY_PER_IMAGE_FILE).write_text("garbage\n")  # beside a per_image.csv.gz, a plain table is ignored
    pd.testing.assert_frame_equal(load_run(run).per_image, before.per_image)


def test_compare_refuses_runs_on_different_images(zoo_runs: list[Path], tiny_checkpoint: Path, small_npz: Path,
                                                  tmp_path: Path, cli) -> None:
    other = tmp_path / "other"
    assert cli("evaluate", "--model", str(tiny_checkpoint), "--data", f"npz:{small_npz}", "--out", str(other)).code == 0
    result = cli("compare", str(zoo_runs[0]), str(other), "--out", str(tmp_path / "cmp"))
    assert result.code == 2 and "evaluated on different images" in result.err
    assert not (tmp_path / "cmp").exists()


@pytest.mark.slow
def test_cli_compare_and_report(zoo_runs: list[Path], tmp_path: Path, cli) -> None:
    result = cli("compare", *map(str, zoo_runs), "--out", str(tmp_path / "cmp"), "--no-examples")
    assert result.code == 0 and "report written to" in result.out
    assert (tmp_path / "cmp" / "report.html").exists() and (tmp_path / "cmp" / "plots" / "gini.png").exists()
    assert not list((tmp_path / "cmp").rglob("*.svg"))
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



def test_lorenz_points_keep_fewer_digits_in_memory_and_on_disk(zoo_runs: list[Path], tmp_path: Path) -> None:
    """A run's per-image Lorenz points hold LORENZ_DIGITS significant digits (the suite rounds them as it makes
    them, so the table in memory is the table on disk); the Gini values keep STORED_DIGITS."""
    run = load_run(zoo_runs[0])
    lorenz = [c for c in run.per_image.columns if c.startswith("lorenz@")]
    assert lorenz and LORENZ_DIGITS < STORED_DIGITS
    values = run.per_image[lorenz].to_numpy().ravel()
    assert (np.array(significant(values, LORENZ_DIGITS)) == values).all()
    gini = run.per_image["gini_pixel"].to_numpy()
    assert (np.array(significant(gini, LORENZ_DIGITS)) != gini).mean() > 0.5
    pd.testing.assert_frame_equal(load_run(run.save(tmp_path / "again")).per_image, run.per_image)
