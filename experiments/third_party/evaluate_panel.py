#!/usr/bin/env python
"""Evaluate the whole third-party panel with robench: one resumable command.

    PYTHONPATH=. python experiments/third_party/evaluate_panel.py \
        --panel ../shared/data/third-party --out reports/third-party

For every manifest row (``manifest.csv``), ``robench evaluate`` with the inequality (saliency Gini,
inductive and random noise, inductive occlusion), adversarial (PGD-10 and FGSM at two radii) and
noise-corruption suites into ``OUT/runs/NAME`` (NAME: the file's stem):

- CIFAR-10 models on the 1,000 bundled lossless test images, ε = 2/255 and 8/255;
- the MNIST model on 1,000 seeded images of the official MNIST test set (``mnist/`` beside the
  panel), ε = 0.1 and 0.3 (its training ε). The noise corruptions are the CIFAR-10-C table applied
  per value (robench's rule below 64 px): well defined on 28×28 grayscale, but not MNIST-C.

Rows whose training is robust (kind adversarial, mixed, certified or robust-unstated) also get
AutoAttack (standard) at the same radii on 200 of those images, in ``OUT/runs/NAME-autoattack``;
every main run comes before the first AutoAttack run.
A run whose ``meta.json`` exists is kept; an interrupted one resumes (run the same command again).
Then: the comparison report of the CIFAR-10 runs (``OUT/compare``), one leaderboard row per model
(``third-party/NAME``, with the manifest's provenance as its model card) and the cross-lab report
``OUT/README.md`` (``report_panel.py``). ``--stage report`` does only the last three.

Why the CLI, in this process, rather than ``robench.evaluate``: the panel tests the path a user with their own
checkpoint takes, which is the command line (``--arch module:callable --arch-path``, the manifest's mean/std as
flags), and the command recorded in ``OUT/commands.json`` is then exactly the one that ran.

The panel directory: ``--panel``, else ``$ROBENCH_THIRD_PARTY``, else ``../shared/data/third-party``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panel import PANEL, ROBUST_KINDS, cli_args, read_manifest  # noqa: E402
from report_panel import write_report  # noqa: E402

from robench.cli import main as robench  # noqa: E402
from robench.reports import leaderboard  # noqa: E402
from robench.reports.report import build_report  # noqa: E402

#: l∞ radii (pixel units) of the adversarial suite per dataset.
EPS = {"cifar10": "2/255,8/255", "mnist": "0.1,0.3"}
IMAGES = 1000  # per model: all of the CIFAR-10 sample; a seeded subset of the MNIST test set
AUTOATTACK_IMAGES = 200
SUITES = ("--suite", "inequality,adversarial,corruptions", "--pgd-steps", "10", "--corruptions", "noise")


def run_name(row: dict[str, str]) -> str:
    """The run directory's name of a manifest row: its file's stem (``resnet32-d509ac18``)."""
    return Path(row["file"]).stem


def evaluations(row: dict[str, str], limit: int | None = None) -> list[tuple[str, list[str]]]:
    """(run name, ``robench evaluate`` options beyond the model's) of every evaluation of a row.

    ``limit`` caps the image count of every evaluation (for quick checks).
    """
    images = min(IMAGES, limit or IMAGES)
    # the CIFAR-10 sample has exactly 1,000 images: no --limit keeps them in file order
    count = [] if row["dataset"] == "cifar10" and limit is None else ["--limit", str(images)]
    common = ["--seed", "0", "--eps", EPS[row["dataset"]]]
    out = [(run_name(row), [*count, *common, *SUITES])]
    if row["kind"] in ROBUST_KINDS:
        attacked = min(AUTOATTACK_IMAGES, images)
        out.append((f"{run_name(row)}-autoattack", ["--limit", str(attacked), *common, "--suite", "adversarial",
                                                    "--pgd-steps", "10", "--autoattack"]))
    return out


def model_card(row: dict[str, str]) -> dict[str, str]:
    """The leaderboard provenance of a manifest row (:func:`robench.reports.leaderboard.provenance`)."""
    meanings = [f"clean: {row['stated_meaning']}"]
    if row["stated_robust_accuracy"]:
        meanings.append(f"robust: {row['stated_robust_meaning']}")
    return {"origin": "third-party", "source": f"{row['source']} {row['source_path']}", "licence": row["licence"],
            "training_stated": row["training"], "eps_stated": row["eps_stated"],
            "stated_clean_accuracy": row["stated_accuracy"], "stated_robust_accuracy": row["stated_robust_accuracy"],
            "stated_meaning": "; ".join(meanings)}


def evaluate(args: list[str], log: list[dict]) -> None:
    """``robench ARGS`` in this process, recording the command and its wall time; exits on failure."""
    start = time.time()
    print("$ robench " + shlex.join(args), flush=True)
    if (code := robench(args)) != 0:
        raise SystemExit(f"robench failed (exit {code}): robench {shlex.join(args)}")
    log.append({"command": "robench " + shlex.join(args), "seconds": round(time.time() - start, 1)})


def main(argv: list[str] | None = None) -> int:
    """Evaluate the rows not finished yet, then write the comparison, the leaderboard rows and the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--panel", type=Path, default=PANEL, help="Panel directory (default $ROBENCH_THIRD_PARTY).")
    p.add_argument("--out", type=Path, default=Path("reports/third-party"))
    p.add_argument("--stage", choices=("all", "evaluate", "report"), default="all",
                   help="evaluate: only the evaluations; report: only the comparison, leaderboard rows and report.")
    p.add_argument("--only", default=None, help="Comma-separated substrings of manifest file names to evaluate.")
    p.add_argument("--limit", type=int, default=None, help="Cap every evaluation's image count (quick checks).")
    p.add_argument("--no-autoattack", action="store_true", help="Skip the AutoAttack runs (a first pass).")
    p.add_argument("--leaderboard", type=Path, default=Path("reports/leaderboard.csv"))
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    rows = read_manifest()
    if args.only:
        wanted = args.only.split(",")
        rows = [r for r in rows if any(w in r["file"] for w in wanted)]
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "commands.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    try:
        todo = [(row, name, options) for row in rows for name, options in evaluations(row, args.limit)
                if not (args.no_autoattack and name.endswith("-autoattack"))]
        todo.sort(key=lambda job: job[1].endswith("-autoattack"))  # every model's main run before AutoAttack
        for row, name, options in todo if args.stage in ("all", "evaluate") else []:
            if not (runs / name / "meta.json").exists():
                evaluate(["evaluate", *cli_args(row, args.panel), *options, "--device", args.device,
                          "--out", str(runs / name)], log)
    finally:
        log_path.write_text(json.dumps(log, indent=1) + "\n")
    if args.stage == "evaluate":
        return 0
    done = [r for r in read_manifest() if (runs / run_name(r) / "meta.json").exists()]
    cifar = [runs / run_name(r) for r in done if r["dataset"] == "cifar10"]
    if cifar:
        build_report(cifar, args.out / "compare", title="Third-party CIFAR-10 panel: every model on the 1,000 "
                     "lossless sample images", examples=False)
    for row in done:
        for message in leaderboard.add_run(runs / run_name(row), name=f"third-party/{run_name(row)}",
                                           path=args.leaderboard, card=model_card(row)):
            print(message, flush=True)
    print(f"report: {write_report(runs, args.out)}")
    missing = [run_name(r) for r in read_manifest() if not (runs / run_name(r) / "meta.json").exists()]
    if missing:
        print(f"not evaluated yet ({len(missing)}): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
