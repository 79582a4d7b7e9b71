#!/usr/bin/env python
"""IGD ablation on the fast recipe (issue 26): does more teacher alignment lower the inequality errors?

    OMP_NUM_THREADS=1 .venv/bin/python experiments/igd_ablation.py --data-dir ../shared/data \
        --study reports/reproduction/cifar10-fast --out reports/reproduction/cifar10-fast/igd-ablation

Stages (each resumable: a finished checkpoint or run is kept, an interrupted one continues):

- ``free``: every model of the study re-evaluated on the 1,195 lossless test images with inductive and
  random noise in *replace* mode (INA2; no occlusion) and the study's standard model as the reference
  model, which gives each image's teacher–student input-gradient cosine (``attribution_cosine``).
- ``train``: the variants of :data:`VARIANTS`, one by one (fast recipe, the study's teacher), each then
  evaluated like the study's models on the 1,000 sample images (plus the reference model), in replace
  mode on the 1,195 lossless images, and with AutoAttack on the first 200 sample images.
- ``report``: ``OUT/README.md``'s tables (``OUT/summary.csv``: one row per model), the McNemar tests of
  each IGD variant against its PGD-AT baseline on their common-correct images, the margin check
  (median margin² / Σ g² over a random 20% of entries), and ``OUT/errors-vs-alignment.png``.

Every call is recorded in ``OUT/commands.json`` as its ``robench`` command line with its wall time. The new
checkpoints go to ``--models`` (``runs/igd-ablation``, not committed: reports/ has a size budget); each training
log is copied beside the runs, to ``OUT/models/NAME.pt.log.csv``.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from reproduce_cifar10 import PRESETS, Options, evaluate, logged, method_options  # beside this script
from scipy.stats import spearmanr

import robench
import robench.runner  # noqa: F401  (loaded now: a long run keeps the code it started with)
import robench.suites  # noqa: F401
from robench.io import write_atomic, write_text_atomic
from robench.metrics.paired import holm, mcnemar_p
from robench.reports.plots import save_figure

STUDY = PRESETS["fast"]
PGD2 = {"inner_attack": "pgd", "attack_steps": 2, "step_size": round(4 / 255, 8)}  # two steps of ε/2 from a random start


@dataclass(frozen=True)
class Variant:
    """A model of the ablation: the study model ``base`` (its recipe) with ``changes`` (robench.train keywords)."""

    base: str
    changes: Options = field(default_factory=dict)
    baseline: str = "pgd-at-eps8"  # the PGD-AT model it is tested against
    what: str = ""


# In the order they are trained (the issue's priority); the long pair last, as it costs three models' time.
VARIANTS: dict[str, Variant] = {
    "igd-lam4": Variant("igd-lam4", what="λ = 4, λ warm-up over the first 25% (as λ = 2)"),
    "igd-lam2-full": Variant("igd-lam2", {"igd_fraction": 1.0}, what="λ = 2, the IGD term on the whole batch"),
    "igd-lam2-adv": Variant("igd-lam2", {"student_input": "adv"}, what="λ = 2, student gradient at the adversarial image"),
    "igd-lam2-adv-seed1": Variant("igd-lam2", {"student_input": "adv", "seed": 1}, baseline="pgd-at-eps8-seed1",
                                  what="igd-lam2-adv's second seed, against PGD-AT's second seed"),
    "pgd-at-eps8-pgd2": Variant("pgd-at-eps8", PGD2, baseline="pgd-at-eps8-pgd2", what="PGD-AT, inner attack PGD-2"),
    "igd-lam2-pgd2": Variant("igd-lam2", PGD2, baseline="pgd-at-eps8-pgd2", what="λ = 2, inner attack PGD-2"),
    "pgd-at-eps8-long": Variant("pgd-at-eps8", {"epochs": 30}, baseline="pgd-at-eps8-long", what="PGD-AT, 30 epochs"),
    "igd-lam2-full-long": Variant("igd-lam2", {"igd_fraction": 1.0, "epochs": 30}, baseline="pgd-at-eps8-long",
                                  what="λ = 2 on the whole batch, 30 epochs"),
}
# The study's own IGD/PGD-AT pairs (same seed, same recipe apart from IGD)
STUDY_PAIRS = {"igd-lam1": "pgd-at-eps8", "igd-lam1-seed1": "pgd-at-eps8-seed1", "igd-lam2": "pgd-at-eps8",
               "trades-igd": "trades"}
# Models trained with two seeds: their McNemar tests pooled over the seeds (pairs.csv's "(seeds pooled)" rows)
SEEDS = {"igd-lam1": ("igd-lam1", "igd-lam1-seed1"), "igd-lam2-adv": ("igd-lam2-adv", "igd-lam2-adv-seed1")}
REPLACE: Options = {"data": None, "seed": 0, "suites": "inequality", "noise_mode": "replace", "occlusion_fill": (),
                    "ina_budgets": "0.002,0.004,0.01,0.02", "rn_budgets": "0.1,0.2"}  # data, reference_model: set in main
AUTOATTACK: Options = {**STUDY.autoattack, "limit": 200}


def train_variant(name: str, variant: Variant, study_models: Path, models: Path, study_data: Options, device: str,
                  log: list[dict], logs: Path) -> Path:
    """Train ``name`` into MODELS/NAME.pt (resuming an interrupted run) and copy its training log into ``logs``;
    returns the checkpoint."""
    ckpt = models / f"{name}.pt"
    if ckpt.exists() and not Path(f"{ckpt}.state.pt").exists():
        return ckpt
    options = {**STUDY.common, **method_options(variant.base, STUDY, study_models), **variant.changes, **study_data,
               "name": name, "device": device, "out": str(ckpt),
               **({"resume": True} if Path(f"{ckpt}.state.pt").exists() else {})}
    logged(log, "train", options, lambda: robench.train(**options))
    logs.mkdir(parents=True, exist_ok=True)
    shutil.copy2(f"{ckpt}.log.csv", logs / f"{ckpt.name}.log.csv")
    return ckpt


def same_weights(a: Path, b: Path) -> bool:
    """Whether two robench checkpoints hold the same weights (the kept epoch was the last one)."""
    first, second = (torch.load(p, map_location="cpu", weights_only=True)["state_dict"] for p in (a, b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def margin_ratio(model: torch.nn.Module, images: int = 500, share: float = 0.2, seed: int = 0) -> float:
    """Median over correctly classified sample images of margin² / Σ_S g², S a random ``share`` of the C·H·W entries.

    margin = logit_y − max_{j≠y} logit_j and g its input gradient: to first order, noise on S needs an l2 norm of
    about margin / ‖g_S‖ to flip the class, so a small ratio means the boundary is close in those directions.
    """
    model = model.eval()
    data = robench.load_data("sample", limit=images)
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for _, x, y in data.batches(250):
        x.requires_grad_(True)
        logits = model(x)
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -torch.inf).amax(1)
        margin = true - other
        (g,) = torch.autograd.grad(margin.sum(), x)
        mask = torch.rand(x.shape, generator=gen) < share
        keep = margin > 0
        ratios.append((margin[keep] ** 2 / (g * mask).pow(2).flatten(1).sum(1)[keep]).detach())
    return float(torch.cat(ratios).median())


def pooled(tests: pd.DataFrame, seeds: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Rows of ``tests`` summed over the seeds of each model in ``seeds`` (name → its per-seed names): the discordant
    counts of independent pairs add, and the exact McNemar test is taken on the sums (a stratified McNemar test)."""
    rows = []
    for name, members in seeds.items():
        part = tests[tests["igd"].isin(members)]
        if part["igd"].nunique() < len(members):
            continue
        for error, group in part.groupby("error", sort=False):
            only_igd, only_base = int(group["fooled_igd_only"].sum()), int(group["fooled_baseline_only"].sum())
            images = group["images"].sum()
            rows.append({"igd": f"{name} (seeds pooled)", "baseline": " + ".join(group["baseline"]), "error": error,
                         "images": int(images),
                         "error_igd": (group["error_igd"] * group["images"]).sum() / images,
                         "error_baseline": (group["error_baseline"] * group["images"]).sum() / images,
                         "fooled_igd_only": only_igd, "fooled_baseline_only": only_base,
                         "p_mcnemar": mcnemar_p(only_igd, only_base)})
    return pd.DataFrame(rows)


