"""The columns of ``results.csv``, shared by the suites that write it and the reports that read it back.

Also the one declaration of the suites' per-image columns (:data:`FAMILIES`: each family's name template,
dtype, meaning and the ``results.csv`` rows a column feeds): the suites name their columns by its builders
(:func:`gini_column`, :func:`noise_column`, :func:`occlusion_column`, ...), every reader of ``per_image.csv.gz``
asks :func:`describe_column` what a column holds instead of parsing names, and the settings that rows keep in
their variant or param (occlusion fill, order and limits, model-randomisation steps, top-mass fractions) are
formatted and read back here only. Kept free of torch so that readers (``robench leaderboard``,
``robench compare``) start fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

RESULT_COLUMNS = ["suite", "test", "variant", "param", "metric", "value", "n", "ci_low", "ci_high"]


# ------------------------------------------------------------------------------------------- per_image.csv.gz


@dataclass(frozen=True)
class ResultsRow:
    """The ``results.csv`` rows a per-image column feeds, by field: ``test`` and ``metric``; ``variant``: the
    variant's leading part (the whole variant, or what comes before a ``/`` or ``:``; e.g. ``pixel`` for
    ``pixel:abs``, ``fill=0.5`` for ``fill=0.5/count_first``); ``param``: exactly. None: any (set by the run's
    settings, or one row per subset ``correct`` / ``all``)."""

    test: str
    metric: str
    variant: str | None = None
    param: str | None = None

    def select(self, results: Any) -> Any:
        """The matching rows of a ``results.csv`` frame (:data:`RESULT_COLUMNS`), in their order."""
        keep = (results["test"] == self.test) & (results["metric"] == self.metric)
        if self.variant is not None:
            variant = results["variant"].astype(str)
            keep &= ((variant == self.variant) | variant.str.startswith(self.variant + "/")
                     | variant.str.startswith(self.variant + ":"))
        if self.param is not None:
            keep &= results["param"].astype(str) == self.param
        return results[keep]


@dataclass(frozen=True)
class PerImageColumn:
    """One suite column of ``per_image.csv.gz``: its family (:data:`FAMILIES`), test, parameter and part.

    ``test`` and ``param`` are those of the ``results.csv`` rows the column feeds (:attr:`row`; a corruption's
    column: the corruption and the severity), except for the attribution measures (``param``: the measure, which
    the rows name in their variant) and occlusion (``param``: the fill, which the rows name in their variant:
    :func:`occlusion_fill`).
    ``part``: ``value`` (a measure, e.g. a Gini, or the ``alignment`` of the map with a reference model's:
    param ``cosine`` of the signed maps, ``spearman`` of their absolute values), ``share`` (a Lorenz point), ``fooled`` (1 = the attack
    changed a correct prediction), ``robust`` (1 = still correct under the attack), ``correct`` (1 =
    still correct on the corrupted image), ``area`` / ``queries`` / ``count`` / ``radius`` (of a successful
    occlusion), ``all_zero`` (1 = the attribution map is all zero), ``sanity`` (a gradient-masking check's own flag:
    still correct under PGD at ε = 0.5), ``spearman`` / ``ssim`` (similarity of the attribution map before
    and after a model-randomisation step) and ``gini`` (pixel Gini of the map at that step). NaN: the image
    was not attacked (or its similarity is undefined).
    ``attribution``: for a measure of an attribution map, the method when it is not the run's first one
    (the first, whose map the attacks use, has the plain names: ``gini_pixel``; a further method
    ``gini_pixel[integrated_gradients]``); None otherwise.
    """

    name: str
    family: str
    test: str
    param: str
    part: str
    attribution: str | None = None

    @property
    def declaration(self) -> ColumnFamily:
        return FAMILIES[self.family]

    @property
    def dtype(self) -> str:
        """``bool`` (a 0/1 flag; NaN where the image was not attacked) or ``float``."""
        return self.declaration.dtype(self.part)

    @property
    def meaning(self) -> str:
        """One line on what a value is."""
        return self.declaration.meaning(self)

    @property
    def row(self) -> ResultsRow | None:
        """The ``results.csv`` rows this column feeds; None for a column no row summarises (occlusion count/radius)."""
        return self.declaration.row(self)

    @property
    def setting(self) -> str:
        """The column's setting as the comparison tables key it: its ``param``; for occlusion the fill as the
        rows' variant names it (``fill=0.5``)."""
        return occlusion_fill(self.param) if self.family == "inductive_occlusion" else self.param

    def errors(self, values: Any) -> Any:
        """Per-image error flags (1 = fooled or wrong) from this column's values; ``fooled`` columns as they are."""
        return 1.0 - values if self.part in ("robust", "correct") else values

    @property
    def inequality_sign(self) -> int:
        """+1 when a larger value means a more unequal map (Gini, top-k mass), -1 when a smaller one does
        (normalised entropy, participation ratio): multiply by it to rank by inequality."""
        return -1 if self.test == "concentration" and self.param in LOWER_IS_MORE_UNEQUAL else 1


