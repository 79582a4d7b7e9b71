#!/usr/bin/env python
"""Do the reproduction study's conclusions survive a change of attribution method and of concentration measure?

    .venv/bin/python experiments/attribution_agreement.py --study reports/reproduction/cifar10-fast

For every trained model of the study (``STUDY/models/NAME.pt``, in the claims' reading order) it runs,
through the Python API:

- ``robench.evaluate(model, "sample", suites="inequality", attribution="saliency,integrated_gradients,smoothgrad")``
  on the 1,000 bundled lossless images (the noise attacks at one budget each and no occlusion: only
  the attribution measures are read here), into ``OUT/runs/NAME``;
- the ``sanity`` suite (model-parameter randomisation) for each of the three methods on the first
  ``--sanity-limit`` images, into ``OUT/sanity/NAME-METHOD``;

then ``robench.compare`` (``OUT/report``, with ``rankings.csv``: each method × measure ranking and its
Kendall τ against the headline ranking, pixel Gini of saliency) and ``OUT/README.md``: the rankings,
the sign of each of the study's pairwise inequality claims under every method × measure, and the
sanity verdicts. Resumable: a finished run is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from claims_cifar10 import ORDER  # beside this script

import robench
from robench.reports.compare import common_correct
from robench.schema import per_image_columns

METHODS = ("saliency", "integrated_gradients", "smoothgrad")
#: (claim, more unequal model, less unequal model): the study's inequality claims as pairwise orders.
PAIRS = [("PGD-AT (ε = 8/255) more unequal than standard", "pgd-at-eps8", "standard"),
         ("IGD (λ = 1) less unequal than PGD-AT", "pgd-at-eps8", "igd-lam1"),
         ("IGD (λ = 2) less unequal than PGD-AT", "pgd-at-eps8", "igd-lam2"),
         ("PGD-AT ε = 8 more unequal than ε = 2", "pgd-at-eps8", "pgd-at-eps2"),
         ("TRADES + IGD less unequal than TRADES", "trades", "trades-igd")]


def evaluate_all(names: list[str], models: Path, out: Path, sanity_limit: int) -> None:
    for name in names:
        ckpt = str(models / f"{name}.pt")
        run = out / "runs" / name
        if not (run / "meta.json").exists():
            print(f"{name}: inequality measures of {', '.join(METHODS)}", flush=True)
            robench.evaluate(ckpt, "sample", suites="inequality", attribution=",".join(METHODS), ina_budgets=(0.01,),
                             rn_budgets=(0.1,), occlusion_fill=(), out=run)
        for method in METHODS:
            sanity = out / "sanity" / f"{name}-{method}"
            if not (sanity / "meta.json").exists():
                print(f"{name}: sanity check of {method}", flush=True)
                robench.evaluate(ckpt, "sample", suites="sanity", attribution=method, limit=sanity_limit, out=sanity)


def claim_signs(rankings: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Per claim and per method × measure: 'holds' when the ranking orders the pair as claimed, else 'reversed'."""
    rows = []
    for claim, unequal, equal in PAIRS:
        if unequal not in names or equal not in names:
            continue
        row = {"claim": claim}
        for _, r in rankings.iterrows():
            row[f"{r['measure']} ({r['attribution']})"] = ("holds" if r[unequal] < r[equal] else
                                                          "tie" if r[unequal] == r[equal] else "reversed")
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", type=Path, default=Path("reports/reproduction/cifar10-fast"))
    p.add_argument("--out", type=Path, default=None, help="default: STUDY/attributions")
    p.add_argument("--sanity-limit", type=int, default=100)
    args = p.parse_args()
    out = args.out or args.study / "attributions"
    models = args.study / "models"
    names = [n for n in ORDER if (models / f"{n}.pt").exists() and not (models / f"{n}.pt.state.pt").exists()]
    evaluate_all(names, models, out, args.sanity_limit)
    runs = [out / "runs" / n for n in names]
    robench.compare(runs, out=out / "report", title="Attribution methods and concentration measures, fast study",
                    examples=False)
    rankings = pd.read_csv(out / "report" / "rankings.csv")
    signs = claim_signs(rankings, names)
    verdicts = []
    for name in names:
        for method in METHODS:
            run = robench.load_run(out / "sanity" / f"{name}-{method}")
            flagged = run.rows("mprt", "flagged")
            spearman = run.rows("mprt", "spearman")
            verdicts.append({"model": name, "attribution": method,
                             "spearman, last step": float(spearman["value"].iloc[-1]) if len(spearman) else float("nan"),
                             "flagged": int(flagged["value"].iloc[0]) if len(flagged) else -1})
    shown = rankings.drop(columns=["test", "param"]).round(3)
    loaded = [robench.load_run(r) for r in runs]
    mask = common_correct(loaded)
    means = pd.DataFrame({name: {f"{column.param} ({column.attribution or METHODS[0]})":
                                 float(run.per_image.loc[mask, column.name].mean())
                                 for column in per_image_columns(run.per_image.columns)
                                 if column.test in ("gini", "concentration") and column.part == "value"}
                          for name, run in zip(names, loaded)}).round(3)
    lines = ["# Do the conclusions survive the choice of attribution and measure?", "",
             f"Produced by `python experiments/attribution_agreement.py --study {args.study}` (robench "
             f"{robench.__version__}): each model of the study on the 1,000 lossless sample images with "
             f"`attribution=\"{','.join(METHODS)}\"` (integrated gradients: 50 Gauss-Legendre steps from a black "
             "image; SmoothGrad: 20 samples, σ = 0.2), ranked on the images every model classifies correctly. "
             "Rank 1 = the most unequal maps; τ = Kendall's τ-b against the headline ranking (pixel Gini of "
             "saliency). Full report: [`report/report.md`](report/report.md).", "",
             f"## Means on the {int(mask.sum())} common-correct images", "", means.to_markdown(), "",
             "## Rankings", "", shown.to_markdown(index=False), "",
             "## The study's pairwise claims under every method and measure", "",
             signs.set_index("claim").T.to_markdown() if len(signs) else "(no claim pair among the trained models yet)", "",
             f"## Sanity check (model-parameter randomisation, first {args.sanity_limit} images)", "",
             "Mean Spearman correlation between the original |attribution| and the one after every layer is "
             "re-initialised; flagged = above 0.5 (the attribution does not depend on the weights).", "",
             pd.DataFrame(verdicts).round(3).to_markdown(index=False), ""]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
