"""The third-party panel driver (experiments/third_party/evaluate_panel.py) on two models with tiny limits
(skipped without the shared data), and the cross-lab report's verdicts on a synthetic table."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from robench.reports import leaderboard as lb
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments" / "third_party"))
from evaluate_panel import evaluations, main, model_card  # noqa: E402
from panel import PANEL, read_manifest  # noqa: E402
from report_panel import autoattack_section, family_verdicts, render  # noqa: E402

ROWS = {Path(r["file"]).stem: r for r in read_manifest()}
PAIR = ("oval-cifar_sgd_8px", "oval-cifar_madry_8px")  # same family and architecture: standard, adversarial


def test_evaluations_per_row() -> None:
    standard, robust, mnist = ROWS["resnet32-d509ac18"], ROWS["oval-cifar_madry_8px"], ROWS["trades-mnist-smallcnn"]
    assert [name for name, _ in evaluations(standard)] == ["resnet32-d509ac18"]
    (name, options), (aa_name, aa) = evaluations(robust)
    assert "--limit" not in options and options[options.index("--eps") + 1] == "2/255,8/255"
    assert aa_name == "oval-cifar_madry_8px-autoattack" and "--autoattack" in aa
    assert aa[aa.index("--limit") + 1] == "200"
    options = evaluations(mnist)[0][1]
    assert options[options.index("--limit") + 1] == "1000" and options[options.index("--eps") + 1] == "0.1,0.3"
    assert evaluations(robust, limit=8)[1][1][1] == "8"
    card = lb.provenance(model_card(ROWS["ehanw-resnet20-pgd"]))
    assert card["origin"] == "third-party" and card["stated_robust_accuracy"] == pytest.approx(0.697)


@pytest.mark.slow
def test_driver_on_two_models_resumes_and_reports(tmp_path: Path) -> None:
    if not all((PANEL / ROWS[n]["file"]).exists() for n in PAIR):
        pytest.skip(f"third-party panel not found at {PANEL} (set ROBENCH_THIRD_PARTY)")
    out, board = tmp_path / "panel", tmp_path / "leaderboard.csv"
    args = ["--panel", str(PANEL), "--out", str(out), "--only", ",".join(PAIR), "--limit", "8",
            "--leaderboard", str(board), "--device", "cpu"]
    assert main(args) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == sorted([*PAIR, "oval-cifar_madry_8px-autoattack"])
    assert all((out / "runs" / r / "meta.json").exists() for r in runs)
    log = json.loads((out / "commands.json").read_text())
    assert len(log) == 3 and log[-1]["command"].endswith("-autoattack")  # main runs first
    assert main(args) == 0  # resumable: nothing left to evaluate
    assert len(json.loads((out / "commands.json").read_text())) == 3

    frame = lb.read_leaderboard(board).set_index("name")
    assert frame.index.tolist() == [f"third-party/{n}" for n in PAIR]
    row = frame.loc["third-party/oval-cifar_madry_8px"]
    assert (row["origin"], row["licence"], row["source"]) == ("third-party", "MIT", "oval-group/oval-bab@a317464 models/")
    assert row["checkpoint_sha256"] == ROWS["oval-cifar_madry_8px"]["sha256"] and row["n_images"] == 8
    assert (out / "compare" / "report.md").exists()
    panel = pd.read_csv(out / "panel.csv").set_index("name")
    assert panel.loc["oval-cifar_madry_8px", "aa_n"] == 8 and panel.loc["oval-cifar_sgd_8px", "aa_n"] == 0
    readme = (out / "README.md").read_text()
    assert "| OVAL CNN-A | standard → adversarial |" in readme and (out / "gini_vs_pgd.png").exists()


def synthetic(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    """A panel table from (family, kind, gini, ina, rn) tuples, CIFAR-10, other columns plausible."""
    out = []
    for i, (family, kind, gini, ina, rn) in enumerate(rows):
        out.append({"name": f"m{i}", "family": family, "kind": kind, "arch_family": "2-conv CNN", "dataset": "cifar10",
                    "n": 1000, "clean": 0.7, "eps_small": 2 / 255, "eps_large": 8 / 255, "pgd_small": 0.1 * i,
                    "pgd_large": 0.05 * i, "aa_small": math.nan, "aa_large": math.nan, "aa_n": 0,
                    "aa_pgd_small": math.nan, "aa_pgd_large": math.nan, "gini_pixel": gini,
                    "gini_half_width": 0.004, "gini_region": gini / 2, "budget": 0.02, "ina": ina, "rn": rn,
                    "ina_rn": math.inf if rn == 0 else ina / rn, "noise_corruption": 0.3, "stated_clean": math.nan,
                    "stated_robust": math.nan, "gini_common": gini + 0.01, "gini_common_half_width": 0.004,
                    "n_common": 300})
    return pd.DataFrame(out)


def test_family_verdicts_and_report_text() -> None:
    table = synthetic([("A", "standard", 0.5, 0.2, 0.1), ("A", "adversarial", 0.6, 0.3, 0.1),
                       ("A", "certified", 0.7, 0.1, 0.2),
                       ("B", "certified", 0.4, 0.3, 0.0), ("B", "standard", 0.6, 0.1, 0.1),
                       ("C", "standard", 0.5, 0.1, 0.1), ("C", "adversarial", 0.7, 0.2, 0.1),
                       ("C", "certified", 0.698, 0.2, 0.1), ("D", "standard", 0.5, 0.1, 0.1),
                       ("E", "adversarial", 0.6, 0.1, 0.1), ("E", "unstated", 0.9, 0.1, 0.1)])
    verdicts = family_verdicts(table).set_index("family")
    assert verdicts.index.tolist() == ["A", "B", "C"]  # D has one kind only, E one ordered kind
    assert verdicts["standard→adversarial"].tolist() == ["rises", "", "rises"]
    assert verdicts["adversarial→certified"].tolist() == ["rises", "", "no clear change"]  # 0.002 < 0.0057
    assert verdicts["standard→certified"].tolist() == ["rises", "falls", "rises"]
    assert verdicts.loc["A", "kinds"] == "standard → adversarial → certified"
    assert verdicts.loc["A", "gini"] == "0.500 → 0.600 → 0.700" and verdicts.loc["A", "gini_common"].startswith("0.510")
    assert verdicts.loc["B", "ina_rn"] == "1.00 → ∞"
    assert verdicts["ina_over_rn"].tolist() == ["1/2", "1/1", "2/2"]
    text = render(table, family_verdicts(table), "gini_vs_pgd.png")
    assert "| m3 | B | certified |" in text and "| ∞ |" in text
    assert "**standard → certified.** Gini (common images) rises in 2 of 3 families (A, C). It does not in B (falls" in text
    assert "C (no clear change: 0.510 → 0.710 → 0.708" in text
    assert "at the same budget in 4 of 6 robust models (and in 1 of 4 standard ones)" in text


def test_autoattack_section_names_the_models_pgd_overestimates() -> None:
    table = synthetic([("A", "standard", 0.5, 0.2, 0.1), ("A", "adversarial", 0.6, 0.3, 0.1),
                       ("A", "certified", 0.7, 0.1, 0.2)])
    assert autoattack_section(table) == []  # no AutoAttack run: no section
    table.loc[1:, "aa_n"] = 200
    table.loc[1:, ["aa_pgd_small", "aa_small", "aa_pgd_large", "aa_large"]] = [[0.50, 0.49, 0.20, 0.12],
                                                                              [0.40, 0.39, 0.20, 0.15]]
    text = "\n".join(autoattack_section(table))
    assert "| m1 | adversarial | 50.0 | 49.0 | 1.0 | 20.0 | 12.0 | 8.0 |" in text and "| m0 |" not in text
    assert "At ε₁, AutoAttack is at most 1.0 points below PGD-10 on every model." in text
    assert "At ε₂, AutoAttack is more than 5 points below PGD-10 on 1 of 2 models (m1)" in text  # m2: exactly 5.0
    table.loc[2, "aa_n"] = 0
    assert "Not attacked with AutoAttack yet: m2." in "\n".join(autoattack_section(table))
