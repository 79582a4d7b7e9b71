#!/usr/bin/env python
"""Independent check of the study's Gini values: Captum's Saliency + a NumPy mean-absolute-difference Gini.

    .venv/bin/python experiments/check_gini_independent.py --out reports/reproduction/cifar10 --images 100

For each evaluated model in OUT/runs, takes the first IMAGES correctly classified images, recomputes
|∂ logit_y / ∂ x| with Captum (not robench's attribution code) and the Gini as
Σ_ij |a_i − a_j| / (2 n² mean) in float64 (not robench's sorted formula), and compares with the
`gini_pixel` column robench wrote to per_image.csv. Writes OUT/gini_check.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from captum.attr import Saliency
from claims_cifar10 import ORDER  # beside this script

from robench.reports.examples import reload_images, reload_model
from robench.reports.runs import load_run


def mad_gini(values: np.ndarray) -> float:
    """Σ_ij |a_i − a_j| / (2 n² mean), in float64, without sorting."""
    v = values.astype(np.float64).ravel()
    diffs = sum(np.abs(v[i:i + 512, None] - v[None, :]).sum() for i in range(0, v.size, 512))
    return float(diffs / (2 * v.size**2 * v.mean()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("reports/reproduction/cifar10"))
    p.add_argument("--images", type=int, default=100)
    args = p.parse_args()
    lines = ["# Pixel Gini: robench vs an independent computation", "",
             f"`.venv/bin/python experiments/check_gini_independent.py --out {args.out} --images {args.images}`: "
             f"for the first {args.images} correctly classified images of each model, Captum `Saliency(abs=True)` "
             "on the true-class logit and the mean-absolute-difference Gini in float64, against robench's "
             "`gini_pixel` in per_image.csv (written with 6 significant digits).", "",
             "| model | images | mean Gini, robench | mean Gini, independent | max per-image \\|Δ\\| | equal to 3 decimals |",
             "|---|---|---|---|---|---|"]
    for name in ORDER:
        if not (args.out / "runs" / name / "meta.json").exists():
            continue
        run = load_run(args.out / "runs" / name)
        if "gini_pixel" not in run.per_image:
            continue
        rows = np.flatnonzero(run.per_image["correct"].astype(bool).to_numpy())[:args.images]
        model = reload_model(run).eval()
        x, y = reload_images(run, rows)
        attr = Saliency(model).attribute(x.requires_grad_(True), target=y, abs=True).detach().numpy()
        independent = np.array([mad_gini(a) for a in attr])
        ours = run.per_image["gini_pixel"].to_numpy()[rows].astype(np.float64)
        delta = np.abs(independent - ours)
        same = abs(independent.mean() - ours.mean()) < 5e-4
        lines.append(f"| {run.name} | {len(rows)} | {ours.mean():.6f} | {independent.mean():.6f} | {delta.max():.1e} | "
                     f"{'yes' if same else 'NO'} |")
    text = "\n".join(lines) + "\n"
    (args.out / "gini_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
