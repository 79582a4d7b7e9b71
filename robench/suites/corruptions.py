"""The ``corruptions`` suite (docs/corruptions.md): accuracy under the ImageNet-C corruptions, severities 1–5.

The noise family (gaussian, shot, impulse, speckle) runs as batched torch code on the model's
device with the parameter table that fits the resolution (CIFAR-10-C below 64 px, ImageNet-C
above; ``--corruption-table`` overrides); the other corruptions come from
``imagecorruptions-imaug`` (ImageNet-C parameters), applied per image with per-image seeds in
worker processes and cached on disk per (dataset fingerprint, corruption, severity, seed) as
memory-mapped arrays, so a second model is evaluated without regenerating a single image.
Every image is evaluated (not only the correctly classified ones): the error under a corruption
is compared with the clean error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench.corruptions.library import MIN_SIZE, corrupt_images
from robench.corruptions.names import resolve_corruptions
from robench.corruptions.noise import TORCH_CORRUPTIONS, parameter_table, torch_corrupt
from robench.data.decode import cache_key, cached_array
from robench.data.imageset import ImageSet
from robench.errors import RobenchError
from robench.metrics import bootstrap_ci
from robench.models.wrapper import RobenchModel
from robench.progress import track
from robench.schema import corruption_column
from robench.settings import CorruptionsConfig
from robench.suites.base import SUITES, Batch, checked_predictions, result_row


@SUITES.register("corruptions")
class CorruptionsSuite:
    """Accuracy per corruption and severity, mean corruption error, and the noise family's error."""

    name = "corruptions"

    def __init__(self, seed: int = 0, config: CorruptionsConfig | None = None) -> None:
        self.seed = seed
        self.config = config or CorruptionsConfig()
        self.config.validate()
        self.names = resolve_corruptions(self.config.corruptions)
        self._table = ""
        self._data: ImageSet | None = None
        self._library: dict[tuple[str, int], np.ndarray] = {}
        self._positions: dict[int, int] = {}

    def options(self) -> dict[str, Any]:
        return {**asdict(self.config), "names": self.names, "corruption_table": self._table,  # the resolved table
                "torch_corruptions": [n for n in self.names if self._uses_torch(n)]}

    def _uses_torch(self, name: str) -> bool:
        return self.config.corruption_engine == "torch" and name in TORCH_CORRUPTIONS

    def prepare(self, data: ImageSet) -> None:
        """Pick the parameter table and check the image size; the corrupted images are made on first use.

        Generation waits for the first batch so that a finished run found in ``--out``, or an
        unusable ``--out``, costs no corruption work.
        """
        _, h, w = data.image_shape
        self._table = parameter_table(h, self.config.corruption_table)
        if any(not self._uses_torch(n) for n in self.names) and min(h, w) < MIN_SIZE:
            raise RobenchError(f"imagecorruptions needs images of at least {MIN_SIZE}×{MIN_SIZE} (these are {h}×{w}); "
                               f"use --corruptions noise with the torch engine, or resize with --image-size")
        self._data = data
        self._positions = {int(i): p for p, i in enumerate(data.index)}
        self._library = {}

    def restore(self, recorded: dict[str, Any]) -> None:
        self._table = recorded["corruption_table"]

    def _library_images(self) -> dict[tuple[str, int], np.ndarray]:
        """The library corruptions of the whole set, built or loaded from the cache once per run."""
        data = self._data
        if data is None or self._library:
            return self._library
        fingerprint = data.fingerprint()
        jobs = [(n, s) for n in self.names if not self._uses_torch(n) for s in self.config.severities]
        for name, severity in track(jobs, total=len(jobs), description="corruptions"):
            key = cache_key("corruption", fingerprint, name, severity, self.seed)
            self._library[(name, severity)] = cached_array(
                key, lambda: corrupt_images(np.asarray(data.images), name, severity, seed=self.seed,  # called at once
                                            workers=self.config.workers, positions=data.index),
                folder="corruptions")
        return self._library

    def run_batch(self, model: RobenchModel, batch: Batch) -> dict[str, np.ndarray]:
        library = self._library_images()
        positions = np.array([self._positions[int(i)] for i in batch.index])
        columns = {}
        for name in self.names:
            for severity in self.config.severities:
                if self._uses_torch(name):
                    x = torch_corrupt(batch.x, name, severity, table=self._table, generator=batch.generator)
                else:
                    raw = torch.from_numpy(np.ascontiguousarray(library[(name, severity)][positions]))
                    x = raw.to(batch.x.device).permute(0, 3, 1, 2).float().div_(255.0)
                with torch.no_grad():
                    predicted = checked_predictions(model(x), f"{name} images (severity {severity})")
                    columns[corruption_column(name, severity).name] = (predicted == batch.y).cpu().numpy()
        return columns

    def summarize(self, per_image: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
        """Error rate per corruption and severity, then means over severities, over the noise family and over all
        corruptions; each with a bootstrap interval over images (a mean row's from each image's mean error)."""
        rows: list[dict[str, Any]] = []
        n = len(per_image)
        ci = partial(bootstrap_ci, seed=self.seed)
        wrong: dict[str, np.ndarray] = {}  # per corruption, severities × images: 1 where the image was misclassified

        def mean_row(test: str, variant: str, names: Sequence[str]) -> dict[str, Any]:
            rates = [[float(flags.mean()) for flags in wrong[k]] for k in names]  # each severity's error rate
            return result_row(self.name, test, variant, "mean", "error_rate", float(np.mean(rates)), n,
                              ci(np.mean([wrong[k].mean(axis=0) for k in names], axis=0)))

        for name in self.names:
            source = f"torch/{self._table}" if self._uses_torch(name) else "imagecorruptions/imagenet-c"
            columns = [corruption_column(name, severity) for severity in self.config.severities]
            wrong[name] = np.stack([1.0 - per_image[column.name].to_numpy(dtype=float) for column in columns])
            for column, flags in zip(columns, wrong[name], strict=True):
                rows.append(result_row(self.name, column.test, source, column.param, "error_rate", flags.mean(), n,
                                       ci(flags)))
            rows.append(mean_row(name, source, [name]))
        noise = [k for k in ("gaussian_noise", "shot_noise", "impulse_noise") if k in wrong]
        if noise:
            rows.append(mean_row("noise_family", "gaussian+shot+impulse", noise))
        rows.append(mean_row("all", ",".join(self.names), self.names))
        return rows
