"""The suite interface: per-image columns from each batch, then summary rows from those columns.

A suite never aggregates while it runs. It returns per-image values for each batch (so a run can
be resumed, sharded and restricted later to images every compared model gets right), and
``summarize`` derives the long-format result rows from the finished per-image table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from robench.data.imageset import ImageSet
from robench.errors import RobenchError
from robench.models.wrapper import RobenchModel
from robench.registry import Registry

#: The suites by name (``--suite NAME``), filled by ``@SUITES.register(NAME)`` on each suite class.
SUITES: Registry[Any] = Registry("suite")


@dataclass
class Batch:
    """One batch as every suite sees it: inputs in [0, 1], labels, and the clean predictions."""

    x: torch.Tensor  # N×C×H×W float32 in [0, 1]
    y: torch.Tensor  # N int64
    index: np.ndarray  # N dataset indices
    logits: torch.Tensor  # N×K clean logits
    generator: torch.Generator  # seeded from (run seed, batch start): results repeat and resume exactly
    #: ``report(share)``: the share (0..1) of this suite's work on the batch done so far, for progress within a batch
    report: Callable[[float], None] = field(default=lambda share: None, repr=False)

    @property
    def correct(self) -> torch.Tensor:
        """N bool: the clean prediction equals the label."""
        return self.logits.argmax(1) == self.y


def checked_predictions(logits: torch.Tensor, what: str) -> torch.Tensor:
    """``logits.argmax(1)``, refusing NaN/Inf logits (their argmax is an arbitrary class: a silent error count)."""
    if not bool(torch.isfinite(logits).all()):
        raise RobenchError(f"the model outputs NaN or Inf on {what}: its results would be invalid")
    return logits.argmax(1)


class FiniteLogits(torch.nn.Module):
    """Wraps a model for attack libraries (foolbox): raises :class:`RobenchError` on NaN/Inf logits."""

    def __init__(self, model: torch.nn.Module, what: str) -> None:
        super().__init__()
        self.model, self.what = model, what
        self.training = model.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        checked_predictions(logits.detach(), self.what)
        return logits


def result_row(suite: str, test: str, variant: str, param: Any, metric: str, value: float, n: int,
               ci: tuple[float, float] | None = None) -> dict[str, Any]:
    """One row of ``results.csv``."""
    low, high = ci if ci is not None else (np.nan, np.nan)
    return {"suite": suite, "test": test, "variant": variant, "param": "" if param is None else str(param),
            "metric": metric, "value": float(value), "n": int(n), "ci_low": float(low), "ci_high": float(high)}


class Suite(Protocol):
    """What an evaluation runs. ``options`` are recorded in meta.json."""

    name: str

    def options(self) -> dict[str, Any]:
        """The suite's settings, JSON-serialisable (after :meth:`prepare`, with resolved defaults)."""
        ...

    def prepare(self, data: ImageSet) -> None:
        """Resolve settings that depend on the data (image size, content), before any batch runs."""
        ...

    def restore(self, recorded: dict[str, Any]) -> None:
        """Take the data-dependent settings from what :meth:`options` recorded (instead of :meth:`prepare`),
        so that a finished run's table can be summarized again without its images."""
        ...

    def run_batch(self, model: RobenchModel, batch: Batch) -> dict[str, np.ndarray]:
        """Per-image columns for ``batch`` (each an array of length N)."""
        ...

    def summarize(self, per_image: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
        """Result rows (see :func:`result_row`) from the whole per-image table."""
        ...
