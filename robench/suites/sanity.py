"""The ``sanity`` suite: the cascading model-parameter randomisation test (MPRT) of the attribution
(Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018; docs/metrics.md).

Per batch: the attribution of the true class on the model, then on a deep copy of it whose layers are
re-initialised one group at a time from the output backwards. After each step every image gets the
Spearman rank correlation and the SSIM between its original and its randomised |attribution| map, and
the pixel Gini of the randomised map. A map that stays similar while the weights it should explain are
replaced does not explain the model: the suite flags the attribution when the mean Spearman correlation
stays above ``mprt_threshold`` at the first step that has randomised ``mprt_verdict_share`` of the layers
(default: all of them, Adebayo's full randomisation).

A **layer** is a module with parameters of its own (frozen ones included) and a ``reset_parameters()``
method; the layers are taken in reverse registration order (``named_modules``), which is the output-first
order for sequential stacks and the usual torchvision/timm models (Quantus' ``top_down``). Buffer-only
modules (BatchNorm without affine parameters, a fitted whitening layer) and modules without
``reset_parameters()`` keep their values.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from robench.attribution import attribute, attribution_options
from robench.data.imageset import ImageSet
from robench.errors import RobenchError
from robench.metrics import bootstrap_ci, gini
from robench.metrics.similarity import SSIM_SIGMA, SSIM_WINDOW, spearman, ssim
from robench.models.wrapper import RobenchModel
from robench.schema import mprt_column, mprt_step, mprt_step_parts, per_image_columns
from robench.settings import SanityConfig, config_record
from robench.suites.base import SUITES, Batch, result_row


def randomisable_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the layers the test re-initialises, output first (see the module docstring)."""
    return [(name, m) for name, m in reversed(list(net.named_modules()))
            if hasattr(m, "reset_parameters") and next(m.parameters(recurse=False), None) is not None]


def layer_seed(seed: int, position: int) -> int:
    """The seed of the re-initialisation of the layer at ``position`` (0 = the output layer)."""
    return seed * 1_000_003 + position


@torch.no_grad()
def reinitialise(layer: nn.Module, seed: int) -> None:
    """Re-draw ``layer``'s own parameters and buffers with its ``reset_parameters()`` under CPU seed ``seed``.

    The draw runs on a CPU copy (so it does not depend on the device) inside a forked RNG (the global
    generator is left as it was), and is then copied into ``layer``.
    """
    fresh = copy.deepcopy(layer).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        fresh.reset_parameters()  # type: ignore[operator]  # nn.Module.__getattr__ is typed Tensor | Module
    for name, value in (*fresh.named_parameters(recurse=False), *fresh.named_buffers(recurse=False)):
        getattr(layer, name).copy_(value)


def step_label(done: int, layers: list[tuple[str, nn.Module]]) -> str:
    """``results.csv`` param of the step that has randomised the top ``done`` layers: ``done/L:deepest layer``."""
    return mprt_step(done, len(layers), layers[done - 1][0] if done else "original")


def randomised_share(label: str) -> float:
    """The share of the layers a :func:`step_label` has randomised."""
    done, total, _ = mprt_step_parts(label)
    return done / total


def _normalised(maps: Tensor) -> Tensor:
    """Non-negative N×C×H×W maps divided by their own maximum (all-zero maps stay zero)."""
    peak = maps.flatten(1).amax(1).clamp_min(torch.finfo(maps.dtype).tiny)
    return maps / peak.view(-1, *([1] * (maps.dim() - 1)))


@SUITES.register("sanity")
class SanitySuite:
    """MPRT: Spearman, SSIM and Gini of the attribution as the model's layers are randomised output first."""

    name = "sanity"

    def __init__(self, seed: int = 0, config: SanityConfig | None = None) -> None:
        self.seed = seed
        self.config = config or SanityConfig()
        self.config.validate()

    def options(self) -> dict[str, Any]:
        return {**config_record(self.config), "map": "abs",
                "ssim": {"window": SSIM_WINDOW, "sigma": SSIM_SIGMA, "data_range": 1.0, "normalise": "max"}}

    def restore(self, recorded: dict[str, Any]) -> None:
        return None  # nothing depends on the data

    def prepare(self, data: ImageSet) -> None:
        if min(data.image_shape[1:]) < SSIM_WINDOW:
            raise RobenchError(f"the sanity suite's SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} "
                               f"pixels, got {data.image_shape[1]}×{data.image_shape[2]}")

    def run_batch(self, model: RobenchModel, batch: Batch) -> dict[str, np.ndarray]:
        cfg = self.config
        options = cfg.attribution_options.keywords()
        device = batch.generator.device
        stochastic = "generator" in attribution_options(cfg.attribution) and "generator" not in options
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=batch.generator, device=device)) if stochastic else 0

        def explain(m: nn.Module) -> Tensor:  # |attribution|; stochastic ones draw the same noise at every step
            if stochastic:
                options["generator"] = torch.Generator(device=device).manual_seed(noise_seed)
            with torch.enable_grad():
                return attribute(cfg.attribution, m, batch.x, batch.y, **options).abs()

        if not randomisable_layers(model.net):
            raise RobenchError("the sanity suite found no layer to randomise (modules with parameters and "
                               "reset_parameters()); TorchScript and torch.export models cannot be re-initialised")
        original = explain(model)
        randomised = copy.deepcopy(model)  # the user's model is never modified
        layers = randomisable_layers(randomised.net)
        columns = {mprt_column(step_label(0, layers), "gini").name: gini(original).double().cpu().numpy()}
        reference = _normalised(original)
        for group in np.array_split(np.arange(len(layers)), min(cfg.mprt_steps, len(layers))):
            for position in group:
                reinitialise(layers[position][1], layer_seed(self.seed, int(position)))
            attr = explain(randomised)
            label = step_label(int(group[-1]) + 1, layers)
            columns[mprt_column(label, "spearman").name] = spearman(original, attr).cpu().numpy()
            columns[mprt_column(label, "ssim").name] = ssim(reference, _normalised(attr)).cpu().numpy()
            columns[mprt_column(label, "gini").name] = gini(attr).double().cpu().numpy()
        return columns

    def summarize(self, per_image: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
        cfg = self.config
        rows: list[dict[str, Any]] = []
        spearman_means: dict[str, tuple[float, int]] = {}
        for col in per_image_columns(per_image.columns, "mprt"):
            values = per_image[col.name].to_numpy(dtype=float)
            values = values[~np.isnan(values)]  # constant maps have no rank correlation
            if len(values):
                rows.append(result_row(self.name, "mprt", cfg.attribution, col.param, col.part, values.mean(),
                                       len(values), bootstrap_ci(values, seed=self.seed)))
                if col.part == "spearman":
                    spearman_means[col.param] = (values.mean(), len(values))
        steps = per_image_columns(per_image.columns, "mprt", "spearman")
        verdict = next((c.param for c in steps if randomised_share(c.param) >= cfg.mprt_verdict_share), None)
        if verdict is not None:  # NaN: no image has a defined correlation at that step
            mean, n = spearman_means.get(verdict, (np.nan, 0))
            rows.append(result_row(self.name, "mprt", cfg.attribution, verdict, "flagged",
                                   float(mean > cfg.mprt_threshold) if n else np.nan, n))
        return rows
