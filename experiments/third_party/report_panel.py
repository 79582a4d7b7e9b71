"""The cross-lab report of the third-party panel, computed from the finished runs (never typed by hand).

    PYTHONPATH=. python experiments/third_party/report_panel.py [--runs reports/third-party/runs] [--out reports/third-party]

Reads every manifest row's run (``RUNS/NAME``, and ``RUNS/NAME-autoattack`` when present) and writes
``OUT/README.md`` (per-model table; Gini against PGD accuracy; within each family whether Gini rises
from standard to adversarial to certified training and whether inductive noise fools the robust
models more than random noise at the same budget; INA/RN per model; where families disagree) and the
scatter plot ``OUT/gini_vs_pgd.png`` / ``.svg``, and the table behind them as ``OUT/panel.csv``.
``evaluate_panel.py`` calls it last.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panel import read_manifest  # noqa: E402

from robench.io import write_text_atomic  # noqa: E402
from robench.reports.plots import MARKERS, OKABE_ITO, save_figure  # noqa: E402
from robench.reports.runs import Run, headline, load_run  # noqa: E402

#: Training kinds, from least to most robust by construction (mixed: adversarial and certified terms).
KIND_ORDER = ["standard", "adversarial", "mixed", "certified", "robust-unstated", "unstated"]
#: What is uncertain about a family's sources, quoted in the report where its verdict stands out.
CAVEATS = {
    "EhanW ResNet-20": "its PGD training attacked the normalised tensor, so its pixel ε is about 1.8/255, not 8/255",
    "OVAL CNN-A": "the certified model's ε is not stated; the stored `err` of the certified models is not a clean "
                  "error, so its meaning is a guess",
    "OVAL base/deep": "two certified networks of different architectures and no standard twin; ε not stated",
    "Salman small": "mean/std are not documented; probing settles them for NOR and LPD but not for ADV (29-43 % "
                    "accuracy under every standardisation, no consistent winner), so the ADV rows assume the NOR/LPD "
                    "setting",
    "Salman wide_1": "as Salman small: ADV preprocessing uncertain",
    "Salman wide_2": "as Salman small: ADV preprocessing uncertain",
    "abcrown SDP CNN-A": "adversarial vs mixed training at 4/255; no standard twin",
    "abcrown ResNet (VNN-COMP)": "no BatchNorm, recipe not stated",
}


def _at(run: Run, test: str, metric: str, param: float) -> float:
    """``test``/``metric`` of ``run`` at the numeric ``param`` (budget or ε), NaN when absent."""
    rows = run.rows(test, metric)
    hit = rows[np.isclose(rows["param"].astype(float), param, rtol=1e-6, atol=0)]
    return float(hit["value"].iloc[0]) if len(hit) else math.nan


def _params(run: Run, test: str, metric: str) -> list[float]:
    return sorted({float(p) for p in run.rows(test, metric)["param"]})


def panel_table(runs: Path, rows: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """One row per finished manifest row: provenance, accuracies, Gini, INA/RN at their shared budget.

    Columns: name, family, kind, arch_family, dataset, n, clean, eps_small, eps_large (pixel units),
    pgd_small, pgd_large, aa_small, aa_large, aa_n, gini_pixel, gini_region, budget (the largest
    budget both noise tests share, fraction of entries), ina, rn, ina_rn (INA error / RN error; inf when
    RN fooled none), noise_corruption, stated_clean, stated_robust. Accuracies and error rates are fractions.
    """
    out = []
    for row in rows if rows is not None else read_manifest():
        name = Path(row["file"]).stem
        if not (runs / name / "meta.json").exists():
            continue
        run = load_run(runs / name)
        head = headline(run)
        eps = _params(run, "pgd", "robust_accuracy")
        shared = set(_params(run, "inductive_noise", "error_rate")) & set(_params(run, "random_noise", "error_rate"))
        budget = max(shared) if shared else math.nan
        ina, rn = _at(run, "inductive_noise", "error_rate", budget), _at(run, "random_noise", "error_rate", budget)
        aa = load_run(runs / f"{name}-autoattack") if (runs / f"{name}-autoattack" / "meta.json").exists() else None
        out.append({
            "name": name, "family": row["family"], "kind": row["kind"], "arch_family": row["arch_family"],
            "dataset": row["dataset"], "n": head["n_images"], "clean": head["clean_accuracy"],
            "eps_small": eps[0], "eps_large": eps[-1],
            "pgd_small": _at(run, "pgd", "robust_accuracy", eps[0]),
            "pgd_large": _at(run, "pgd", "robust_accuracy", eps[-1]),
            "aa_small": _at(aa, "autoattack", "robust_accuracy", eps[0]) if aa else math.nan,
            "aa_large": _at(aa, "autoattack", "robust_accuracy", eps[-1]) if aa else math.nan,
            "aa_n": int(aa.meta["n_images"]) if aa else 0,
            "gini_pixel": head["gini_pixel"], "gini_region": head["gini_region"], "budget": budget, "ina": ina, "rn": rn,
            "ina_rn": (math.inf if ina > 0 else math.nan) if rn == 0 else ina / rn,
            "noise_corruption": head["noise_corruption_error"],
            "stated_clean": float(row["stated_accuracy"]) if row["stated_accuracy"] else math.nan,
            "stated_robust": float(row["stated_robust_accuracy"]) if row["stated_robust_accuracy"] else math.nan,
        })
    return pd.DataFrame(out)


def scatter(table: pd.DataFrame, out: Path) -> list[Path]:
    """Pixel Gini against PGD accuracy at each radius (CIFAR-10 rows): colour = training kind, marker = architecture."""
    cifar = table[table["dataset"] == "cifar10"]
    kinds = [k for k in KIND_ORDER if k in set(cifar["kind"])]
    archs = list(dict.fromkeys(cifar["arch_family"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, column, eps in ((axes[0], "pgd_small", "eps_small"), (axes[1], "pgd_large", "eps_large")):
        for _, r in cifar.iterrows():
            ax.scatter(r[column], r["gini_pixel"], color=OKABE_ITO[KIND_ORDER.index(r["kind"])],
                       marker=MARKERS[archs.index(r["arch_family"]) % len(MARKERS)], s=45, edgecolor="black",
                       linewidth=0.4)
        radius = cifar[eps].iloc[0] * 255 if len(cifar) else math.nan
        ax.set_xlabel(f"PGD-10 accuracy at ε = {radius:.0f}/255 (1,000 images)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean pixel Gini of |saliency| (correctly classified)")
    handles = [plt.Line2D([], [], color=OKABE_ITO[KIND_ORDER.index(k)], marker="o", linestyle="", label=k)
               for k in kinds]
    handles += [plt.Line2D([], [], color="grey", marker=MARKERS[i % len(MARKERS)], linestyle="", label=a)
                for i, a in enumerate(archs)]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.suptitle("Third-party CIFAR-10 panel: attribution inequality against robustness")
    fig.tight_layout()
    return save_figure(fig, out, "gini_vs_pgd")


def family_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Per family with at least two training kinds: mean Gini per kind (in :data:`KIND_ORDER`) and verdicts.

    ``gini_trend``: ``rises``/``falls`` when the kind means are strictly monotone along the order,
    else ``not monotone``. ``ina_over_rn``: how many of the family's robust models (kind not standard)
    INA fools more than RN at the shared budget, out of how many.
    """
    out = []
    for family, rows in table.groupby("family", sort=False):
        kinds = [k for k in KIND_ORDER if k in set(rows["kind"])]
        if len(kinds) < 2:
            continue
        means = [float(rows.loc[rows["kind"] == k, "gini_pixel"].mean()) for k in kinds]
        steps = np.diff(means)
        trend = "rises" if (steps > 0).all() else "falls" if (steps < 0).all() else "not monotone"
        robust = rows[rows["kind"] != "standard"]
        out.append({"family": family, "kinds": " → ".join(kinds),
                    "gini_by_kind": " → ".join(f"{m:.3f}" for m in means), "gini_trend": trend,
                    "ina_over_rn": f"{int((robust['ina'] > robust['rn']).sum())}/{len(robust)}"})
    return pd.DataFrame(out, columns=["family", "kinds", "gini_by_kind", "gini_trend", "ina_over_rn"])


