"""Several attribution methods in one inequality run, and the ranking agreement table of robench compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

import robench
from robench.errors import RobenchError
from robench.reports.compare import ranking_notes, ranking_table
from robench.reports.report import build_report
from robench.reports.runs import PER_IMAGE_FILE, Run
from robench.schema import describe_column, per_image_columns
from tests.conftest import tiny_model

FAST = {"limit": 12, "ina_budgets": (0.01,), "rn_budgets": (0.1,), "occlusion_fill": (0.5,), "occlusion_count": 2}
THREE = "saliency,integrated_gradients,smoothgrad"
FURTHER = ("integrated_gradients", "smoothgrad")
MEASURES = ("gini_pixel", "gini_region_sum", "gini_region_avgpool", "attribution_all_zero", "entropy", "participation",
            "top_mass@0.01", "top_mass@0.05")


def _csv_columns(run: Run, path: Path) -> pd.DataFrame:
    """per_image.csv.gz as written, every column as text: equal frames are byte-identical columns."""
    run.save(path)
    return pd.read_csv(path / PER_IMAGE_FILE, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def single_and_multi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run, pd.DataFrame, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("multi")
    single = robench.evaluate(tiny_model(), "sample", "inequality", **FAST)
    multi = robench.evaluate(tiny_model(), "sample", "inequality", attribution=THREE,
                             ig_steps=4, smoothgrad_samples=3, internal_batch_size=64, **FAST)
    return single, multi, _csv_columns(single, tmp / "single"), _csv_columns(multi, tmp / "multi")


def test_every_method_gets_its_columns_and_the_first_keeps_the_plain_ones(single_and_multi) -> None:  # type: ignore[no-untyped-def]
    single, multi, single_csv, multi_csv = single_and_multi
    for measure in MEASURES:
        for method in FURTHER:
            column = describe_column(f"{measure}[{method}]")
            assert column is not None and column.attribution == method and f"{measure}[{method}]" in multi_csv
        assert describe_column(measure).attribution is None
    assert not [c for c in multi_csv if c.startswith("lorenz@") and c.endswith("]")]  # Lorenz points: first method only
    assert set(multi_csv.columns) - set(single_csv.columns) == {f"{m}[{f}]" for m in MEASURES for f in FURTHER}
    for column in single_csv.columns:  # the first method's measures and every attack column, byte for byte
        assert single_csv[column].equals(multi_csv[column]), column
    assert not np.allclose(multi.per_image["gini_pixel"], multi.per_image["gini_pixel[integrated_gradients]"])


def test_rows_per_method_and_readers_keep_the_first(single_and_multi) -> None:  # type: ignore[no-untyped-def]
    single, multi, _, _ = single_and_multi
    variants = set(multi.results.loc[multi.results["test"] == "gini", "variant"])
    assert variants == {f"{m}{v}" for m in ("", "integrated_gradients/", "smoothgrad/")
                        for v in ("pixel:abs", "region_sum:b4", "region_avgpool:b16")}
    ig = multi.results.query("test == 'gini' and variant == 'integrated_gradients/pixel:abs' and param == 'correct' "
                             "and metric == 'mean'")["value"].item()
    correct = multi.per_image["correct"].astype(bool)
    assert ig == pytest.approx(multi.per_image.loc[correct, "gini_pixel[integrated_gradients]"].mean())
    entropy = multi.results.query("test == 'concentration' and variant == 'smoothgrad/entropy:abs' and param == 'all'")
    assert entropy["value"].item() == pytest.approx(multi.per_image["entropy[smoothgrad]"].mean())
    first_rows = multi.results[~multi.results["variant"].str.contains("/")]
    shared = single.results[single.results["test"].isin(["gini", "concentration", "lorenz"])]
    pd.testing.assert_frame_equal(first_rows[first_rows["test"].isin(["gini", "concentration", "lorenz"])]
                                  .reset_index(drop=True), shared.reset_index(drop=True))
    attacks = multi.results[multi.results["test"].isin(["inductive_noise", "random_noise", "inductive_occlusion"])]
    assert attacks["variant"].str.endswith("/attribution=saliency").all()
    alone = single.results[single.results["test"].isin(["inductive_noise", "random_noise", "inductive_occlusion"])]
    np.testing.assert_array_equal(attacks["value"], alone["value"])
    assert multi.meta["suites"]["inequality"]["attack_attribution"] == "saliency"
    assert "attack_attribution" not in single.meta["suites"]["inequality"]  # one method: settings as before
    assert multi.attributions == ("saliency", "integrated_gradients", "smoothgrad")
    for key in ("gini_pixel", "gini_region", "entropy", "participation", "top_mass_1pct", "gini_pixel_nonzero"):
        assert multi.headline()[key] == single.headline()[key], key


def test_same_seed_same_table_with_smoothgrad_listed(single_and_multi, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, _, multi_csv = single_and_multi
    again = robench.evaluate(tiny_model(), "sample", "inequality", attribution=list(THREE.split(",")),  # the
                             attribution_options={"steps": 4, "samples": 3, "internal_batch_size": 64},  # older form
                             **FAST)
    pd.testing.assert_frame_equal(_csv_columns(again, tmp_path / "again"), multi_csv)


def test_attacks_draw_the_same_random_numbers_as_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A further stochastic method has its own generator: the attacks' noise does not move (their flags on a
    tiny model are too coarse to show it)."""
    import robench.suites.inequality as inequality

    states: list[torch.Tensor] = []
    original = inequality.noise_attack

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        states.append(kwargs["generator"].get_state().clone())
        return original(*args, **kwargs)

    monkeypatch.setattr(inequality, "noise_attack", recording)
    for attribution in ("saliency", "saliency,smoothgrad"):
        robench.evaluate(tiny_model(), "sample", "inequality", attribution=attribution, batch_size=4,
                         **{**FAST, "limit": 8})
    half = len(states) // 2  # (INA, RN) per batch with a correctly classified image, per run
    assert half >= 2 and len(states) == 2 * half
    for alone, together in zip(states[:half], states[half:]):
        assert torch.equal(alone, together)


