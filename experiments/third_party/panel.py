"""The third-party checkpoint panel: its manifest, and each file loaded as a user would load it.

``manifest.csv`` holds one row per checkpoint (file relative to the panel directory, sha256,
``--arch`` callable from ``examples/third_party_archs.py``, family (models compared with each other),
kind of training (standard, adversarial, certified, mixed, robust-unstated, unstated), architecture
family, mean, std, dataset, source repository@commit and path, licence, training and ε as stated, the
source's stated clean and robust accuracy and what they mean). The panel itself lives outside the
repository: ``$ROBENCH_THIRD_PARTY`` (default ``$ROBENCH_SHARED_DATA/third-party``, with
``$ROBENCH_SHARED_DATA`` defaulting to ``../shared/data`` beside the repository); the MNIST test set
is ``mnist/`` beside the panel.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from robench.models.loading import load_model
from robench.models.wrapper import RobenchModel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MANIFEST = HERE / "manifest.csv"
ARCH_PATH = ROOT / "examples"
SHARED = Path(os.environ.get("ROBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
PANEL = Path(os.environ.get("ROBENCH_THIRD_PARTY", SHARED / "third-party"))
MNIST = PANEL.parent / "mnist"
#: Kinds of training meant to make a model robust (the others: standard, unstated).
ROBUST_KINDS = ("adversarial", "mixed", "certified", "robust-unstated")


def read_manifest() -> list[dict[str, str]]:
    """The manifest's rows, in file order."""
    with open(MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def data_spec(row: dict[str, str], mnist: Path = MNIST) -> str:
    """The ``--data`` spec a row is evaluated on: the bundled lossless CIFAR-10 sample, or MNIST's IDX files."""
    return f"mnist:{mnist}" if row["dataset"] == "mnist" else "sample"


def cli_args(row: dict[str, str], panel: Path = PANEL) -> list[str]:
    """``robench evaluate`` options that load a row's checkpoint (in ``panel``) as it is."""
    return ["--model", str(panel / row["file"]), "--arch", row["arch"], "--arch-path", str(ARCH_PATH),
            "--mean", row["mean"], "--std", row["std"], "--data", data_spec(row, panel.parent / "mnist")]


def load(row: dict[str, str]) -> RobenchModel:
    """A row's checkpoint through robench's loader, the example module and the manifest's mean/std."""
    return load_model(str(PANEL / row["file"]), arch=row["arch"], arch_path=str(ARCH_PATH),
                      mean=tuple(float(v) for v in row["mean"].split(",")),
                      std=tuple(float(v) for v in row["std"].split(",")))
