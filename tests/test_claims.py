"""The reproduction study's claims (experiments/claims_cifar10.py) on the committed fast-study runs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
from conftest import committed  # tests/ is on sys.path (no package)

from robench.reports.runs import PER_IMAGE_FILE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from claims_cifar10 import _ablation_section, verdicts, write_claims, write_verdicts_beside  # noqa: E402

STUDY = ROOT / "reports" / "reproduction" / "cifar10-fast"
LADDER = ("standard", "pgd-at-eps2", "pgd-at-eps4", "pgd-at-eps8")


def _study(tmp_path: Path, names: tuple[str, ...]) -> Path:
    committed(*(STUDY / "runs" / n / "meta.json" for n in names), *(STUDY / "models" / f"{n}.pt.log.csv" for n in names))
    out = tmp_path / "study"
    (out / "models").mkdir(parents=True)
    for n in names:
        shutil.copytree(STUDY / "runs" / n, out / "runs" / n)
        shutil.copy(STUDY / "models" / f"{n}.pt.log.csv", out / "models" / f"{n}.pt.log.csv")
    return out


def test_gini_ladder_holds_without_a_seed_spread(tmp_path: Path) -> None:
    out = _study(tmp_path, LADDER)
    text = write_claims(out).read_text()
    assert "Verdict: **holds** — pixel Gini" in text and "rises at every step along standard → ε = 2" in text
    assert "One seed per model: no seed spread." in text


def test_a_seed_spread_larger_than_a_step_breaks_the_claim(tmp_path: Path) -> None:
    """A second seed of PGD-AT ε = 8 whose Gini is 0.05 higher (more than the ε-ladder's steps) makes claim 1
    fail, while claim 2's large differences survive the spread."""
    out = _study(tmp_path, LADDER)
    twin = out / "runs" / "pgd-at-eps8-seed1"
    shutil.copytree(out / "runs" / "pgd-at-eps8", twin)
    shutil.copy(out / "models" / "pgd-at-eps8.pt.log.csv", out / "models" / "pgd-at-eps8-seed1.pt.log.csv")
    meta = json.loads((twin / "meta.json").read_text())
    meta["model"]["name"] = "pgd-at-eps8-seed1"  # the name the comparison knows it by
    (twin / "meta.json").write_text(json.dumps(meta))
    table = pd.read_csv(twin / PER_IMAGE_FILE)
    table["gini_pixel"] = table["gini_pixel"] + 0.05
    table.to_csv(twin / PER_IMAGE_FILE, index=False)
    text = write_claims(out).read_text()
    assert "Verdict: **does not hold** — pixel Gini" in text
    assert "but not always by more than the seed spread (0.050)" in text
    assert "Seed spread: the largest |seed 0 − seed 1| difference of pgd-at-eps8" in text
    assert "| inductive / random noise error |" in text


def test_igd_on_trades_is_judged_against_trades(tmp_path: Path) -> None:
    """TRADES + IGD gets its own section against TRADES: a copy of TRADES whose Gini is 0.05 lower lowers the Gini
    (beyond any spread) and keeps every accuracy, and nothing else changes."""
    out = _study(tmp_path, (*LADDER, "trades"))
    assert "## 3b." not in write_claims(out).read_text()  # no TRADES + IGD yet: no section
    twin = out / "runs" / "trades-igd"
    shutil.copytree(out / "runs" / "trades", twin)
    shutil.copy(out / "models" / "trades.pt.log.csv", out / "models" / "trades-igd.pt.log.csv")
    meta = json.loads((twin / "meta.json").read_text())
    meta["model"]["name"] = "trades-igd"
    (twin / "meta.json").write_text(json.dumps(meta))
    table = pd.read_csv(twin / PER_IMAGE_FILE)
    table["gini_pixel"] = table["gini_pixel"] - 0.05
    table.to_csv(twin / PER_IMAGE_FILE, index=False)
    text = write_claims(out).read_text()
    assert "| trades | trades | PGD-2, step 4/255 | cpu* | 44.1 | 10 | 71.1% / 40.5% |" in text  # the models table
    assert "| pgd-at-eps8 | pgd-at | N-FGSM | cpu* |" in text and "| standard | standard | – | cpu* |" in text
    section = text.split("## 3b.")[1]
    assert "| measure | TRADES | trades-igd | paper (IGD abstract) | verdict |" in section
    assert "| pixel Gini | 0.59" in section and "(−8%) | lower | **holds** |" in section
    assert "| clean accuracy (all images) | 71.1% | 71.1% (−0%) | kept | **holds** |" in section
    assert "| inductive noise error @ 2.0% |" in section and "(−0%) | up to −60% | **does not hold** |" in section
    assert "One seed per model: no seed spread." in section and "TRADES is trained once" not in section


def test_igd_on_trades_is_tested_against_the_recipes_seed_spread(tmp_path: Path) -> None:
    """TRADES is trained once, so section 3b borrows the seed spread of the PGD-AT and IGD twins: the same numbers
    as section 3's, and a difference smaller than them does not hold."""
    twins = ("pgd-at-eps8-seed1", "igd-lam1", "igd-lam1-seed1")
    out = _study(tmp_path, (*LADDER, *twins, "trades", "trades-igd"))
    text = write_claims(out).read_text()
    section3, section3b = text.split("## 3. ")[1].split("## 3b.")
    section3b = section3b.split("## The models")[0]

    def cells(section: str, measure: str) -> list[str]:
        line = next(line for line in section.splitlines() if line.startswith(f"| {measure} |"))
        return [c.strip() for c in line.strip("|").split("|")]

    for measure in ("pixel Gini", "random noise error @ 20.0%", "clean accuracy (all images)"):
        assert cells(section3b, measure)[3] == cells(section3, measure)[3] != "– (no second seed measured)"
    base, igd, spread = (float(c.split("%")[0]) for c in cells(section3b, "random noise error @ 20.0%")[1:4])
    assert base - igd < spread and cells(section3b, "random noise error @ 20.0%")[-1] == "**does not hold**"
    assert "TRADES is trained once" in section3b


def test_verdicts_are_read_back_and_set_beside_another_studys(tmp_path: Path) -> None:
    out = _study(tmp_path, (*LADDER, "igd-lam1"))
    found = verdicts(write_claims(out).read_text())
    assert found["1. Gini rises with the training ε"].startswith("**holds** — pixel Gini 0.5")
    assert found["2. inductive noise error"].startswith("**does not hold** (") and " vs " in found["2. inductive noise error"]
    assert found["3. pixel Gini"].startswith("**holds** (0.6") and " → 0.6" in found["3. pixel Gini"]
    other = tmp_path / "other"
    shutil.copytree(out, other)
    (other / "CLAIMS.md").write_text((other / "CLAIMS.md").read_text().replace("| AT > standard | **does not hold** |",
                                                                              "| AT > standard | **holds** |"))
    text = write_verdicts_beside(out, {"this": out, "that": other}).read_text()
    assert "| claim: measure | [this](CLAIMS.md) | [that](../other/CLAIMS.md) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 2. inductive noise error |"))
    assert row.count("**does not hold**") == 1 and row.count("**holds**") == 1


