#!/usr/bin/env python
"""Evaluate the bundled models (inequality + adversarial suites) and write a comparison table.

    .venv/bin/python experiments/evaluate_zoo.py --out reports/zoo [--limit N]

Runs ``robench.evaluate("zoo:NAME", "sample", suites="inequality,adversarial", out=OUT/NAME)`` (the
same as `robench evaluate --model zoo:NAME --data sample --suite inequality,adversarial --out OUT/NAME`)
for every bundled model, writes OUT/summary.md with the headline numbers side by side, then
``robench.compare`` (`robench compare OUT/NAME... --out OUT/report`) and prints the report's path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import robench
from robench.zoo import zoo_names

FIRST = ("standard", "pgd-at", "igd")  # the comparison reads left to right: standard → AT → AT + IGD


def ordered_names() -> list[str]:
    names = zoo_names()
    return [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]


HEADLINES = [  # (label, test, variant prefix, param, metric)
    ("clean accuracy", "accuracy", "all", "", "accuracy"),
    ("PGD-10 accuracy, ε = 8/255", "pgd", "linf", "0.0313725", "robust_accuracy"),
    ("pixel Gini of abs(saliency), correct", "gini", "pixel", "correct", "mean"),
    ("regional Gini (sum, b = 4)", "gini", "region_sum", "correct", "mean"),
    ("INA error, 1% of entries", "inductive_noise", "add", "0.01", "error_rate"),
    ("INA error, 2% of entries", "inductive_noise", "add", "0.02", "error_rate"),
    ("RN error, 2% of entries", "random_noise", "add", "0.02", "error_rate"),
    ("RN error, 10% of entries", "random_noise", "add", "0.1", "error_rate"),
    ("IOA error, grey fill (N=10, R=3)", "inductive_occlusion", "fill=0.5", "N=10,R=3", "error_rate"),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("reports/zoo"))
    p.add_argument("--limit", type=int)
    args = p.parse_args()
    limit = ["--limit", str(args.limit)] if args.limit else []
    table: dict[str, dict[str, str]] = {}
    commands, runs = [], []
    for name in ordered_names():
        commands.append(f"robench evaluate --model zoo:{name} --data sample --suite inequality,adversarial "
                        f"{' '.join(limit) + ' ' if limit else ''}--out {args.out / name}")
        run = robench.evaluate(f"zoo:{name}", "sample", suites="inequality,adversarial", limit=args.limit,
                               out=args.out / name)
        runs.append(run)
        for label, test, variant, param, metric in HEADLINES:
            value = run.value(test, metric, variant, param)
            table.setdefault(label, {})[name] = "–" if value != value else f"{value:.3f}"  # NaN: not measured
    names = ordered_names()
    lines = ["# Bundled models compared (bundled sample: 1,000 lossless CIFAR-10 test images)", "",
             "Attacks and Gini on each model's correctly classified images; produced by "
             f"`python experiments/evaluate_zoo.py --out {args.out}{' --limit ' + str(args.limit) if args.limit else ''}`, "
             "which ran:", "", "```", *commands, "```", "",
             "| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(table[label].get(n, "–") for n in names) + " |" for label, *_ in HEADLINES]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    robench.compare(runs, out=args.out / "report")
    print(f"report written to {args.out / 'report' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
