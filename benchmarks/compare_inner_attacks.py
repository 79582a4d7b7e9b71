#!/usr/bin/env python
"""The inner-attack comparison of the fast recipe: clean, PGD-10 and AutoAttack accuracy, and training minutes.

    .venv/bin/python benchmarks/compare_inner_attacks.py \\
        --model "N-FGSM=runs/nfgsm,models/nfgsm.pt.log.csv" --model "PGD-2=runs/pgd2,models/pgd2.pt.log.csv" \\
        --out reports/benchmarks/fast-recipe/inner-attacks.md

Each ``--model LABEL=RUN_DIR,LOG`` pairs an evaluation (``robench evaluate --suite adversarial
--eps 8/255 --autoattack``, e.g. on 500 sample images) with the model's training log; a LOG alone
(``LABEL=,LOG``) is a run that was not evaluated (e.g. stopped after catastrophic overfitting).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from robench.io import write_text_atomic
from robench.reports.runs import load_run
from robench.train.trainer import select_epoch


def row(label: str, run_dir: str, log: str) -> dict[str, object]:
    """One model: training minutes, kept epoch and its PGD test accuracy in the log, and the evaluation's figures."""
    df = pd.read_csv(log)
    run = load_run(run_dir) if run_dir else None
    # the epoch the evaluated checkpoint records as kept; without one, the trainer's default rule on the log
    recorded = run.meta["model"].get("training", {}).get("selected_epoch") if run is not None else None
    kept_epoch = int(recorded) if recorded else select_epoch(df.to_dict("records"), by_pgd=True)
    kept = df.loc[df["epoch"] == kept_epoch].iloc[0]
    out: dict[str, object] = {"model": label, "epochs run": int(df["epoch"].max()),
                              "training minutes": round(df["seconds"].sum() / 60, 1), "kept epoch": kept_epoch,
                              "log: PGD-10 (JPEG test)": float(kept["test_pgd_acc"]),
                              "log: last-epoch PGD-10": float(df["test_pgd_acc"].iloc[-1])}
    if run is not None:
        eps = max(run.rows("pgd", "robust_accuracy")["param"], key=float)
        out.update({"images": int(run.meta["n_images"]), "clean": run.value("accuracy", "accuracy", "all"),
                    "PGD-10": run.value("pgd", "robust_accuracy", param=eps),
                    "AutoAttack": run.value("autoattack", "robust_accuracy", param=eps)})
        aa, pgd = out["AutoAttack"], out["PGD-10"]
        out["PGD-10 − AutoAttack (points)"] = round(100 * (pgd - aa), 1) if not math.isnan(aa) else math.nan  # type: ignore[operator]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="LABEL=RUN_DIR,LOG (repeat)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--note", default="")
    args = p.parse_args()
    specs = [(label, *rest.split(",", 1)) for label, rest in (m.split("=", 1) for m in args.model)]
    table = pd.DataFrame([row(label, run_dir, log) for label, run_dir, log in specs])
    command = "python benchmarks/compare_inner_attacks.py " + " ".join(f'--model "{m}"' for m in args.model)
    text = "\n".join(["# Inner attacks of the fast recipe", "", "Produced by:", "", "```", f"{command} --out {args.out}",
                      "```", "", args.note, "", table.to_markdown(index=False, floatfmt=".3f"), ""])
    write_text_atomic(args.out, text)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