def _ablation(tmp_path: Path, error_igd: float, p_holm: float, autoattack: float, seed_gap: float = 0.0) -> str:
    """Claim 4 on a made-up ablation: one aligned IGD model (cosine 0.3) and one barely aligned (0.07) vs PGD-AT;
    ``seed_gap``: PGD-AT's second seed's ina_replace@1% error above its first's (the seed spread)."""
    out = tmp_path / "igd-ablation"
    out.mkdir(exist_ok=True)
    pd.DataFrame({"model": ["pgd-at-eps8", "pgd-at-eps8-seed1", "igd-lam1", "aligned", "barely"],
                  "cosine": [0.03, 0.03, 0.06, 0.3, 0.07], "pgd10": [0.42, 0.42, 0.40, 0.41, 0.41],
                  "autoattack@200": [0.37, 0.37, 0.36, autoattack, 0.36],
                  "ina_replace@1%": [0.1, 0.1 + seed_gap, 0.1, error_igd, 0.05]}).to_csv(out / "summary.csv", index=False)
    row = {"baseline": "pgd-at-eps8", "error": "ina_replace@1%", "images": 700, "error_baseline": 0.10,
           "fooled_igd_only": 5, "fooled_baseline_only": 40, "p_mcnemar": p_holm / 10}
    pd.DataFrame([{**row, "igd": "aligned", "error_igd": error_igd, "p_holm": p_holm},
                  {**row, "igd": "barely", "error_igd": 0.05, "p_holm": 0.001},  # below the alignment floor: not judged
                  {**row, "igd": "aligned (seeds pooled)", "error_igd": 0.05, "p_holm": float("nan")}]
                 ).to_csv(out / "pairs.csv", index=False)
    return "\n".join(_ablation_section(out))


def test_claim_4_holds_only_for_an_aligned_model_that_lowers_an_error_and_keeps_robustness(tmp_path: Path) -> None:
    assert "Overall: **holds** — aligned lower" in _ablation(tmp_path, 0.05, 0.01, 0.37)
    text = _ablation(tmp_path, 0.05, 0.01, 0.30)  # lower error, but 7 points of AutoAttack accuracy lost
    assert "Overall: **does not hold**" in text and "| aligned | 0.300 |" in text and "barely" not in text
    assert "aligned lowers ina_replace@1% but loses 7.0 points of AutoAttack accuracy." in text
    assert "Overall: **does not hold**" in _ablation(tmp_path, 0.05, 0.2, 0.37)  # not beyond chance after Holm
    raised = _ablation(tmp_path, 0.2, 0.01, 0.37)
    assert "Overall: **does not hold**" in raised and "ina_replace@1% 20.0% vs 10.0% |" in raised  # raised, not lowered
    assert verdicts(raised)["4. aligned"] == "**does not hold** (teacher cosine 0.300)"
    assert "Overall: **does not hold**" in _ablation(tmp_path, 0.05, 0.01, 0.37, seed_gap=0.06)  # within the spread
    assert "Overall: **holds**" in _ablation(tmp_path, 0.05, 0.01, 0.37, seed_gap=0.04)
