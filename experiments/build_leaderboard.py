#!/usr/bin/env python
"""Rebuild the leaderboard from the committed runs: the bundled zoo, the fast reproduction study, the third-party panel.

    .venv/bin/python experiments/build_leaderboard.py            # writes reports/leaderboard.csv

Rows, in this order (each through :func:`robench.reports.leaderboard.add_run`, so every check of
``robench leaderboard add`` applies):

- ``zoo:NAME`` from ``reports/zoo/NAME`` (``experiments/evaluate_zoo.py``), with the AutoAttack run of the
  file each bundled model was packed from (``reports/benchmarks/fast-recipe/runs/*-autoattack``);
- ``repro-fast/NAME`` from ``reports/reproduction/cifar10-fast/runs/NAME``, with ``NAME-autoattack`` where it exists;
- ``third-party/NAME`` for every manifest row evaluated in ``reports/third-party/runs/NAME``: the manifest's
  provenance as its model card (``evaluate_panel.model_card``), its stated training as the row's method
  (:func:`stated_method`), and ``NAME-autoattack`` where that run's images are among the row's.

The new file replaces the old one atomically; run it from anywhere (it works in the repository root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments" / "third_party"))
from evaluate_panel import model_card, run_name  # noqa: E402
from panel import read_manifest  # noqa: E402

from robench.errors import RobenchError  # noqa: E402
from robench.io import write_atomic  # noqa: E402
from robench.reports import leaderboard  # noqa: E402

ZOO_RUNS = Path("reports/zoo")
#: The AutoAttack run of each bundled model's source file (robench/assets/zoo/zoo.json ``source``).
ZOO_AUTOATTACK = {"pgd-at": "reports/benchmarks/fast-recipe/runs/airbench_s-n-fgsm-15ep-select-autoattack",
                  "igd": "reports/benchmarks/fast-recipe/runs/airbench_s-igd-15ep-autoattack"}
STUDY_RUNS = Path("reports/reproduction/cifar10-fast/runs")
#: The study's models whose checkpoints are committed (a robench row names a checkpoint that exists); the ε = 2 and
#: 4/255 models and the second seeds stay in the study's runs and reports (reports/ has a size budget).
STUDY = ("standard", "pgd-at-eps8", "igd-lam1", "trades", "igd-lam2", "trades-igd")
PANEL_RUNS = Path("reports/third-party/runs")


def stated_method(row: dict[str, str]) -> str:
    """A manifest row's training as a leaderboard method: ``trades`` or ``pgd-at`` where its stated training
    names TRADES or PGD/Madry, else its kind (standard, adversarial, mixed, certified, robust-unstated, unstated)."""
    training = row["training"].lower()
    if row["kind"] == "adversarial" and "trades" in training:
        return "trades"
    if row["kind"] == "adversarial" and ("pgd" in training or "madry" in training):
        return "pgd-at"
    return row["kind"]


def with_autoattack(run: Path) -> Path | None:
    """``RUN-autoattack`` beside ``run`` when it exists."""
    attack = run.with_name(f"{run.name}-autoattack")
    return attack if (attack / "meta.json").exists() else None


def build(out: Path) -> list[str]:
    """Write the leaderboard of every committed run to ``out``; returns the messages of each addition."""
    messages: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        board = Path(tmp) / "leaderboard.csv"
        for name in ("standard", "pgd-at", "igd"):
            messages += leaderboard.add_run(ZOO_RUNS / name, name=f"zoo:{name}", path=board,
                                            autoattack=ZOO_AUTOATTACK.get(name))
        for name in STUDY:
            run = STUDY_RUNS / name
            messages += leaderboard.add_run(run, name=f"repro-fast/{name}", path=board, autoattack=with_autoattack(run))
        for row in read_manifest():
            run, card = PANEL_RUNS / run_name(row), {**model_card(row), "method": stated_method(row)}
            attack = with_autoattack(run)
            try:
                messages += leaderboard.add_run(run, name=f"third-party/{run.name}", path=board, card=card,
                                                autoattack=attack)
            except RobenchError as e:
                if attack is None:
                    raise
                # an AutoAttack run that does not fit the row (the MNIST one: other images): the row without it
                messages += [f"warning: {e}; third-party/{run.name} added without it"]
                messages += leaderboard.add_run(run, name=f"third-party/{run.name}", path=board, card=card)
        write_atomic(out, lambda path: shutil.copyfile(board, path))
    return [m.replace(str(board), str(out)) for m in messages]


def main(argv: list[str] | None = None) -> int:
    """Rebuild the leaderboard and print what was added."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / leaderboard.DEFAULT_PATH)
    args = p.parse_args(argv)
    out = args.out.resolve()
    os.chdir(ROOT)  # the runs record their checkpoints relative to the repository root
    for message in build(out):
        print(message)
    print(f"wrote {len(leaderboard.read_leaderboard(out))} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
