"""The ``clean`` suite: accuracy, error rate and per-class accuracy on unmodified images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from robench.data.imageset import ImageSet
from robench.metrics.error_rates import bootstrap_ci
from robench.models.wrapper import RobenchModel
from robench.suites.base import SUITES, Batch, result_row


@SUITES.register("clean")
class CleanSuite:
    """Clean accuracy with a bootstrap 95% interval, and accuracy per class."""

    name = "clean"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def options(self) -> dict[str, Any]:
        return {"bootstrap": 1000, "confidence": 0.95}

    def restore(self, recorded: dict[str, Any]) -> None:
        return None  # nothing depends on the data

    def prepare(self, data: ImageSet) -> None:
        return None

    def run_batch(self, model: RobenchModel, batch: Batch) -> dict[str, np.ndarray]:
        # The runner already records label, prediction and correctness for every suite's use.
        return {}

    def summarize(self, per_image: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
        correct = per_image["correct"].to_numpy(dtype=bool)
        n = len(correct)
        low, high = bootstrap_ci(correct, seed=self.seed)
        rows = [
            result_row(self.name, "accuracy", "all", None, "accuracy", correct.mean(), n, (low, high)),
            result_row(self.name, "accuracy", "all", None, "error_rate", 1 - correct.mean(), n, (1 - high, 1 - low)),
        ]
        labels = per_image["label"].to_numpy()
        for k, cname in enumerate(classes):
            mask = labels == k
            if mask.any():
                rows.append(result_row(self.name, "accuracy", "class", cname, "accuracy", correct[mask].mean(), mask.sum()))
        return rows