EPS8 = "0.0313725"
# summary.csv's error columns: (run kind, per-image column) → error rate over the model's own correct images
ERRORS = {"ina_replace@1%": ("replace", "ina@0.01"), "ina_replace@2%": ("replace", "ina@0.02"),
          "rn_replace@20%": ("replace", "rn@0.2"), "ina_add@2%": ("sample", "ina@0.02"),
          "occlusion_fill0": ("sample", "ioa[0]_fooled"), "occlusion_fill0.5": ("sample", "ioa[0.5]_fooled"),
          "occlusion_fill1": ("sample", "ioa[1]_fooled"), "rn_add@20%": ("sample", "rn@0.2")}
PLOTTED = ("ina_replace@1%", "ina_add@2%", "occlusion_fill0.5", "rn_add@20%")
TESTED = tuple(ERRORS)  # McNemar on each pair's common-correct images of the run kind (replace: 1,195; sample: 1,000)


@functools.cache
def finished(run: Path) -> robench.Run:
    """A finished run, read once per report (a baseline's runs serve every pair it is in)."""
    return robench.load_run(run)


def model_row(name: str, runs: dict[str, Path], ckpt: Path) -> dict[str, object]:
    """One model's summary: alignment, Gini, errors, accuracies, margin ratio (NaN where a run is missing)."""
    tables = {kind: finished(path).per_image for kind, path in runs.items() if (path / "meta.json").exists()}
    row: dict[str, object] = {"model": name}
    if "replace" in tables:
        row["cosine"] = tables["replace"]["attribution_cosine"].mean()
        row["spearman"] = tables["replace"]["attribution_spearman"].mean()
    if "sample" in tables:
        sample = tables["sample"]
        row |= {"clean": sample["correct"].mean(), "pgd10": sample[f"pgd@{EPS8}"].mean(),
                "gini": sample.loc[sample["correct"] == 1, "gini_pixel"].mean()}
    if "autoattack" in tables:  # the first 200 sample images: the variants' AutoAttack subset
        row["autoattack@200"] = tables["autoattack"][f"autoattack@{EPS8}"].head(AUTOATTACK["limit"]).mean()
    for column, (kind, source) in ERRORS.items():
        if kind in tables:
            row[column] = tables[kind][source].mean()  # NaN (not attacked) on misclassified images
    row["margin_ratio"] = margin_ratio(robench.load_model(str(ckpt))) if ckpt.exists() else float("nan")
    return row


