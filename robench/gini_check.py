#!/usr/bin/env python
"""Independent check of the pixel Gini in finished runs: Captum's Saliency + a Gini robench did not compute.

    .venv/bin/python -m robench.gini_check RUN_DIR [RUN_DIR ...] --images 100 --out gini_check.md

For each run directory (written by ``robench evaluate`` with the inequality suite and saliency),
reloads the model and images the way the run recorded them (the model from meta.json's
``model_loading``, test-time flip included: robench.reports.examples.reload_model; the checkpoint's
sha256 and the dataset's fingerprint are checked), takes the first IMAGES correctly classified images, recomputes
|∂ logit_y / ∂ x| with Captum (not robench's attribution code), and the Gini of each map in float64
by a formula robench does not use: the mean absolute difference Σ_ij |a_i − a_j| / (2 n² mean)
for maps of up to ``--mad-limit`` entries, Quantus' ``Sparseness`` above that (the pairwise sum is
O(n²): a 3×224×224 map has 2·10¹⁰ pairs). Compares with the ``gini_pixel`` column robench wrote to
per_image.csv.gz; exit 1 if any model's mean differs by 5e-4 or more (not equal to three decimals).
This is how a third-party checkpoint's Gini is checked (docs/third-party.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 5e-4  # "equal to three decimals"
MAD_LIMIT = 20_000  # largest map (entries) for the O(n²) pairwise formula


def mad_gini(values: np.ndarray) -> float:
    """Σ_ij |a_i − a_j| / (2 n² mean) of non-negative ``values``, in float64, without sorting."""
    v = values.astype(np.float64).ravel()
    diffs = sum(np.abs(v[i:i + 512, None] - v[None, :]).sum() for i in range(0, v.size, 512))
    return float(diffs / (2 * v.size**2 * v.mean()))


def quantus_gini(maps: np.ndarray) -> np.ndarray:
    """Quantus ``Sparseness`` (abs, not normalised) of N maps (it adds 1e-7 to every entry)."""
    import quantus

    metric = quantus.Sparseness(abs=True, normalise=False, disable_warnings=True, display_progressbar=False)
    dummy = np.zeros((len(maps), *maps.shape[1:]), dtype=np.float32)
    return np.asarray(metric(model=None, x_batch=dummy, y_batch=np.zeros(len(maps), dtype=np.int64),
                             a_batch=maps.astype(np.float32), channel_first=True, batch_size=len(maps)))


def independent_gini(maps: np.ndarray, mad_limit: int) -> tuple[np.ndarray, str]:
    """Gini of each of N non-negative maps, and the name of the formula used."""
    if maps[0].size <= mad_limit:
        return np.array([mad_gini(m) for m in maps]), "mean absolute difference"
    return quantus_gini(maps), "Quantus Sparseness"


def saliency_gini(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  mad_limit: int = MAD_LIMIT) -> tuple[np.ndarray, str]:
    """Captum's |∂ logit_y / ∂ x| for each image, and its Gini by :func:`independent_gini`."""
    from captum.attr import Saliency

    attr = Saliency(model).attribute(x.requires_grad_(True), target=y, abs=True).detach().numpy()
    return independent_gini(attr, mad_limit)


def check_run(run_dir: Path, images: int, batch: int, mad_limit: int) -> dict[str, object]:
    """Robench's and the independent mean Gini of the first ``images`` correctly classified images."""
    from robench.reports.examples import reload_images, reload_model
    from robench.run import load_run
    from robench.schema import gini_column

    run = load_run(run_dir)
    pixel = gini_column("pixel").name
    if pixel not in run.per_image:
        raise SystemExit(f"{run_dir}: no gini_pixel column (run the inequality suite)")
    if run.attributions[:1] != ("saliency",):
        raise SystemExit(f"{run_dir}: evaluated with attribution {','.join(run.attributions)!r}; this check recomputes "
                         "saliency (listed first)")
    rows = np.flatnonzero(run.per_image["correct"].astype(bool).to_numpy())[:images]
    model = reload_model(run).eval()
    independent, formula = [], ""
    for start in range(0, len(rows), batch):
        values, formula = saliency_gini(model, *reload_images(run, rows[start:start + batch]), mad_limit)
        independent.append(values)
    ours = run.per_image[pixel].to_numpy()[rows].astype(np.float64)
    theirs = np.concatenate(independent)
    return {"name": run.name, "images": len(rows), "robench": float(ours.mean()), "independent": float(theirs.mean()),
            "max_delta": float(np.abs(theirs - ours).max()), "formula": formula,
            "equal": abs(float(theirs.mean()) - float(ours.mean())) < TOLERANCE}


def render(results: list[dict[str, object]], command: str, images: int) -> str:
    lines = ["# Pixel Gini: robench vs an independent computation", "",
             f"`{command}`: for the first {images} correctly classified images of each model, Captum "
             "`Saliency(abs=True)` on the true-class logit and a Gini robench does not compute (float64), against "
             "robench's `gini_pixel` in per_image.csv.gz (written with 6 significant digits).", "",
             "| model | images | mean Gini, robench | mean Gini, independent | max per-image \\|Δ\\| | formula | "
             "equal to 3 decimals |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['images']} | {r['robench']:.6f} | {r['independent']:.6f} | {r['max_delta']:.1e} | "
              f"{r['formula']} | {'yes' if r['equal'] else 'NO'} |" for r in results]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories written by robench evaluate")
    p.add_argument("--images", type=int, default=100, help="correctly classified images per model")
    p.add_argument("--batch", type=int, default=50, help="images per Captum call")
    p.add_argument("--mad-limit", type=int, default=MAD_LIMIT,
                   help="largest map (entries) for the pairwise formula; larger maps use Quantus Sparseness")
    p.add_argument("--out", type=Path, help="write the Markdown table here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = [check_run(run, args.images, args.batch, args.mad_limit) for run in args.runs]
    shown = " ".join(["robench/gini_check.py", *map(str, args.runs), "--images", str(args.images),
                      *(["--out", str(args.out)] if args.out else [])])
    text = render(results, f".venv/bin/python {shown}", args.images)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0 if all(r["equal"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
