"""The cross-lab report of the third-party panel, computed from the finished runs (never typed by hand).

    PYTHONPATH=. python experiments/third_party/report_panel.py [--runs reports/third-party/runs] [--out reports/third-party]

Reads every manifest row's run (``RUNS/NAME``, and ``RUNS/NAME-autoattack`` when present) and writes
``OUT/README.md`` (per-model table; Gini against PGD accuracy; within each family whether Gini rises
from standard to adversarial to certified training and whether inductive noise fools the robust
models more than random noise at the same budget; INA/RN per model; where families disagree) and the
scatter plot ``OUT/gini_vs_pgd.png``, and the table behind them as ``OUT/panel.csv``.
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
from panel import ROBUST_KINDS, read_manifest  # noqa: E402

from robench.io import write_text_atomic  # noqa: E402
from robench.reports.compare import common_correct  # noqa: E402
from robench.reports.plots import MARKERS, OKABE_ITO, save_figure  # noqa: E402
from robench.reports.runs import Run, headline, load_run  # noqa: E402

#: Training kinds, from least to most robust by construction (mixed: adversarial and certified terms).
ORDERED = ["standard", "adversarial", "mixed", "certified"]
KIND_ORDER = [*ORDERED, "robust-unstated", "unstated"]
#: The steps along :data:`ORDERED` the report asks "does Gini rise?" about.
STEPS = [("standard", "adversarial"), ("adversarial", "certified"), ("standard", "certified"),
         ("adversarial", "mixed")]
#: What is uncertain about a family's sources, quoted in the report where its verdict stands out.
CAVEATS = {
    "EhanW ResNet-20": "its PGD training attacked the normalised tensor, so its pixel ε is about 1.8/255, not 8/255",
    "OVAL CNN-A": "the certified model's training ε is not stated",
    "OVAL base/deep": "two certified networks of different architectures and no standard twin; ε not stated",
    **{f"Salman {size}": "mean/std are not documented; probing settles them for NOR and LPD but not for ADV (29-43 % "
                         "accuracy under every standardisation, no consistent winner), so the ADV model assumes the "
                         "NOR/LPD setting" for size in ("small", "wide_1", "wide_2")},
    "abcrown SDP CNN-A": "adversarial vs mixed training at 4/255; no standard twin",
    "abcrown ResNet (VNN-COMP)": "no BatchNorm, recipe not stated",
}


def _at(run: Run, test: str, metric: str, param: float) -> float:
    """``test``/``metric`` of ``run`` at the numeric ``param`` (budget or ε), NaN when absent."""
    rows = run.rows(test, metric)
    hit = rows[np.isclose(rows["param"].astype(float), param, rtol=1e-6, atol=0)]
    return float(hit["value"].iloc[0]) if len(hit) else math.nan


def _half_width(run: Run) -> float:
    """Half the width of the bootstrap interval of the mean pixel Gini (correctly classified images)."""
    row = run.rows("gini", "mean", "pixel", "correct").iloc[0]
    return float(row["ci_high"] - row["ci_low"]) / 2


def _params(run: Run, test: str, metric: str) -> list[float]:
    return sorted({float(p) for p in run.rows(test, metric)["param"]})


def panel_table(runs: Path, rows: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """One row per finished manifest row: provenance, accuracies, Gini, INA/RN at their shared budget.

    Columns: name, family, kind, arch_family, dataset, n, clean, eps_small, eps_large (pixel units),
    pgd_small, pgd_large, aa_small, aa_large, aa_n, aa_pgd_small, aa_pgd_large (PGD-10 on the AutoAttack run's
    images), gini_pixel, gini_half_width (half the width of its 95 %
    bootstrap interval over the images), gini_region, gini_common, gini_common_half_width, n_common
    (:func:`common_gini`), budget (the largest
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
            "aa_pgd_small": _at(aa, "pgd", "robust_accuracy", eps[0]) if aa else math.nan,
            "aa_pgd_large": _at(aa, "pgd", "robust_accuracy", eps[-1]) if aa else math.nan,
            "gini_pixel": head["gini_pixel"], "gini_half_width": _half_width(run), "gini_region": head["gini_region"],
            "budget": budget, "ina": ina, "rn": rn,
            "ina_rn": (math.inf if ina > 0 else math.nan) if rn == 0 else ina / rn,
            "noise_corruption": head["noise_corruption_error"],
            "stated_clean": float(row["stated_accuracy"]) if row["stated_accuracy"] else math.nan,
            "stated_robust": float(row["stated_robust_accuracy"]) if row["stated_robust_accuracy"] else math.nan,
        })
    table = pd.DataFrame(out)
    return table.join(common_gini(runs, table), on="name") if len(table) else table


