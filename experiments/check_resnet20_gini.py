#!/usr/bin/env python
"""Issue check: the inequality suite on the third-party ResNet-20 (1,000 lossless CIFAR-10 test
images) and its mean pixel Gini of |saliency| on correctly classified images, next to an
independent computation (Captum's Saliency and the mean-absolute-difference Gini in NumPy).

    .venv/bin/python experiments/check_resnet20_gini.py --checkpoint ../shared/data/foreign-checkpoints/resnet20-12fca82f.th \
        --out reports/resnet20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robench.gini_check import saliency_gini

ROOT = Path(__file__).resolve().parents[1]
NORM = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", default="reports/resnet20")
    args = parser.parse_args()
    out = Path(args.out)
    command = [sys.executable, "-m", "robench.cli", "evaluate", "--model", args.checkpoint,
               "--arch", "cifar_resnet20:resnet20", "--arch-path", str(ROOT / "examples" / "user_arch"), *NORM,
               "--data", "sample", "--suite", "inequality", "--out", str(out / "run")]
    subprocess.run(command, check=True)

    from robench.data import load_dataset
    from robench.models.loading import load_model

    model = load_model(args.checkpoint, arch="cifar_resnet20:resnet20", arch_path=str(ROOT / "examples" / "user_arch"),
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)).eval()
    data = load_dataset("sample")
    ginis, correct = [], []
    for start in range(0, len(data), 100):
        x, y = data.batch(start, min(start + 100, len(data)))
        values, formula = saliency_gini(model, x, y)
        assert formula == "mean absolute difference", formula  # 3×32×32 maps: the pairwise formula
        ginis += values.tolist()
        with torch.no_grad():
            correct += (model(x).argmax(1) == y).tolist()
    independent = float(np.mean(np.array(ginis)[np.array(correct)]))
    results = pd.read_csv(out / "run" / "results.csv", dtype={"param": str})
    row = results.query("test == 'gini' and variant == 'pixel:abs' and param == 'correct' and metric == 'mean'").iloc[0]
    report = (
        "# ResNet-20 (third-party, standard training): inequality suite check\n\n"
        f"Command: `{' '.join(['python', *command[1:]])}` then the independent computation in "
        "`experiments/check_resnet20_gini.py` (Captum `Saliency(abs=True)` and the mean-absolute-difference Gini in NumPy).\n\n"
        f"| quantity | robench | independent |\n|---|---|---|\n"
        f"| mean pixel Gini of \\|saliency\\|, correctly classified images (n = {int(row['n'])}) | "
        f"{row['value']:.6f} | {independent:.6f} |\n\n"
        f"Absolute difference: {abs(row['value'] - independent):.2e}.\n"
    )
    (out / "gini_check.md").write_text(report)
    print(report)
    return 0 if abs(row["value"] - independent) < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
