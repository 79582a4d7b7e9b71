"""The adversarial suite: robust accuracy per ε through foolbox, AutoAttack, and gradient-masking flags."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from robench.data import load_dataset
from robench.models.loading import load_model
from robench.models.wrapper import ModelInfo, RobenchModel
from robench.reports.runs import PER_IMAGE_FILE
from robench.runner import evaluate
from robench.suites import AdversarialConfig, make_suites
from tests.conftest import USER_ARCH, tiny_model


def run(model: RobenchModel, n: int, **config: object):  # type: ignore[no-untyped-def]
    suites = make_suites("adversarial", suite_options={"adversarial": {"config": AdversarialConfig(**config)}})
    return evaluate(model, load_dataset("sample", limit=n), suites, out_dir=None)


def metric(results: pd.DataFrame, test: str, param: str, name: str = "robust_accuracy") -> float:
    return float(results.query("test == @test and param == @param and metric == @name")["value"].item())


class Masked(torch.nn.Module):
    """Classifies a quantised copy of its input: zero gradient almost everywhere (gradient masking)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


@pytest.mark.slow
def test_robust_accuracy_columns_and_sanity_on_a_real_model(foreign_checkpoint: Path) -> None:
    model = load_model(str(foreign_checkpoint), arch="cifar_resnet20:resnet20", arch_path=str(USER_ARCH),
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    ev = run(model, 48, eps=(1 / 255, 8 / 255))
    accs = [metric(ev.results, "pgd", f"{e:.6g}") for e in (1 / 255, 8 / 255)]
    assert accs[0] >= accs[1] and accs[1] <= 0.03  # PGD-10 at 8/255 breaks a standard model (issue check: ~0%)
    assert metric(ev.results, "pgd", f"{1 / 255:.6g}") <= metric(ev.results, "fgsm", f"{1 / 255:.6g}")
    flags = ev.results.query("metric == 'masking_flag'")["value"]
    assert len(flags) == 3 and flags.sum() == 0
    clean = ev.per_image["correct"].to_numpy()
    assert not (ev.per_image[f"pgd@{1 / 255:.6g}"].to_numpy() & ~clean).any()  # wrong when clean → not robust


def test_gradient_masking_is_flagged() -> None:
    torch.manual_seed(0)
    base = tiny_model()
    masked = RobenchModel(Masked(base), ModelInfo("masked", None, 10, (3, 32, 32), (0.0,) * 3, (1.0,) * 3))
    ev = run(masked, 24, eps=(8 / 255,), pgd_steps=5)
    clean_acc = ev.per_image["correct"].mean()
    assert clean_acc > 0  # the check needs some correctly classified images
    assert metric(ev.results, "sanity", "0.5", "masking_flag") == 1.0


def test_same_seed_same_results_and_restarts_never_raise_accuracy() -> None:
    model = tiny_model()
    a = run(model, 16, eps=(2 / 255,), pgd_steps=3).per_image
    b = run(model, 16, eps=(2 / 255,), pgd_steps=3).per_image
    pd.testing.assert_frame_equal(a, b)
    more = run(model, 16, eps=(2 / 255,), pgd_steps=3, pgd_restarts=3).per_image
    assert more[f"pgd@{2 / 255:.6g}"].sum() <= a[f"pgd@{2 / 255:.6g}"].sum()


def test_autoattack_when_installed() -> None:
    pytest.importorskip("pyautoattack", reason="the autoattack extra is not installed")
    ev = run(tiny_model(), 4, eps=(8 / 255,), autoattack=True, masking_checks=False)
    aa = ev.per_image[f"autoattack@{8 / 255:.6g}"].to_numpy()
    assert not (aa & ~ev.per_image["correct"].to_numpy()).any()  # never robust where wrong when clean
    assert metric(ev.results, "autoattack", f"{8 / 255:.6g}") <= ev.per_image["correct"].mean()


def test_cli_options_and_errors(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", tiny_checkpoint, "--suite", "adversarial", "--eps", "2/255,4/255", "--pgd-steps", "2",
            "--limit", "8", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    assert {"pgd@0.00784314", "pgd@0.0156863"} <= set(pd.read_csv(tmp_path / "run" / PER_IMAGE_FILE).columns)
    bad = cli("evaluate", "--model", tiny_checkpoint, "--suite", "adversarial", "--eps", "8/0", "--out", tmp_path / "x")
    assert bad.code == 2 and "--eps" in bad.err and not (tmp_path / "x").exists()
    bad = cli("evaluate", "--model", tiny_checkpoint, "--suite", "adversarial", "--eps", "2", "--out", tmp_path / "y")
    assert bad.code == 2 and "(0, 1]" in bad.err