#: Concentration measures that fall as a map gets more unequal (docs/metrics.md).
LOWER_IS_MORE_UNEQUAL = ("entropy", "participation")


#: Significant digits of the floats written to a run's files (results.csv, per_image.csv.gz) and to the tables
#: built from them (comparison, rankings, leaderboard): :data:`FLOAT_FORMAT`.
STORED_DIGITS = 6
FLOAT_FORMAT = f"%.{STORED_DIGITS}g"
#: Significant digits of a per-image Lorenz point: plot material (the mean curve of the common-correct images),
#: where 1e-4 relative is far below what a plot shows; 4 digits take a fifth off a run's per-image file.
LORENZ_DIGITS = 4


def significant(values: Iterable[float], digits: int) -> list[float]:
    """Each of ``values`` to ``digits`` significant digits (NaN kept), by way of the :data:`STORED_DIGITS` a run's
    files write, so that rounding a value read back from a file gives what rounding the value itself gave."""
    return [v if v != v else float(f"{float(f'{v:.{STORED_DIGITS}g}'):.{digits}g}") for v in map(float, values)]


@dataclass(frozen=True)
class ColumnFamily:
    """One family of per-image columns, declared once: the name ``template`` (fields ``{test}``, ``{param}``,
    ``{part}``, each matched by its pattern in ``fields`` when reading a name; a field not in the template is
    fixed in ``fixed``), whether a further attribution method qualifies the name (``[method]``), the dtype and
    meaning of each part, the ``results.csv`` rows a column feeds, and the significant ``digits`` its suite keeps
    (:data:`STORED_DIGITS`, what a run's files write, unless fewer serve the column's use: :func:`significant`)."""

    key: str
    template: str
    fields: dict[str, str]
    fixed: dict[str, str]
    meanings: dict[str, str]
    rows: Callable[[PerImageColumn], ResultsRow | None]
    qualified: bool = False
    flags: tuple[str, ...] = ()
    digits: int = STORED_DIGITS

    def dtype(self, part: str) -> str:
        return "bool" if part in self.flags else "float"

    def meaning(self, column: PerImageColumn) -> str:
        return self.meanings[column.part].format(test=column.test, param=column.param, part=column.part)

    def row(self, column: PerImageColumn) -> ResultsRow | None:
        return self.rows(column)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The names of this family (derived from ``template``), with the optional ``[method]`` qualifier."""
        text = re.escape(self.template)
        for field, pattern in self.fields.items():
            text = text.replace(re.escape("{" + field + "}"), f"(?P<{field}>{pattern})")
        return re.compile(text + (r"(?:\[(?P<attribution>\w+)\])?" if self.qualified else ""))

    def column(self, attribution: str | None = None, **fields: str) -> PerImageColumn:
        """The column of these field values: its name by ``template``."""
        values = {**self.fixed, **fields}
        name = self.template.format(**values) + (f"[{attribution}]" if attribution else "")
        return PerImageColumn(name, self.key, values["test"], values["param"], values["part"], attribution)


def _attribution_variant_row(metric: str, param: str | None = None) -> Callable[[PerImageColumn], ResultsRow]:
    return lambda c: ResultsRow(c.test, metric, attribution_variant(c.param, c.attribution), param)


_OCCLUSION_METRICS = {"fooled": "error_rate", "area": "mean_area", "queries": "mean_queries"}

#: Every family of suite columns, in the order :func:`describe_column` tries them; the only place that reads or
#: writes per-image column names.
FAMILIES: dict[str, ColumnFamily] = {f.key: f for f in [
    ColumnFamily("gini", "gini_{param}", {"param": r"[^\[\]]+"}, {"test": "gini", "part": "value"},
                 {"value": "{param} Gini of the attribution map"},
                 _attribution_variant_row("mean"), qualified=True),
    ColumnFamily("concentration", "{param}", {"param": r"entropy|participation|top_mass@[^\[\]]+"},
                 {"test": "concentration", "part": "value"},
                 {"value": "concentration of the attribution map: {param}"},
                 _attribution_variant_row("mean"), qualified=True),
    ColumnFamily("lorenz", "lorenz@{param}", {"param": r"[^\[\]]+"}, {"test": "lorenz", "part": "share"},
                 {"share": "share of the total |attribution| held by the smallest {param} of the entries"},
                 lambda c: ResultsRow("lorenz", "mean_share", "pixel", c.param), qualified=True,
                 digits=LORENZ_DIGITS),
    ColumnFamily("all_zero", "attribution_all_zero", {}, {"test": "gini", "param": "pixel", "part": "all_zero"},
                 {"all_zero": "1 = the attribution map is all zero (Gini 0 by convention)"},
                 _attribution_variant_row("all_zero_share", "all"), qualified=True, flags=("all_zero",)),
    ColumnFamily("mprt", "mprt[{param}]_{part}", {"param": r".+", "part": r"spearman|ssim|gini"}, {"test": "mprt"},
                 {"spearman": "Spearman correlation of the map with the original after randomisation step {param}",
                  "ssim": "SSIM of the map with the original after randomisation step {param}",
                  "gini": "pixel Gini of the map after randomisation step {param}"},
                 lambda c: ResultsRow("mprt", c.part, None, c.param)),
    ColumnFamily("inductive_noise", "ina@{param}", {"param": r".+"}, {"test": "inductive_noise", "part": "fooled"},
                 {"fooled": "share of noise trials on the top-{param} attribution entries that fooled the model"},
                 lambda c: ResultsRow(c.test, "error_rate", None, c.param)),
    ColumnFamily("random_noise", "rn@{param}", {"param": r".+"}, {"test": "random_noise", "part": "fooled"},
                 {"fooled": "share of noise trials on {param} random entries that fooled the model"},
                 lambda c: ResultsRow(c.test, "error_rate", None, c.param)),
    ColumnFamily("inductive_occlusion", "ioa[{param}]_{part}",
                 {"param": r".+", "part": r"fooled|area|queries|count|radius"}, {"test": "inductive_occlusion"},
                 {"fooled": "1 = occlusion with fill {param} fooled the model",
                  "area": "occluded area of the successful occlusion (fill {param})",
                  "queries": "model queries of the occlusion search (fill {param})",
                  "count": "patch count of the successful occlusion (fill {param})",
                  "radius": "patch radius of the successful occlusion (fill {param})"},
                 lambda c: (ResultsRow(c.test, _OCCLUSION_METRICS[c.part], occlusion_fill(c.param))
                            if c.part in _OCCLUSION_METRICS else None), flags=("fooled",)),
    ColumnFamily("robust", "{test}@{param}", {"test": r"pgd|fgsm|autoattack", "param": r".+"}, {"part": "robust"},
                 {"robust": "1 = still correct under {test} at ε = {param}"},
                 lambda c: ResultsRow(c.test, "robust_accuracy", None, c.param), flags=("robust",)),
    ColumnFamily("corruption", "corr[{test}/{param}]", {"test": r"[^/\]]+", "param": r"\d+"}, {"part": "correct"},
                 {"correct": "1 = still correct under {test} at severity {param}"},
                 lambda c: ResultsRow(c.test, "error_rate", None, c.param), flags=("correct",)),
    ColumnFamily("sanity", "pgd_large_eps", {}, {"test": "sanity", "param": "large_eps_accuracy", "part": "sanity"},
                 {"sanity": "1 = still correct under PGD at a very large ε (gradient-masking check)"},
                 lambda c: ResultsRow("sanity", "robust_accuracy", "large_eps_accuracy"), flags=("sanity",)),
    ColumnFamily("alignment", "attribution_{param}", {"param": r"cosine|spearman"},
                 {"test": "alignment", "part": "value"},
                 {"value": "{param} of the attribution map with the reference model's"},
                 lambda c: ResultsRow("alignment", "mean", c.param)),
]}


# The builders: every suite column is named by one of these (the suites write by them, the reports read by them).

def number_label(value: float | int | str) -> str:
    """A budget, fill or severity as column names and ``results.csv`` params write it (``0.01``, ``10``)."""
    return value if isinstance(value, str) else f"{value:g}"


def eps_label(eps: float | str) -> str:
    """An ε as column names and ``results.csv`` params write it (6 significant digits)."""
    return eps if isinstance(eps, str) else f"{eps:.6g}"


def gini_column(param: str, attribution: str | None = None) -> PerImageColumn:
    """Gini ``param`` (``pixel``, ``region_sum``, ``region_avgpool``) of the maps of ``attribution`` (None: the first)."""
    return FAMILIES["gini"].column(attribution, param=param)


def all_zero_column(attribution: str | None = None) -> PerImageColumn:
    return FAMILIES["all_zero"].column(attribution)


def concentration_column(measure: str, attribution: str | None = None) -> PerImageColumn:
    return FAMILIES["concentration"].column(attribution, param=measure)


def lorenz_column(share: float | str) -> PerImageColumn:
    """The Lorenz point at population share ``share`` (two decimals)."""
    return FAMILIES["lorenz"].column(param=share if isinstance(share, str) else f"{share:.2f}")


def alignment_column(measure: str) -> PerImageColumn:
    return FAMILIES["alignment"].column(param=measure)


def noise_column(test: str, budget: float | int | str) -> PerImageColumn:
    """``test`` ``inductive_noise`` or ``random_noise`` at ``budget`` (a fraction of the entries, or a count)."""
    return FAMILIES[test].column(param=number_label(budget))


def occlusion_column(fill: float | str, part: str) -> PerImageColumn:
    return FAMILIES["inductive_occlusion"].column(param=number_label(fill), part=part)


def robust_column(attack: str, eps: float | str) -> PerImageColumn:
    """Still correct under ``attack`` (``pgd``, ``fgsm``, ``autoattack``) at ``eps``."""
    return FAMILIES["robust"].column(test=attack, param=eps_label(eps))


def corruption_column(name: str, severity: int | str) -> PerImageColumn:
    return FAMILIES["corruption"].column(test=name, param=str(severity))


def large_eps_column() -> PerImageColumn:
    return FAMILIES["sanity"].column()


def mprt_column(step: str, part: str) -> PerImageColumn:
    """Model-randomisation ``part`` (``spearman``, ``ssim``, ``gini``) at step ``step`` (:func:`mprt_step`)."""
    return FAMILIES["mprt"].column(param=step, part=part)


def describe_column(name: str) -> PerImageColumn | None:
    """What per-image column ``name`` holds, or None for the base columns (index, label, prediction, ...)."""
    for family in FAMILIES.values():
        match = family.pattern.fullmatch(name)
        if match:
            found = {k: v for k, v in match.groupdict().items() if k != "attribution"}
            return family.column(match.groupdict().get("attribution"), **found)
    return None


def per_image_columns(names: Iterable[str], test: str | None = None, part: str | None = None,
                      family: str | None = None) -> list[PerImageColumn]:
    """The suite columns among ``names`` (e.g. ``per_image.columns``), optionally of one test, part and family,
    in order."""
    found = (describe_column(n) for n in names)
    return [c for c in found if c is not None and (test is None or c.test == test) and (part is None or c.part == part)
            and (family is None or c.family == family)]


def column_name(test: str, param: str, part: str, attribution: str | None = None) -> str:
    """The per-image column of (test, param, part[, further attribution method]): the inverse of :func:`describe_column`."""
    for family in FAMILIES.values():
        fixed = family.fixed
        if fixed.get("test", test) == test and fixed.get("part", part) == part and fixed.get("param", param) == param \
                and re.fullmatch(family.fields.get("test", re.escape(test)), test) \
                and re.fullmatch(family.fields.get("part", re.escape(part)), part):
            return family.column(attribution, test=test, param=param, part=part).name
    raise ValueError(f"no per-image column for test {test!r}")


# The settings that results.csv rows keep in their variant or param: formatted and read back here only.

def attribution_variant(variant: str, attribution: str | None = None) -> str:
    """The ``results.csv`` variant of an attribution measure's rows: as it is for the run's first method
    (``pixel:abs``), prefixed by a further method (``integrated_gradients/pixel:abs``), so that readers
    matching the variant's start (``Run.value``) keep reading the first method."""
    return f"{attribution}/{variant}" if attribution else variant