def write_report(study: Path, out: Path, models: Path) -> Path:
    """summary.csv, pairs.csv and errors-vs-alignment.png in ``out`` from the finished runs; returns the summary."""
    import matplotlib.pyplot as plt

    rows, paths = [], {}  # paths: model → its runs by kind
    for name in STUDY.models:
        runs = {"sample": study / "runs" / name, "replace": out / "runs" / f"{name}-replace",
                "autoattack": study / "runs" / f"{name}-autoattack"}
        rows.append({**model_row(name, runs, study / "models" / f"{name}.pt"), "origin": "study"})
        paths[name] = runs
    for base_name, variant in VARIANTS.items():
        for name, what in ((base_name, variant.what), (f"{base_name}-last", f"{variant.what}; the last epoch")):
            runs = {"sample": out / "runs" / name, "replace": out / "runs" / f"{name}-replace",
                    "autoattack": out / "runs" / f"{name}-autoattack"}
            if (runs["sample"] / "meta.json").exists():
                rows.append({**model_row(name, runs, models / f"{name}.pt"), "origin": "ablation",
                             "what": what})
                paths[name] = runs
    summary = pd.DataFrame(rows)
    write_atomic(out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False, float_format="%.4f"))
    pairs = [(igd, base) for igd, base in STUDY_PAIRS.items()]
    pairs += [(name, v.baseline) for base_name, v in VARIANTS.items() for name in (base_name, f"{base_name}-last")
              if base_name != v.baseline and name in paths]
    tests = []
    for igd, base in pairs:
        if base not in paths:
            continue
        for kind in ("replace", "sample"):
            if not all((paths[n][kind] / "meta.json").exists() for n in (igd, base)):
                continue
            tested = [column for column in TESTED if ERRORS[column][0] == kind]
            table = robench.paired(*(finished(paths[n][kind]) for n in (igd, base)),
                                   columns=[ERRORS[column][1] for column in tested]).set_index("column")
            for column in tested:  # on the pair's common-correct images (every one of them attacked in both)
                r = table.loc[ERRORS[column][1]]
                tests.append({"igd": igd, "baseline": base, "error": column, "images": int(r["images"]),
                              "error_igd": r["error_a"], "error_baseline": r["error_b"],
                              "fooled_igd_only": int(r["fooled_a_only"]), "fooled_baseline_only": int(r["fooled_b_only"]),
                              "p_mcnemar": r["p_mcnemar"]})
    single = pd.DataFrame(tests)
    single["p_holm"] = holm(single["p_mcnemar"])  # the family Holm adjusts: every single-seed test
    tests_table = pd.concat([single, pooled(single, SEEDS)], ignore_index=True)  # pooled rows: no p_holm
    write_atomic(out / "pairs.csv", lambda tmp: tests_table.to_csv(tmp, index=False, float_format="%.4g"))
    fig, axes = plt.subplots(2, len(PLOTTED), figsize=(4 * len(PLOTTED), 7), constrained_layout=True)
    adversarial = summary[summary["model"] != "standard"]
    for col, error in enumerate(PLOTTED):
        for row_i, x in enumerate(("cosine", "gini")):
            ax = axes[row_i, col]
            for origin, marker in (("study", "o"), ("ablation", "s")):
                part = adversarial[adversarial["origin"] == origin]
                ax.scatter(part[x], part[error], marker=marker, label=origin)
                for _, r in part.iterrows():
                    ax.annotate(r["model"], (r[x], r[error]), fontsize=6, xytext=(2, 2), textcoords="offset points")
            ax.set_xlabel("teacher cosine (1,195 lossless)" if x == "cosine" else "pixel Gini (sample, correct)")
            ax.set_ylabel(f"{error} error")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, out, "errors-vs-alignment")
    write_text_atomic(out / "RESULTS.md", results_markdown(summary, tests_table))
    return out / "RESULTS.md"