def _pct(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _eps(value: float) -> str:
    return f"{value * 255:.0f}/255" if value < 0.05 else f"{value:g}"


def render(table: pd.DataFrame, verdicts: pd.DataFrame, plot: str) -> str:
    """The report's Markdown."""
    cifar = table[table["dataset"] == "cifar10"]
    lines = ["# Third-party panel: the inequality phenomenon across labs", "",
             "Generated by `experiments/third_party/report_panel.py` from the runs in `runs/` "
             "(`experiments/third_party/evaluate_panel.py`); every number and verdict below is computed, none typed.",
             f"{len(table)} of {len(read_manifest())} manifest models are evaluated. CIFAR-10: the 1,000 lossless "
             "sample images; MNIST: 1,000 seeded images of the official test set. Saliency attributions, PGD-10; "
             "Gini is the mean over correctly classified images; INA and RN error rates are on correctly "
             "classified images at the largest budget both tests share. Accuracies in %.", "",
             "## Every model", "",
             "| model | family | kind | clean | stated clean | PGD ε₁ | PGD ε₂ | AA ε₁ | AA ε₂ | stated robust | "
             "Gini pixel | Gini region | INA | RN | INA/RN | noise corr. err. |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        ratio = "∞" if r.ina_rn == math.inf else ("" if math.isnan(r.ina_rn) else f"{r.ina_rn:.2f}")
        lines.append(f"| {r.name} | {r.family} | {r.kind} | {_pct(r.clean)} | {_pct(r.stated_clean)} | "
                     f"{_pct(r.pgd_small)} | {_pct(r.pgd_large)} | {_pct(r.aa_small)} | {_pct(r.aa_large)} | "
                     f"{_pct(r.stated_robust)} | {r.gini_pixel:.3f} | {r.gini_region:.3f} | {_pct(r.ina)} | "
                     f"{_pct(r.rn)} | {ratio} | {_pct(r.noise_corruption)} |")
    radii = sorted({(_eps(r.eps_small), _eps(r.eps_large), r.dataset) for r in table.itertuples()})
    lines += ["", "ε₁, ε₂: " + "; ".join(f"{d}: {a} and {b}" for a, b, d in radii) + ". AA: AutoAttack (standard) "
              "on 200 of the images, robust models only. INA/RN: ∞ when random noise fooled none. Stated figures "
              "as the sources state them (`experiments/third_party/manifest.csv` says what each means); the "
              "**Salman ADV** rows rest on an uncertain preprocessing (docs/third-party.md).", "",
              "## Gini against PGD accuracy", "", f"![Gini against PGD accuracy]({plot})", ""]
    if len(cifar) > 2:
        rho = [cifar["gini_pixel"].corr(cifar[c], method="spearman") for c in ("pgd_small", "pgd_large")]
        by_kind = cifar.groupby("kind")["gini_pixel"].mean().reindex([k for k in KIND_ORDER if k in set(cifar["kind"])])
        lines += [f"Across the {len(cifar)} CIFAR-10 models, Spearman's ρ between pixel Gini and PGD accuracy is "
                  f"{rho[0]:.2f} at 2/255 and {rho[1]:.2f} at 8/255. Mean pixel Gini by training kind: "
                  + ", ".join(f"{k} {v:.3f} ({int((cifar['kind'] == k).sum())})" for k, v in by_kind.items()) + ".", ""]
    lines += ["## Within each family", "",
              "Gini by kind is the mean pixel Gini of the family's models of that kind, in the order standard → "
              "adversarial → mixed → certified. INA > RN counts the family's non-standard models that inductive "
              "noise fools more often than random noise at the same budget.", "",
              "| family | kinds | Gini by kind | Gini | INA > RN |", "|---|---|---|---|---|"]
    lines += [f"| {v.family} | {v.kinds} | {v.gini_by_kind} | {v.gini_trend} | {v.ina_over_rn} |"
              for v in verdicts.itertuples()]
    lines += ["", *disagreements(table, verdicts), ""]
    return "\n".join(lines)


def disagreements(table: pd.DataFrame, verdicts: pd.DataFrame) -> list[str]:
    """Sentences naming the families whose Gini trend differs from the majority's, with their caveats."""
    if verdicts.empty:
        return ["No family has two training kinds evaluated yet."]
    counts = verdicts["gini_trend"].value_counts()
    majority = counts.index[0]
    agree = verdicts[verdicts["gini_trend"] == majority]["family"].tolist()
    differ = verdicts[verdicts["gini_trend"] != majority]
    out = [f"**Where families agree.** Gini {majority} from the least to the most robust training in "
           f"{len(agree)} of {len(verdicts)} families ({', '.join(agree)})."]
    if differ.empty:
        out.append("No family disagrees.")
    else:
        out.append("**Where families disagree.** " + " ".join(
            f"{v.family}: Gini {v.gini_trend} ({v.gini_by_kind} over {v.kinds})"
            + (f"; caveat: {CAVEATS[v.family]}." if v.family in CAVEATS else ".") for v in differ.itertuples()))
    robust = table[table["kind"] != "standard"]
    more = int((robust["ina"] > robust["rn"]).sum())
    out.append(f"**Inductive vs random noise.** Over all {len(robust)} non-standard models, inductive noise fools "
               f"more than random noise at the same budget in {more}.")
    out.append("Why families may disagree: the architectures differ (BatchNorm ResNets, ResNets without BatchNorm, "
               "two-layer CNNs); the training ε differs or is unstated (2/255, 4/255, 8/255, about 1.8/255 for "
               "EhanW); and some preprocessing is inferred rather than stated (Salman et al., above all the ADV "
               "models).")
    return out


def write_report(runs: Path, out: Path) -> Path:
    """Write ``out/README.md`` and the scatter plot from the finished runs in ``runs``; returns the README's path."""
    table = panel_table(runs)
    plots = scatter(table, out)
    path = out / "README.md"
    write_text_atomic(path, render(table, family_verdicts(table), plots[0].name))
    table.to_csv(out / "panel.csv", index=False, float_format="%.6g")
    return path


def main() -> None:
    """Rewrite the report from the runs as they are."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("reports/third-party/runs"))
    p.add_argument("--out", type=Path, default=Path("reports/third-party"))
    args = p.parse_args()
    print(write_report(args.runs, args.out))


if __name__ == "__main__":
    main()