def top_mass_measure(fraction: float) -> str:
    """The concentration measure (a column's and rows' param) of the mass in the top ``fraction`` of the entries:
    ``top_mass@0.01``."""
    return f"top_mass@{fraction:g}"


def top_mass_fraction(measure: str) -> float | None:
    """The fraction of a :func:`top_mass_measure`; None for another measure."""
    name, _, fraction = measure.partition("@")
    return float(fraction) if name == "top_mass" and fraction else None


def occlusion_fill(fill: float | str) -> str:
    """The leading part of the occlusion rows' variant that names the fill: ``fill=0.5``."""
    return f"fill={number_label(fill)}"


def occlusion_variant(fill: float | str, order: str, used: str = "") -> str:
    """The occlusion rows' variant: fill, search order, and ``used`` (``/attribution=...`` when the run lists
    several attribution methods)."""
    return f"{occlusion_fill(fill)}/{order}{used}"


def occlusion_order(variant: str) -> str:
    """The search order in an :func:`occlusion_variant`."""
    return variant.split("/")[1]


def occlusion_param(count: int, radius: int) -> str:
    """The occlusion rows' param: the largest patch count and radius, ``N=10,R=3``."""
    return f"N={count},R={radius}"


def occlusion_limits(param: str) -> tuple[int, int]:
    """(count, radius) of an :func:`occlusion_param`."""
    settings = dict(p.split("=") for p in param.split(","))
    return int(settings["N"]), int(settings["R"])


def mprt_step(done: int, total: int, layer: str) -> str:
    """The model-randomisation step that has randomised the top ``done`` of ``total`` layers, down to ``layer``:
    ``done/total:layer`` (its column's and rows' param)."""
    return f"{done}/{total}:{layer}"


def mprt_step_parts(step: str) -> tuple[int, int, str]:
    """(done, total, layer) of an :func:`mprt_step`."""
    counts, _, layer = step.partition(":")
    done, total = counts.split("/")
    return int(done), int(total), layer
