"""Clean accuracy of every panel checkpoint through ``robench evaluate``, beside the source's stated figure.

    PYTHONPATH=. python experiments/third_party/accuracy.py [--out accuracy.csv]

CIFAR-10 models on the 1,000 bundled lossless test images (0..999), the MNIST model on the 10,000
MNIST test images. Writes a CSV (file, arch, dataset, n, robench accuracy, stated accuracy, what the
stated figure means, difference in points) and prints it as a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panel import HERE, cli_args, read_manifest  # noqa: E402

from robench.cli import main as robench  # noqa: E402


def measure(row: dict[str, str], work: Path) -> tuple[float, int]:
    """(clean accuracy, images) of one manifest row, from ``robench evaluate --suite clean``."""
    out = work / Path(row["file"]).stem
    code = robench(["evaluate", *cli_args(row), "--suite", "clean", "--out", str(out)])
    if code != 0:
        raise SystemExit(f"robench evaluate failed on {row['file']} (exit {code})")
    results = pd.read_csv(out / "results.csv")
    acc = results.query("suite == 'clean' and metric == 'accuracy' and variant == 'all'").iloc[0]
    return float(acc["value"]), int(acc["n"])


def main() -> None:
    """Measure every row and write the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "accuracy.csv")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in read_manifest():
            accuracy, n = measure(row, Path(tmp))
            stated = float(row["stated_accuracy"]) if row["stated_accuracy"] else None
            rows.append({"file": row["file"], "arch": row["arch"].split(":")[1], "dataset": row["dataset"], "n": n,
                         "robench": round(accuracy, 4), "stated": stated, "stated_meaning": row["stated_meaning"],
                         "diff_points": None if stated is None else round(100 * (accuracy - stated), 2)})
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    print(table.drop(columns="stated_meaning").to_markdown(index=False))


if __name__ == "__main__":
    main()