def trends(summary: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rank correlation of each error (and of clean and PGD-10 accuracy) with the teacher cosine and with
    the pixel Gini across the models trained adversarially at ε = 8/255 (all but the standard model and PGD-AT at 2 and
    4/255, whose errors differ for their ε), with its p-value."""
    models = summary[~summary["model"].isin(("standard", "pgd-at-eps2", "pgd-at-eps4"))]
    rows = []
    for column in (*ERRORS, "clean", "pgd10"):
        for x in ("cosine", "gini"):
            both = models[[x, column]].dropna()
            rho, p = spearmanr(both[x], both[column])
            rows.append({"measure": column, "against": x, "models": len(both), "spearman": rho, "p": p})
    return pd.DataFrame(rows)


def results_markdown(summary: pd.DataFrame, tests: pd.DataFrame) -> str:
    """RESULTS.md: the summary and the McNemar tests as markdown tables (rates in %, cosine and Gini as is)."""
    shown = summary.drop(columns=["origin", "what"], errors="ignore").set_index("model")
    rates = [c for c in shown.columns if c not in ("cosine", "spearman", "gini", "margin_ratio")]
    shown[rates] = shown[rates] * 100
    tests = tests.copy()
    tests[["error_igd", "error_baseline"]] = tests[["error_igd", "error_baseline"]] * 100
    return "\n".join([
        "# IGD ablation: results", "",
        "Generated by `experiments/igd_ablation.py --stage report` from the committed runs (README.md: the "
        "commands and the verdict).", "",
        "## Models", "",
        "Rates in %: accuracies on the 1,000 sample images (`autoattack@200`: the first 200 of them), error rates "
        "over each model's own correctly classified images (`*_replace*`: the 1,195 lossless images, noise in replace "
        "mode; the others: the sample, the study's settings). `cosine`/`spearman`: mean alignment of the saliency "
        "maps with the study's standard model (the IGD teacher) on the 1,195 lossless images; `gini`: pixel Gini on "
        "the sample's correct images; `margin_ratio`: median margin² / Σ g² over a random 20% of entries (500 sample "
        "images).", "",
        shown.to_markdown(floatfmt=".3g"), "",
        "## IGD against its PGD-AT baseline (McNemar, exact)", "",
        "On the images both models classify correctly (`*_replace*`: among the 1,195 lossless images; the others: among "
        "the 1,000 sample images); `fooled_*_only`: images "
        "fooled in one model and not the other; `p_holm`: Holm's adjustment over every single-seed test in the "
        "table; `(seeds pooled)`: the two seeds' discordant counts summed (stratified McNemar).", "",
        tests.to_markdown(index=False, floatfmt=".3g"), "",
        "## Trends across the models", "",
        "Spearman's rank correlation, across the models above trained at ε = 8/255, of each error rate and accuracy "
        "with the teacher cosine and with the pixel Gini (a positive ρ: the measure grows with cosine or Gini).", "",
        trends(summary).to_markdown(index=False, floatfmt=".3g"), "",
        "![errors against alignment and Gini](errors-vs-alignment.png)", ""])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", type=Path, default=Path("reports/reproduction/cifar10-fast"))
    p.add_argument("--out", type=Path, default=Path("reports/reproduction/cifar10-fast/igd-ablation"))
    p.add_argument("--models", type=Path, default=Path("runs/igd-ablation"),
                   help="Where the new checkpoints go (not committed).")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--stage", choices=("all", "free", "train", "report"), default="all")
    p.add_argument("--only", default=None, help="Comma-separated subset of the variants (train stage).")
    p.add_argument("--autoattack", action=argparse.BooleanOptionalAction, default=True,
                   help="Run the AutoAttack evaluation of each variant (the slowest step).")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    study_models, models, runs = args.study / "models", args.models, args.out / "runs"
    models.mkdir(parents=True, exist_ok=True)
    study_data = {"data": "cifar10", "data_dir": args.data_dir}
    teacher = str(study_models / "standard.pt")
    replace = {**REPLACE, "data": f"npz:{Path(args.data_dir) / 'cifar10-test-lossless-1195.npz'}",
               "reference_model": teacher}
    sample = {**STUDY.evaluate, "reference_model": teacher}
    log: list[dict] = []
    log_path = args.out / "commands.json"

    def run(ckpt: Path, options: Options, out: Path) -> None:
        if not (out / "meta.json").exists():
            evaluate(ckpt, options, study_data, args.device, out, log)

    try:
        if args.stage in ("all", "free"):
            for name in STUDY.models:
                run(study_models / f"{name}.pt", replace, runs / f"{name}-replace")
        if args.stage in ("all", "train"):
            for name in args.only.split(",") if args.only else VARIANTS:
                ckpt = train_variant(name, VARIANTS[name], study_models, models, study_data, args.device, log,
                                     args.out / "models")
                run(ckpt, sample, runs / name)
                run(ckpt, replace, runs / f"{name}-replace")
                last = models / f"{name}-last.pt"  # the last epoch: the selection by PGD-10 may keep an early one
                if last.exists() and not Path(f"{ckpt}.state.pt").exists() and not same_weights(ckpt, last):
                    run(last, sample, runs / f"{name}-last")
                    run(last, replace, runs / f"{name}-last-replace")
                if args.autoattack:
                    run(ckpt, AUTOATTACK, runs / f"{name}-autoattack")
        if args.stage in ("all", "report"):
            print(f"report: {write_report(args.study, args.out, models)}")
    finally:
        if log:
            earlier = json.loads(log_path.read_text()) if log_path.exists() else []
            write_text_atomic(log_path, json.dumps(earlier + log, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