def common_gini(runs: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Mean pixel Gini of each model on the images every model of its family classifies correctly.

    Indexed by name; columns gini_common, gini_common_half_width (1.96 standard errors), n_common.
    """
    out = []
    for _, rows in table.groupby("family", sort=False):
        family = [load_run(runs / name) for name in rows["name"]]
        mask = common_correct(family)
        for name, run in zip(rows["name"], family):
            gini = run.per_image.loc[mask, "gini_pixel"].astype(float)
            out.append({"name": name, "gini_common": gini.mean(), "n_common": int(mask.sum()),
                        "gini_common_half_width": 1.96 * gini.std() / math.sqrt(len(gini)) if len(gini) > 1 else math.nan})
    return pd.DataFrame(out).set_index("name")


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
    """Per family with at least two of the ordered kinds (:data:`ORDERED`): per-kind means and verdicts.

    Columns: family; kinds (``standard → adversarial → …``); gini, gini_common, ina, ina_rn (per-kind
    mean pixel Gini on each model's own correct images and on the family's common-correct images,
    mean INA error, mean INA / mean RN error, as ``a → b → …`` text); n_common; one column per step of
    :data:`STEPS`: ``rises`` or ``falls`` when the kind means of the common-correct Gini differ by more
    than their combined 95 % half-widths (image sampling only, not training seeds), else ``no clear change``;
    empty when the family lacks one of the two kinds; ina_over_rn: how many of the family's robust models (:data:`ROBUST_KINDS`)
    inductive noise fools more often than random noise at the shared budget, out of how many.
    """
    out = []
    for family, rows in table.groupby("family", sort=False):
        kinds = [k for k in ORDERED if k in set(rows["kind"])]
        if len(kinds) < 2:
            continue
        by = rows.groupby("kind")
        gini, common, ina, rn = (by[c].mean() for c in ("gini_pixel", "gini_common", "ina", "rn"))
        half = by["gini_common_half_width"].apply(lambda h: float(np.sqrt((h ** 2).sum())) / len(h))  # kind's mean
        robust = rows[rows["kind"].isin(ROBUST_KINDS)]
        verdict = {"family": family, "kinds": " → ".join(kinds),
                   "gini": " → ".join(f"{gini[k]:.3f}" for k in kinds),
                   "gini_common": " → ".join(f"{common[k]:.3f}" for k in kinds), "n_common": int(rows["n_common"].iloc[0]),
                   "ina": " → ".join(_pct(ina[k]) for k in kinds),
                   "ina_rn": " → ".join("∞" if rn[k] == 0 else f"{ina[k] / rn[k]:.2f}" for k in kinds),
                   "ina_over_rn": f"{int((robust['ina'] > robust['rn']).sum())}/{len(robust)}"}
        for a, b in STEPS:
            if a in kinds and b in kinds:
                change = common[b] - common[a]
                verdict[f"{a}→{b}"] = ("no clear change" if abs(change) <= np.hypot(half[a], half[b])
                                       else "rises" if change > 0 else "falls")
            else:
                verdict[f"{a}→{b}"] = ""
        out.append(verdict)
    return pd.DataFrame(out, columns=["family", "kinds", "gini", "gini_common", "n_common", "ina", "ina_rn",
                                      *(f"{a}→{b}" for a, b in STEPS), "ina_over_rn"])


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
             "", f"{len(table)} of {len(read_manifest())} manifest models are evaluated"
             + (f" (not yet: {', '.join(missing)})" if (missing := [Path(r['file']).stem for r in read_manifest()
                                                                   if Path(r['file']).stem not in set(table['name'])])
                else "") + ". CIFAR-10: the 1,000 lossless "
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
              "on 200 of the images, robust models only. INA and RN: error rates at a budget of "
              + " / ".join(f"{b:g}" for b in sorted(set(table["budget"]))) + " of the input entries, the "
              "largest both share. INA/RN: ∞ when random noise fooled none. Stated figures "
              "as the sources state them (`experiments/third_party/manifest.csv` says what each means); the "
              "**Salman ADV** rows rest on an uncertain preprocessing (docs/third-party.md).", "",
              *autoattack_section(table),
              "## Gini against PGD accuracy", "", f"![Gini against PGD accuracy]({plot})", ""]
    if len(cifar) > 2:
        rho = [cifar["gini_pixel"].corr(cifar[c], method="spearman") for c in ("pgd_small", "pgd_large")]
        by_kind = cifar.groupby("kind")["gini_pixel"].mean().reindex([k for k in KIND_ORDER if k in set(cifar["kind"])])
        lines += [f"Across the {len(cifar)} CIFAR-10 models, Spearman's ρ between pixel Gini and PGD accuracy is "
                  f"{rho[0]:.2f} at 2/255 and {rho[1]:.2f} at 8/255. Mean pixel Gini by training kind: "
                  + ", ".join(f"{k} {v:.3f} ({int((cifar['kind'] == k).sum())})" for k, v in by_kind.items()) + ".", ""]
    steps = [f"{a}→{b}" for a, b in STEPS]
    lines += ["## Within each family", "",
              "Per family, the mean over its models of each kind, in the order standard → adversarial → mixed → "
              "certified: pixel Gini on each model's own correctly classified images and on the images every model "
              "of the family classifies correctly (common), INA error and INA/RN (mean INA error over mean RN error "
              "at the same budget); then whether the common-image Gini rises at each step between two kinds the "
              "family has (a change within the combined "
              "95 % bootstrap half-widths over the images is \"no clear change\"; training-seed variation is not "
              "measured), and how many of its robust models inductive noise fools more often than random noise.", "",
              "| family | kinds | Gini (own) | Gini (common) | common images | INA % | INA/RN | " + " | ".join(steps)
              + " | robust: INA > RN |", "|---|---|---|---|---:|---|---|" + "---|" * len(steps) + "---|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in verdicts[
        ["family", "kinds", "gini", "gini_common", "n_common", "ina", "ina_rn", *steps, "ina_over_rn"]].itertuples(
        index=False)]
    lines += ["", "\n\n".join(disagreements(table, verdicts)), ""]
    return "\n".join(lines)


#: PGD-10 accuracy this many points above AutoAttack's on the same images: PGD overestimates the robustness.
AUTOATTACK_GAP = 0.05


def autoattack_section(table: pd.DataFrame) -> list[str]:
    """Markdown lines: AutoAttack against PGD-10 on the same images for every model attacked with both,
    the models whose gap exceeds AUTOATTACK_GAP named, and the sources' robust figures beside them."""
    attacked = table[table["aa_n"] > 0]
    if attacked.empty:
        return []
    lines = ["## AutoAttack against PGD-10", "",
             f"On the {'/'.join(str(n) for n in sorted(set(attacked['aa_n'])))} images of each AutoAttack run, "
             "both attacks (the PGD-10 columns here are those images', not the 1,000 of the table above). "
             "Gap: PGD-10 − AutoAttack, in points.", "",
             "| model | kind | PGD ε₁ | AA ε₁ | gap ε₁ | PGD ε₂ | AA ε₂ | gap ε₂ | stated robust |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in attacked.itertuples():
        lines.append(f"| {r.name} | {r.kind} | {_pct(r.aa_pgd_small)} | {_pct(r.aa_small)} | "
                     f"{100 * (r.aa_pgd_small - r.aa_small):.1f} | {_pct(r.aa_pgd_large)} | {_pct(r.aa_large)} | "
                     f"{100 * (r.aa_pgd_large - r.aa_large):.1f} | {_pct(r.stated_robust)} |")
    lines.append("")
    for size, label in (("small", "ε₁"), ("large", "ε₂")):
        gap = (100 * (attacked[f"aa_pgd_{size}"] - attacked[f"aa_{size}"])).round(1)  # points, as the table shows
        wide = attacked[gap > 100 * AUTOATTACK_GAP]  # rounded, so a gap of exactly 5.0 is not "more than 5"
        lines.append(f"At {label}, AutoAttack is at most {gap.max():.1f} points below PGD-10 on every model."
                     if wide.empty else
                     f"At {label}, AutoAttack is more than {100 * AUTOATTACK_GAP:.0f} points below PGD-10 on "
                     f"{len(wide)} of {len(attacked)} models ({', '.join(wide['name'])}): PGD-10 overestimates their "
                     "robustness there, and the AutoAttack figure is the one to quote.")
        lines.append("")
    if waiting := [n for n, k, a in zip(table["name"], table["kind"], table["aa_n"]) if k in ROBUST_KINDS and not a]:
        lines += [f"Not attacked with AutoAttack yet: {', '.join(waiting)}.", ""]
    return lines


def disagreements(table: pd.DataFrame, verdicts: pd.DataFrame) -> list[str]:
    """Paragraphs: per step, the families where Gini rises and those where it does not (with their caveats);
    inductive against random noise over the robust models; why families may disagree."""
    if verdicts.empty:
        return ["No family has two training kinds evaluated yet."]
    out = []
    for a, b in STEPS:
        column = verdicts[verdicts[f"{a}→{b}"] != ""]
        if column.empty:
            continue
        rises = column[column[f"{a}→{b}"] == "rises"]["family"].tolist()
        other = column[column[f"{a}→{b}"] != "rises"]
        text = f"**{a} → {b}.** Gini (common images) rises in {len(rises)} of {len(column)} families"
        text += f" ({', '.join(rises)})." if rises else "."
        if len(other):
            text += " It does not in " + "; ".join(
                f"{v['family']} ({v[f'{a}→{b}']}: {v['gini_common']} over {v['kinds']})"
                + (f"; caveat: {CAVEATS[v['family']]}" if v["family"] in CAVEATS else "")
                for _, v in other.iterrows()) + "."
        out.append(text)
    robust = table[table["kind"].isin(ROBUST_KINDS)]
    standard = table[table["kind"] == "standard"]
    out.append(f"**Inductive against random noise.** Inductive noise fools more images than random noise at the "
               f"same budget in {int((robust['ina'] > robust['rn']).sum())} of {len(robust)} robust models "
               f"(and in {int((standard['ina'] > standard['rn']).sum())} of {len(standard)} standard ones); mean "
               f"INA/RN is {_ratio(robust)} for the robust models and {_ratio(standard)} for the standard ones, "
               f"while their mean INA error is {_pct(robust['ina'].mean())} % against "
               f"{_pct(standard['ina'].mean())} %.")
    out.append("**Why families may disagree.** The architectures differ (BatchNorm ResNets, ResNets without "
               "BatchNorm, two-layer CNNs of several widths); the training ε differs or is unstated (2/255, 4/255, "
               "8/255, about 1.8/255 in pixels for EhanW); and some preprocessing is inferred rather than stated "
               "(Salman et al., above all the ADV models, whose mean/std probing could not settle). The own-image Gini "
               "of a model is averaged over the images it classifies correctly, which for the least accurate robust "
               f"models ({_pct(robust['clean'].min())} % clean) is a small and easy subset; the common-image Gini "
               "removes that difference within a family.")
    return out


def _ratio(rows: pd.DataFrame) -> str:
    """Mean INA error over mean RN error of ``rows``, as text."""
    rn = rows["rn"].mean()
    return "∞" if rn == 0 else "n/a" if math.isnan(rn) else f"{rows['ina'].mean() / rn:.2f}"


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
