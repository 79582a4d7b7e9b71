"""The ``inequality`` suite (docs/metrics.md, docs/attacks.md): Gini of attribution maps, inductive noise,
random noise and inductive occlusion, all from one attribution per image.

Per batch: one attribution of the true class for every image, reused by the Gini metrics, the
inductive noise attack and the occlusion attack. Attacks run on the images the model classifies
correctly (both papers' protocol); other images get NaN in the attack columns, so a comparison
can later restrict to images that every compared model gets right.

Several methods (``attribution="saliency,integrated_gradients"``): each is computed once per batch
and gets its own Gini and concentration columns and rows (named by :mod:`robench.schema`: the first
method's under the plain names, the others qualified by the method); the attacks use the first.

With a reference model (``reference_model``), the first method's map of each image is compared with the
reference's map of the same image and class (the same method and options, the same random draws):
``attribution_cosine`` (cosine of the signed maps) and ``attribution_spearman`` (Spearman correlation of
their absolute values); NaN where a map is all zero (constant, for the Spearman correlation).
"""

from __future__ import annotations

import zlib
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from robench.attacks import (
    default_attack_batch,
    default_max_radius,
    inductive_occlusion,
    noise_attack,
    resolve_budgets,
)
from robench.attacks.noise import NoiseKind, NoiseMode, Selection
from robench.attacks.occlusion import OcclusionOrder
from robench.attribution import attribute, attribution_options
from robench.data.imageset import ImageSet
from robench.errors import SettingError
from robench.metrics import (
    bootstrap_ci,
    default_block_size,
    gini_with_flags,
    lorenz_on_grid,
    regional_gini,
    transform_attribution,
)
from robench.metrics.concentration import TOP_FRACTIONS, concentration_columns
from robench.metrics.gini import ValueTransform
from robench.metrics.similarity import spearman
from robench.models.loading import load_model
from robench.models.wrapper import RobenchModel
from robench.schema import (
    alignment_column,
    all_zero_column,
    attribution_variant,
    concentration_column,
    gini_column,
    lorenz_column,
    noise_column,
    occlusion_column,
    occlusion_param,
    occlusion_variant,
    per_image_columns,
    significant,
    top_mass_measure,
)
from robench.settings import InequalityConfig, config_record
from robench.suites.base import SUITES, Batch, result_row

CONCENTRATION_COLUMNS = ("entropy", "participation", *(top_mass_measure(f) for f in TOP_FRACTIONS))
ALIGNMENT_MEASURES = ("cosine", "spearman")  # of the first method's maps with the reference model's
LORENZ_GRID = 21  # population shares 0, 0.05, ..., 1 stored per image


