#!/usr/bin/env python
"""Time-to-accuracy curves from training logs: test accuracy (clean, and PGD for adversarial runs) against wall minutes.

    .venv/bin/python benchmarks/bench_time_to_accuracy.py \\
        --run "fast, standard=robench/assets/zoo/standard.log.csv" --run "cnn_small, standard=OLD.log.csv" \\
        --out reports/benchmarks/time-to-accuracy

Each ``--run LABEL=LOG`` is a ``robench train`` log (``OUT.log.csv``: one row per epoch with its
wall ``seconds``, including the per-epoch evaluation, and ``test_acc`` / ``test_pgd_acc``). Writes
``OUT.md`` (a summary and every point of the curves) and ``OUT.png`` (the plot, the one copy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from robench.io import write_text_atomic  # noqa: E402
from robench.reports.plots import save_figure  # noqa: E402


def curve(label: str, log: Path) -> pd.DataFrame:
    """One run's curve: label, epoch, minutes (cumulative wall time), clean and PGD test accuracy."""
    df = pd.read_csv(log)
    out = pd.DataFrame({"run": label, "epoch": df["epoch"], "minutes": df["seconds"].cumsum() / 60,
                        "clean": df["test_acc"]})
    out["pgd"] = df["test_pgd_acc"] if "test_pgd_acc" in df else float("nan")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="LABEL=LOG.csv (repeat)")
    p.add_argument("--out", type=Path, required=True, help="output path without suffix")
    p.add_argument("--note", default="", help="a paragraph printed under the title (where the logs come from)")
    args = p.parse_args()
    runs = [r.rsplit("=", 1) for r in args.run]
    curves = pd.concat([curve(label, Path(log)) for label, log in runs], ignore_index=True)
    adversarial = curves["pgd"].notna().any()
    n_runs = curves["run"].nunique()
    fig, axes = plt.subplots(1, 2 if adversarial else 1, figsize=(11 if adversarial else 7, 4 + 0.25 * n_runs),
                             squeeze=False)
    for label, df in curves.groupby("run", sort=False):
        axes[0, 0].plot(df["minutes"], df["clean"], marker="o", label=label)
        if adversarial and df["pgd"].notna().any():
            axes[0, 1].plot(df["minutes"], df["pgd"], marker="o", label=label)
    for ax, what in zip(axes[0], ["clean test accuracy", "PGD-10 test accuracy (ε = 8/255)"]):
        ax.set_xlabel("wall minutes (training + per-epoch evaluation)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize=8, frameon=False)  # below the panels, off the curves
    fig.tight_layout(rect=(0, 0.045 * n_runs, 1, 1))
    save_figure(fig, args.out.parent, args.out.name)
    summary = curves.groupby("run", sort=False).agg(
        epochs=("epoch", "max"), minutes=("minutes", "max"), best_clean=("clean", "max"), best_pgd=("pgd", "max"))
    command = "python benchmarks/bench_time_to_accuracy.py " + " ".join(f'--run "{label}={log}"' for label, log in runs)
    text = "\n".join([
        "# Time to accuracy", "", "Produced by:", "", "```", f"{command} --out {args.out}", "```", "",
        args.note, "", "Test accuracy is the per-epoch figure the trainer logs (its `--eval-limit` JPEG test images).", "",
        summary.to_markdown(floatfmt=".3f"), "", f"![time to accuracy]({args.out.name}.png)", "", "## Every epoch", "",
        curves.to_markdown(index=False, floatfmt=".3f"), ""])
    write_text_atomic(args.out.with_suffix(".md"), text)
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
