"""Alignment with a reference: the teacher–student gradient cosine in the training log, and the inequality
suite's per-image cosine and Spearman correlation of attribution maps with a reference model's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

import robench
from robench.attribution import attribute
from robench.data import load_dataset
from robench.models.checkpoint import save_checkpoint
from robench.models.loading import load_model
from robench.reports.compare import comparison_table
from robench.reports.runs import load_run
from robench.schema import column_name, describe_column
from robench.suites.inequality import _alignment_columns
from robench.train.adversarial import GradientAlignment, input_gradient
from tests.conftest import one_error_line, tiny_model

FAST = {"ina_budgets": [0.01], "rn_budgets": [0.1], "occlusion_fill": [0.5], "occlusion_count": 2}
FAST_FLAGS = ["--ina-budgets", "0.01", "--rn-budgets", "0.1", "--occlusion-fill", "0.5", "--occlusion-count", "2"]
ALIGNMENT = ["attribution_cosine", "attribution_spearman"]


def train_args(data: Path, out: Path, method: str, *extra: object) -> list[object]:
    return ["train", "--method", method, "--arch", "cnn_tiny", "--data", f"npz:{data}", "--epochs", 2,
            "--batch-size", 24, "--attack-steps", 1, "--eval-limit", 8, "--device", "cpu", "--out", out, *extra]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# ---------------------------------------------------------------------------------------------- training log


def test_igd_logs_the_gradient_cosine_of_its_term(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    teacher = save_checkpoint(tiny_model(seed=3), tmp_path / "teacher.pt")
    out = tmp_path / "igd.pt"
    r = cli(*train_args(small_npz, out, "igd", "--teacher", teacher))
    assert r.code == 0, r.err
    log = pd.read_csv(f"{out}.log.csv")
    assert len(log) == 2 and np.isfinite(log["grad_cosine"]).all() and (log["grad_cosine"].abs() <= 1).all()
    assert log["grad_cosine"].tolist() == log["cos"].tolist()  # the IGD term's own cosine, no extra pass
    kept = load_model(str(tmp_path / "igd-last.pt")).info.training["log"]
    assert [row["grad_cosine"] for row in kept] == pytest.approx(log["grad_cosine"].tolist())


def test_a_teacher_only_measures_and_leaves_the_training_unchanged(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    teacher = save_checkpoint(tiny_model(seed=3), tmp_path / "teacher.pt")
    plain, measured = tmp_path / "plain" / "m.pt", tmp_path / "measured" / "m.pt"
    assert cli(*train_args(small_npz, plain, "standard")).code == 0
    r = cli(*train_args(small_npz, measured, "standard", "--teacher", teacher))
    assert r.code == 0, r.err
    log_plain, log_measured = pd.read_csv(f"{plain}.log.csv"), pd.read_csv(f"{measured}.log.csv")
    assert "grad_cosine" not in log_plain
    assert np.isfinite(log_measured["grad_cosine"]).all() and (log_measured["grad_cosine"].abs() <= 1).all()
    cols = ["loss", "ce", "test_acc"]
    pd.testing.assert_frame_equal(log_plain[cols], log_measured[cols])
    wa, wb = weights(plain), weights(measured)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # BatchNorm statistics too


def test_the_measurement_is_the_cosine_on_an_eighth_of_the_batch() -> None:
    x, y = load_dataset("sample", limit=9).batch(0, 9)
    student, teacher = tiny_model(seed=1).train(), tiny_model(seed=2)
    frozen_bn = next(m for m in student.modules() if isinstance(m, torch.nn.BatchNorm2d)).eval()  # as --freeze-bn
    modes = [m.training for m in student.modules()]
    before = {k: v.clone() for k, v in student.state_dict().items()}
    got = GradientAlignment(teacher).measure(student, x, y)
    assert [m.training for m in student.modules()] == modes and not frozen_bn.training  # each layer's mode restored
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert all(p.grad is None for p in student.parameters())
    student.eval()
    gs, gt = input_gradient(student, x[:2], y[:2]), input_gradient(teacher, x[:2], y[:2])  # ⌈9/8⌉ = 2 images
    assert got == pytest.approx(float(F.cosine_similarity(gs.flatten(1), gt.flatten(1), dim=1).mean()), rel=1e-6)


# ---------------------------------------------------------------------------------------------- inequality suite


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"a": save_checkpoint(tiny_model(seed=0), folder / "a.pt"),
            "b": save_checkpoint(tiny_model(seed=1), folder / "b.pt")}


def test_columns_equal_a_direct_computation(models: dict[str, Path]) -> None:
    run = robench.evaluate(str(models["a"]), "sample", "inequality", limit=6, reference_model=str(models["b"]), **FAST)
    x, y = load_dataset("sample", limit=6).batch(0, 6)
    maps = [attribute("saliency", load_model(str(models[k])), x, y).detach() for k in ("a", "b")]
    cosine = F.cosine_similarity(maps[0].flatten(1), maps[1].flatten(1), dim=1).numpy()
    rank = [spearmanr(maps[0][i].abs().flatten(), maps[1][i].abs().flatten()).statistic for i in range(6)]
    np.testing.assert_allclose(run.per_image["attribution_cosine"], cosine, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(run.per_image["attribution_spearman"], rank, rtol=1e-9)
    correct = run.per_image["correct"].to_numpy(dtype=bool)
    for measure, column in zip(("cosine", "spearman"), ALIGNMENT):
        for subset, mask in (("correct", correct), ("all", np.ones(6, dtype=bool))):
            if mask.any():
                assert run.value("alignment", "mean", measure, subset) == pytest.approx(run.per_image[column][mask].mean())
    assert run.headline()["attribution_cosine"] == pytest.approx(run.value("alignment", "mean", "cosine", "correct"),
                                                                 nan_ok=True)
    reference = run.meta["suites"]["inequality"]["reference"]
    assert reference["sha256"] == load_model(str(models["b"])).info.sha256 and reference["name"] == "tiny"


def test_the_leaderboard_row_carries_the_alignment_and_its_reference(models: dict[str, Path], tmp_path: Path) -> None:
    from robench.reports.leaderboard import add_run, read_leaderboard

    run = robench.evaluate(str(models["a"]), "sample", "inequality", limit=40, reference_model=str(models["a"]),
                           out=tmp_path / "run", **FAST)
    assert run.per_image["correct"].any()  # the row's measures are over the correctly classified images
    add_run(tmp_path / "run", name="aligned", path=tmp_path / "lb.csv")
    row = read_leaderboard(tmp_path / "lb.csv").iloc[0]
    assert row["attribution_cosine"] == pytest.approx(1.0) and row["attribution_spearman"] == pytest.approx(1.0)
    assert row["reference_model"] == "tiny" and row["reference_sha256"] == load_model(str(models["a"])).info.sha256


def test_a_model_against_itself_scores_one_and_the_other_columns_stay(models: dict[str, Path]) -> None:
    alone = robench.evaluate(str(models["a"]), "sample", "inequality", limit=6, attribution="smoothgrad", **FAST)
    itself = robench.evaluate(str(models["a"]), "sample", "inequality", limit=6, attribution="smoothgrad",
                              reference_model=str(models["a"]), **FAST)
    np.testing.assert_allclose(itself.per_image[ALIGNMENT], 1.0, rtol=1e-9)  # the same SmoothGrad draws
    pd.testing.assert_frame_equal(itself.per_image.drop(columns=ALIGNMENT), alone.per_image)  # attacks unchanged
    assert "reference" not in alone.meta["suites"]["inequality"] and math.isnan(alone.headline()["attribution_cosine"])
    assert set(alone.results["test"]) == set(itself.results["test"]) - {"alignment"}


def test_spearman_of_tied_absolute_values_matches_scipy() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, (5, 3, 4, 4), generator=gen).float()  # many ties, zeros among them
    b = torch.randn(5, 3, 4, 4, generator=gen).round()
    b[4] = 0  # an all-zero map: undefined
    got = _alignment_columns(a, b)
    for i in range(4):
        want = spearmanr(a[i].abs().flatten(), b[i].abs().flatten()).statistic
        assert got["attribution_spearman"][i] == pytest.approx(want, rel=1e-12)
        want = F.cosine_similarity(a[i].flatten(), b[i].flatten(), dim=0)
        assert got["attribution_cosine"][i] == pytest.approx(float(want), rel=1e-6, abs=1e-6)
    assert np.isnan(got["attribution_cosine"][4]) and np.isnan(got["attribution_spearman"][4])


def test_columns_are_described_and_round_trip() -> None:
    for name, measure in zip(ALIGNMENT, ("cosine", "spearman")):
        column = describe_column(name)
        assert column is not None and (column.test, column.param, column.part) == ("alignment", measure, "value")
        assert column_name(column.test, column.param, column.part) == name


@pytest.mark.parametrize(("shape", "message"), [({"num_classes": 5}, "outputs 5 classes but the data has 10"),
                                                ({"in_chans": 1}, "takes 1×32×32 images but the data's are 3×32×32")])
def test_a_reference_of_another_shape_is_a_one_line_error(cli, tmp_path: Path, shape: dict[str, int],  # type: ignore[no-untyped-def]
                                                          message: str) -> None:
    model = save_checkpoint(tiny_model(), tmp_path / "m.pt")
    wrong = save_checkpoint(tiny_model(**shape), tmp_path / "wrong.pt")
    r = cli("evaluate", "--model", model, "--limit", 4, "--suite", "inequality", *FAST_FLAGS,
            "--reference-model", wrong, "--out", tmp_path / "run")
    line = one_error_line(r)
    assert "--reference-model" in line and str(wrong) in line and message in line


def test_cli_flag_writes_columns_rows_and_the_comparison(cli, models: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = ["evaluate", "--model", models["a"], "--limit", 8, "--suite", "inequality", *FAST_FLAGS]
    assert cli(*base, "--reference-model", models["b"], "--out", tmp_path / "ref").code == 0
    assert cli(*base, "--out", tmp_path / "plain").code == 0
    run, plain = load_run(tmp_path / "ref"), load_run(tmp_path / "plain")
    assert set(ALIGNMENT) <= set(run.per_image) and not set(ALIGNMENT) & set(plain.per_image)
    assert run.meta["suites"]["inequality"]["reference_model"] == str(models["b"])
    rows = run.results[run.results["test"] == "alignment"]
    assert set(rows["variant"]) == {"cosine", "spearman"} and set(rows["param"]) == {"correct", "all"}
    assert rows.query("metric == 'mean' and param == 'all'")["ci_low"].notna().all()
    headline = run.headline()
    assert -1 <= headline["attribution_spearman"] <= 1 or math.isnan(headline["attribution_spearman"])
    table = comparison_table([run, plain])
    shown = table[table["test"] == "alignment"]
    assert set(shown["scope"]) <= {"own", "common"} and "common" in set(shown["scope"])
    assert shown.iloc[:, -1].isna().all()  # the run without a reference has none