@SUITES.register("inequality")
class InequalitySuite:
    """Gini (pixel and regional), Lorenz curves, INA, RN and IOA from one attribution per image."""

    name = "inequality"

    def __init__(self, seed: int = 0, config: InequalityConfig | None = None) -> None:
        self.seed = seed
        self.config = config or InequalityConfig()
        self.config.validate()
        self.methods = self.config.methods
        self._method_options = self.config.attribution_options.per_method(self.methods)
        self._resolved: dict[str, Any] = {}
        self._reference: RobenchModel | None = None

    def options(self) -> dict[str, Any]:
        return {**config_record(self.config), **self._resolved}

    def prepare(self, data: ImageSet) -> None:
        """Fix the resolution-dependent defaults (block sizes, occlusion radius) and load the reference model,
        recording its name and sha256, before the run."""
        c, h, w = data.image_shape
        numel = c * h * w
        self.config.check_image((c, h, w))  # counts larger than an image, named by their setting
        self._resolved = {
            "block_sum": self.config.region_block or default_block_size(h, "sum"),
            "block_avgpool": min(default_block_size(h, "avgpool"), h, w),
            "occlusion_radius": self.config.occlusion_radius or default_max_radius(h),
            "ina_k": resolve_budgets(self.config.ina_budgets, numel),
            "rn_k": resolve_budgets(self.config.rn_budgets, numel),
            "attack_batch": self.config.attack_batch or default_attack_batch(h, w),
        }
        self._resolved["occlusion_search"] = default_occlusion_search(
            self.config.occlusion_search, self.config.occlusion_count, self._resolved["occlusion_radius"])
        if len(self.methods) > 1:
            self._resolved["attack_attribution"] = self.methods[0]
        if self.config.reference_model:
            self._reference = _load_reference(self.config.reference_model, data)
            self._resolved["reference"] = {"name": self._reference.info.name, "sha256": self._reference.info.sha256}

    def restore(self, recorded: dict[str, Any]) -> None:
        self._resolved = {key: recorded[key] for key in ("block_sum", "block_avgpool", "occlusion_radius", "ina_k", "rn_k")}

    def run_batch(self, model: RobenchModel, batch: Batch) -> dict[str, np.ndarray]:
        cfg, res = self.config, self._resolved
        first, *further = self.methods
        stages = len(self.methods) + 2 + len(cfg.occlusion_fill) + (self._reference is not None)
        done = 0  # for the progress within the batch

        def finished_stage() -> None:
            nonlocal done
            done += 1
            batch.report(done / stages)

        reference_generator = _copy_generator(batch.generator)  # the reference's map: the same random draws
        attr = self._attribute(first, model, batch, batch.generator)  # the attacks' map
        columns = self._gini_columns(attr, None)
        finished_stage()
        if self._reference is not None:
            reference = self._reference.to(batch.x.device)
            columns.update(_alignment_columns(attr, self._attribute(first, reference, batch, reference_generator)))
            finished_stage()
        for name in further:  # each with its own generator: the first method's map and the attacks stay as alone
            columns.update(self._gini_columns(self._attribute(name, model, batch, _method_generator(batch, name)), name))
            finished_stage()
        correct = batch.correct
        keep = correct.nonzero().flatten()
        n = len(batch.y)
        x, y, a = batch.x[keep], batch.y[keep], attr[keep]
        keep_np = keep.cpu().numpy()
        for selection, budgets, test in (("inductive", cfg.ina_budgets, "inductive_noise"),
                                         ("random", cfg.rn_budgets, "random_noise")):
            fooled = np.full((len(budgets), 0), np.nan)
            if len(keep):
                # the settings are text, checked against the attacks' choices by InequalityConfig.validate
                result = noise_attack(model, x, y, a, budgets, selection=cast(Selection, selection),
                                      mode=cast(NoiseMode, cfg.noise_mode), noise=cast(NoiseKind, cfg.noise),
                                      trials=cfg.trials, generator=batch.generator, max_batch=res["attack_batch"])
                fooled = result.fooled.float().mean(1).numpy()  # L×N': fraction of trials fooled
            for level, budget in enumerate(budgets):
                columns[noise_column(test, budget).name] = _scatter(fooled[level], keep_np, n)
            finished_stage()
        for fill in cfg.occlusion_fill:
            if len(keep):
                occ = inductive_occlusion(model, x, y, a, max_count=cfg.occlusion_count,
                                          max_radius=res["occlusion_radius"], fill=fill,
                                          order=cast(OcclusionOrder, cfg.occlusion_order),
                                          search=res["occlusion_search"], max_batch=res["attack_batch"])
                won = occ.fooled.numpy()
                parts = {"fooled": won.astype(float), "area": np.where(won, occ.area.numpy(), np.nan),
                         "queries": occ.queries.numpy().astype(float),
                         "count": np.where(won, occ.count.numpy(), np.nan),
                         "radius": np.where(won, occ.radius.numpy(), np.nan)}
            else:
                parts = dict.fromkeys(("fooled", "area", "queries", "count", "radius"), np.zeros(0))
            for part, values in parts.items():
                columns[occlusion_column(fill, part).name] = _scatter(values, keep_np, n)
            finished_stage()
        return columns

    def _attribute(self, name: str, model: RobenchModel, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """Attribution ``name`` of the batch's true classes (N×C×H×W); stochastic methods draw from ``generator``.

        At most half an attack batch of images goes through one gradient pass (a gradient pass holds the
        activations of every layer); methods with an ``internal_batch_size`` (integrated gradients, SmoothGrad)
        get that bound on their (image, step) inputs unless the run sets one.
        """
        options = dict(self._method_options[name])
        accepted = attribution_options(name)
        if "generator" in accepted:
            options.setdefault("generator", generator)
        per_pass = max(1, self._resolved["attack_batch"] // 2)
        if "internal_batch_size" in accepted:
            options.setdefault("internal_batch_size", per_pass)
        with torch.enable_grad():
            return torch.cat([attribute(name, model, batch.x[i:i + per_pass], batch.y[i:i + per_pass], **options)
                              for i in range(0, len(batch.y), per_pass)])

    def _gini_columns(self, attr: torch.Tensor, further: str | None) -> dict[str, np.ndarray]:
        """The per-image measures of N attribution maps ``attr`` (N×C×H×W): Gini, all-zero flag, concentration,
        and the Lorenz points of the first method; ``further``: the method's name unless it is the first."""
        cfg, res = self.config, self._resolved
        gini_value = cast(ValueTransform, cfg.gini_value)  # checked by InequalityConfig.validate
        values = transform_attribution(attr, gini_value)
        pixel, all_zero = gini_with_flags(values)
        columns = {
            "pixel": pixel.double().cpu().numpy(),
            "region_sum": regional_gini(attr, region="sum", block=res["block_sum"], value=gini_value).double().cpu().numpy(),
            "region_avgpool": regional_gini(attr, region="avgpool", block=res["block_avgpool"],
                                            value=gini_value).double().cpu().numpy(),
        }
        named = {gini_column(param, further).name: v for param, v in columns.items()}
        named[all_zero_column(further).name] = all_zero.cpu().numpy()
        if further is None:
            _, shares = lorenz_on_grid(values.flatten(1), grid_size=LORENZ_GRID)
            shares_np = torch.as_tensor(shares).double().cpu().numpy()
            for i in range(1, LORENZ_GRID - 1):
                column = lorenz_column(i / (LORENZ_GRID - 1))
                named[column.name] = np.array(significant(shares_np[:, i], column.declaration.digits))
        for param, v in concentration_columns(values).items():
            named[concentration_column(param, further).name] = v
        return named

    def summarize(self, per_image: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
        cfg, res = self.config, self._resolved
        correct = per_image["correct"].to_numpy(dtype=bool)
        rows: list[dict[str, Any]] = []
        for name in self.methods:
            rows += self._attribution_rows(per_image, correct, name if name != self.methods[0] else None)
        rows += self._alignment_rows(per_image, correct)
        for col in per_image_columns(per_image.columns, "lorenz"):
            values = per_image.loc[correct, col.name].to_numpy(dtype=float)
            if len(values):
                rows.append(result_row(self.name, "lorenz", f"pixel:{cfg.gini_value}", col.param, "mean_share",
                                       values.mean(), len(values)))
        # the attacks' map: named in the variant when the run lists several methods (one method: as always)
        used = f"/attribution={self.methods[0]}" if len(self.methods) > 1 else ""
        noise_variant = f"{cfg.noise_mode}/{cfg.noise}/trials={cfg.trials}{used}"
        for test, budgets, ks in (("inductive_noise", cfg.ina_budgets, res["ina_k"]),
                                  ("random_noise", cfg.rn_budgets, res["rn_k"])):
            for budget, k in zip(budgets, ks):
                column = noise_column(test, budget)
                values = per_image[column.name].to_numpy(dtype=float)
                values = values[~np.isnan(values)]
                if len(values):
                    rows.append(result_row(self.name, test, noise_variant, column.param, "error_rate",
                                           values.mean(), len(values), bootstrap_ci(values, seed=self.seed)))
                    rows.append(result_row(self.name, test, noise_variant, column.param, "k", k, len(values)))
        for fill in cfg.occlusion_fill:
            fooled = per_image[occlusion_column(fill, "fooled").name].to_numpy(dtype=float)
            attacked = ~np.isnan(fooled)
            if not attacked.any():
                continue
            variant = occlusion_variant(fill, cfg.occlusion_order, used)
            param = occlusion_param(cfg.occlusion_count, res["occlusion_radius"])
            flags = fooled[attacked]
            rows.append(result_row(self.name, "inductive_occlusion", variant, param, "error_rate", flags.mean(),
                                   len(flags), bootstrap_ci(flags, seed=self.seed)))
            success = attacked & (fooled == 1)
            for part in ("area", "queries"):
                values = per_image.loc[success, occlusion_column(fill, part).name].to_numpy(dtype=float)
                rows.append(result_row(self.name, "inductive_occlusion", variant, param, f"mean_{part}",
                                       values.mean() if len(values) else np.nan, len(values)))
        return rows

    def _alignment_rows(self, per_image: pd.DataFrame, correct: np.ndarray) -> list[dict[str, Any]]:
        """Mean (bootstrap CI) and standard deviation of each alignment with the reference model, over the
        correctly classified and over all images (NaN values left out); none without a reference."""
        rows: list[dict[str, Any]] = []
        used = f"/attribution={self.methods[0]}" if len(self.methods) > 1 else ""
        for measure in ALIGNMENT_MEASURES:
            name = alignment_column(measure).name
            if name not in per_image:
                continue
            for subset, mask in (("correct", correct), ("all", np.ones_like(correct))):
                values = per_image.loc[mask, name].to_numpy(dtype=float)
                values = values[~np.isnan(values)]
                if len(values):
                    rows.append(result_row(self.name, "alignment", f"{measure}{used}", subset, "mean", values.mean(),
                                           len(values), bootstrap_ci(values, seed=self.seed)))
                    rows.append(result_row(self.name, "alignment", f"{measure}{used}", subset, "std",
                                           values.std(ddof=0), len(values)))
        return rows

    def _attribution_rows(self, per_image: pd.DataFrame, correct: np.ndarray, further: str | None) -> list[dict[str, Any]]:
        """Gini and concentration rows of one attribution method (``further``: its name unless it is the first)."""
        cfg, res = self.config, self._resolved
        rows: list[dict[str, Any]] = []
        variants = {"pixel": f"pixel:{cfg.gini_value}", "region_sum": f"region_sum:b{res['block_sum']}",
                    "region_avgpool": f"region_avgpool:b{res['block_avgpool']}"}
        variants = {param: attribution_variant(v, further) for param, v in variants.items()}
        for param, variant in variants.items():
            for subset, mask in (("correct", correct), ("all", np.ones_like(correct))):
                values = per_image.loc[mask, gini_column(param, further).name].to_numpy(dtype=float)
                if len(values):
                    ci = bootstrap_ci(values, seed=self.seed)
                    rows.append(result_row(self.name, "gini", variant, subset, "mean", values.mean(), len(values), ci))
                    rows.append(result_row(self.name, "gini", variant, subset, "std", values.std(ddof=0), len(values)))
        if all_zero_column(further).name not in per_image:
            return rows  # a run recorded before the all-zero flag (and the concentration measures) has no more
        all_zero = per_image[all_zero_column(further).name]
        rows.append(result_row(self.name, "gini", variants["pixel"], "all", "all_zero_maps", all_zero.sum(), len(per_image)))
        rows.append(result_row(self.name, "gini", variants["pixel"], "all", "all_zero_share",
                               all_zero.mean() if len(per_image) else np.nan, len(per_image)))
        nonzero = ~all_zero.to_numpy(dtype=bool)
        for subset, mask in (("correct_nonzero", correct & nonzero), ("all_nonzero", nonzero)):
            values = per_image.loc[mask, gini_column("pixel", further).name].to_numpy(dtype=float)
            if len(values):  # the Gini mean without the convention-0 all-zero maps
                rows.append(result_row(self.name, "gini", variants["pixel"], subset, "mean", values.mean(),
                                       len(values), bootstrap_ci(values, seed=self.seed)))
        for measure in CONCENTRATION_COLUMNS:
            if concentration_column(measure, further).name not in per_image:
                continue  # a run recorded before the concentration measures
            for subset, mask in (("correct", correct), ("all", np.ones_like(correct))):
                values = per_image.loc[mask, concentration_column(measure, further).name].to_numpy(dtype=float)
                values = values[~np.isnan(values)]  # all-zero maps have no distribution
                if len(values):
                    rows.append(result_row(self.name, "concentration", attribution_variant(f"{measure}:{cfg.gini_value}",
                                                                                           further),
                                           subset, "mean", values.mean(), len(values), bootstrap_ci(values, seed=self.seed)))
        return rows


def _load_reference(spec: str, data: ImageSet) -> RobenchModel:
    """The reference model ``spec`` (on the CPU, eval mode), refused unless it takes the data's images and
    outputs its class count."""
    reference = load_model(spec)
    c, h, w = data.image_shape
    size = reference.info.input_size
    if size is not None and tuple(size) != (c, h, w):
        raise SettingError("reference_model", f"{spec} takes {'×'.join(map(str, size))} images but the data's are "
                                              f"{c}×{h}×{w}")
    try:
        with torch.no_grad():
            classes = reference(data.batch(0, 1)[0]).shape[-1]
    except Exception as exc:  # any failure of the reference on the data's images is a mismatch
        raise SettingError("reference_model", f"{spec} fails on a {c}×{h}×{w} image from the data: "
                                              f"{str(exc).splitlines()[0][:200]}") from None
    if classes != len(data.classes):
        raise SettingError("reference_model", f"{spec} outputs {classes} classes but the data has {len(data.classes)}")
    return reference


def _alignment_columns(attr: torch.Tensor, reference_attr: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image, the cosine of the signed maps ``attr`` and ``reference_attr`` (N×C×H×W each, flattened) and
    the Spearman correlation of their absolute values; NaN where a map is all zero (or constant)."""
    a, b = attr.detach().flatten(1).double(), reference_attr.detach().flatten(1).double()
    zero = (a == 0).all(1) | (b == 0).all(1)
    values = {"cosine": F.cosine_similarity(a, b, dim=1).masked_fill(zero, float("nan")),
              "spearman": spearman(a.abs(), b.abs())}
    return {alignment_column(measure).name: values[measure].cpu().numpy() for measure in ALIGNMENT_MEASURES}


def _copy_generator(generator: torch.Generator) -> torch.Generator:
    """A new generator in the state ``generator`` is in now: it makes the same draws."""
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


#: The largest occlusion grid (N·R steps) that ``occlusion_search="auto"`` sweeps: 30 at 32 px, 200 at 224 px.
AUTO_SWEEP_STEPS = 50


def default_occlusion_search(search: str, count: int, radius: int) -> str:
    """The occlusion search a run uses: ``search`` unless ``auto``, which sweeps grids of up to
    :data:`AUTO_SWEEP_STEPS` steps (the papers' loop, where it is cheap) and bisects larger ones."""
    if search != "auto":
        return search
    return "sweep" if count * radius <= AUTO_SWEEP_STEPS else "bisect"


def _method_generator(batch: Batch, name: str) -> torch.Generator:
    """A generator for a further attribution method, seeded from the batch's seed and the method's name."""
    seed = zlib.crc32(f"{batch.generator.initial_seed()}/{name}".encode())
    return torch.Generator(device=batch.generator.device).manual_seed(seed)


def _scatter(values: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Place per-attacked-image ``values`` at ``positions`` of a length-``n`` array filled with NaN."""
    out = np.full(n, np.nan)
    out[positions] = values
    return out