def test_cli_takes_a_comma_list(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "4", "--suite", "inequality", "--ina-budgets", "0.01",
            "--rn-budgets", "0.1", "--occlusion-fill", "0.5", "--occlusion-count", "1",
            "--attribution", "input_x_gradient,smoothgrad", "--smoothgrad-samples", "2", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    per_image = pd.read_csv(tmp_path / "run" / PER_IMAGE_FILE)
    assert "gini_pixel" in per_image and "gini_pixel[smoothgrad]" in per_image
    assert '"attribution": "input_x_gradient,smoothgrad"' in (tmp_path / "run" / "meta.json").read_text()


@pytest.mark.parametrize("attribution, options, message", [
    ("saliency,gradcam", {}, "unknown attribution 'gradcam'; choose one of: "),
    ("saliency,input_x_gradient", {"ig_steps": 8}, "ig_steps does not apply to attribution 'saliency' or "
                                                   "'input_x_gradient'"),
    (["saliency", "integrated_gradients"], {"smoothgrad_samples": 3, "ig_steps": 2},
     "smoothgrad_samples does not apply"),
    ("saliency,saliency", {}, "attribution lists a method twice"),
    ("saliency,", {}, "attribution takes method names"),
])
def test_bad_methods_and_options_are_one_line_errors(attribution, options, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RobenchError) as err:
        robench.evaluate(tiny_model(), "sample", "inequality", attribution=attribution, **options, limit=2)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_names_an_option_no_listed_method_takes(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--suite", "inequality", "--attribution", "saliency,smoothgrad",
            "--ig-steps", "8", "--out", tmp_path / "x")
    assert r.code == 2 and "--ig-steps does not apply to attribution 'saliency' or 'smoothgrad'" in r.err
    assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------- rankings

#: Per model (A, B, C, D): each measure's value on every common-correct image, chosen so that the rankings
#: (1 = most unequal) are known by hand. Entropy and participation: lower = more unequal.
VALUES = {
    "gini_pixel": [0.5, 0.6, 0.7, 0.8],                   # ranks 4 3 2 1 (the headline)
    "entropy": [0.85, 0.90, 0.70, 0.60],                  # ranks 3 4 2 1: A and B swap
    "participation": [0.40, 0.30, 0.20, 0.10],            # ranks 4 3 2 1: agrees
    "top_mass@0.01": [0.30, 0.20, 0.10, 0.05],            # ranks 1 2 3 4: reversed
    "gini_pixel[integrated_gradients]": [0.6, 0.6, 0.9, 0.7],  # ranks 3 3 1 2: A and B tie, C and D swap
}
HAND_RANKS = {"gini_pixel": [4, 3, 2, 1], "entropy": [3, 4, 2, 1], "participation": [4, 3, 2, 1],
              "top_mass@0.01": [1, 2, 3, 4], "gini_pixel[integrated_gradients]": [3, 3, 1, 2]}


def constructed_run(i: int, n_images: int = 6) -> Run:
    """Model ``"ABCD"[i]``: VALUES on every image, except image 0, which B alone gets wrong, with values
    that would reorder the rankings if it counted."""
    correct = np.ones(n_images, dtype=bool)
    correct[0] = i != 1
    frame = {"index": np.arange(n_images), "label": np.zeros(n_images, int), "prediction": np.where(correct, 0, 1),
             "correct": correct}
    for column, values in VALUES.items():
        frame[column] = np.full(n_images, values[i])
        frame[column][0] = 100.0 * (4 - i)  # image 0: not common-correct
    meta = {"model": {"name": "ABCD"[i], "arch": "made-up"}, "n_images": n_images, "seed": 0,
            "dataset": {"name": "made-up", "split": "test", "fingerprint": "f00d"}, "options": {},
            "suites": {"inequality": {"attribution": "saliency,integrated_gradients"}},
            "environment": {"robench": "test"}, "finished": "2025-01-01T00:00:00"}
    results = pd.DataFrame([{"suite": "clean", "test": "accuracy", "variant": "all", "param": "", "metric": "accuracy",
                             "value": correct.mean(), "n": n_images, "ci_low": np.nan, "ci_high": np.nan}])
    return Run(None, meta, results, pd.DataFrame(frame))


def test_rankings_and_tau_match_hand_made_rankings() -> None:
    runs = [constructed_run(i) for i in range(4)]
    table = ranking_table(runs)
    keys = list(zip(table["attribution"], table["param"]))
    assert keys[0] == ("saliency", "pixel")  # the headline first
    column_of = {c: describe_column(c) for c in VALUES}
    for column, ranks in HAND_RANKS.items():
        desc = column_of[column]
        row = table[(table["attribution"] == (desc.attribution or "saliency")) & (table["param"] == desc.param)]
        assert list(row[list("ABCD")].iloc[0]) == ranks, column
        expected = kendalltau(ranks, HAND_RANKS["gini_pixel"]).statistic
        assert row["kendall_tau"].item() == pytest.approx(expected), column
    assert table.set_index("param").loc["entropy", "kendall_tau"] == pytest.approx(4 / 6)
    assert table.set_index("param").loc["top_mass@0.01", "kendall_tau"] == pytest.approx(-1)
    assert list(table.set_index("param").loc[["entropy", "participation"], "more_unequal"]) == ["lower", "lower"]
    notes = ranking_notes(table, list("ABCD"))
    assert ("rankings by normalised entropy (saliency) and pixel Gini (saliency) disagree: τ = 0.67; "
            "models A and B swap") in notes
    ig = next(n for n in notes if "(integrated_gradients)" in n)
    assert "models A and B tie in one ranking only" in ig and "models C and D swap" in ig
    assert not [n for n in notes if "participation" in n]  # agrees: not listed
    reversed_note = next(n for n in notes if "top 1%" in n)
    assert "τ = -1.00" in reversed_note and "and 3 more pair(s)" in reversed_note  # all 6 pairs swap, 3 named


def test_fewer_than_three_models_show_rankings_without_tau(tmp_path: Path) -> None:
    runs = [constructed_run(i) for i in (0, 2)]
    table = ranking_table(runs)
    assert list(table.set_index("param").loc["entropy", ["A", "C"]]) == [2, 1]
    assert table["kendall_tau"].isna().all()
    assert ranking_notes(table, ["A", "C"]) == ["with fewer than 3 models Kendall's τ is uninformative: the rankings "
                                                "are shown without it"]


def test_report_says_where_rankings_disagree(tmp_path: Path) -> None:
    dirs = [constructed_run(i).save(tmp_path / "ABCD"[i]) for i in range(4)]
    report = build_report(dirs, tmp_path / "report", examples=False)
    text = report.markdown.read_text()
    assert "## Rankings by attribution measure" in text and "| pixel Gini (saliency) " in text
    assert "rankings by normalised entropy (saliency) and pixel Gini (saliency) disagree: τ = 0.67" in text
    assert "models A and B swap" in report.html.read_text()
    assert pd.read_csv(report.rankings)["kendall_tau"].iloc[0] == 1
    assert robench.rankings(dirs).equals(ranking_table([robench.load_run(d) for d in dirs]))
    common = robench.compare(dirs)
    assert "pixel Gini [integrated_gradients]" in set(common["measure"])  # the common table keeps methods apart
    assert per_image_columns(robench.load_run(dirs[0]).per_image.columns, "gini")[0].name == "gini_pixel"
