"""The columns of ``results.csv``, shared by the suites that write it and the reports that read it back.

Also the one description of the suites' per-image columns (:func:`describe_column`): every reader of
``per_image.csv.gz`` asks it what a column holds instead of parsing names. Kept free of torch so that
readers (``robench leaderboard``, ``robench compare``) start fast.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RESULT_COLUMNS = ["suite", "test", "variant", "param", "metric", "value", "n", "ci_low", "ci_high"]


# ------------------------------------------------------------------------------------------- per_image.csv.gz


@dataclass(frozen=True)
class PerImageColumn:
    """One suite column of ``per_image.csv.gz``: the ``results.csv`` test it feeds, its parameter, what a value is.

    ``part``: ``value`` (a measure, e.g. a Gini, or the ``alignment`` of the map with a reference model's:
    param ``cosine`` of the signed maps, ``spearman`` of their absolute values), ``share`` (a Lorenz point), ``fooled`` (1 = the attack
    changed a correct prediction), ``robust`` (1 = still correct under the attack), ``correct`` (1 =
    still correct on the corrupted image), ``area`` / ``queries`` (of a successful occlusion),
    ``all_zero`` (1 = the attribution map is all zero), ``sanity`` (a gradient-masking check's own flag:
    still correct under PGD at ε = 0.5), ``spearman`` / ``ssim`` (similarity of the attribution map before
    and after a model-randomisation step) and ``gini`` (pixel Gini of the map at that step). NaN: the image
    was not attacked (or its similarity is undefined).
    ``attribution``: for a measure of an attribution map, the method when it is not the run's first one
    (the first, whose map the attacks use, has the plain names: ``gini_pixel``; a further method
    ``gini_pixel[integrated_gradients]``); None otherwise.
    """

    name: str
    test: str
    param: str
    part: str
    attribution: str | None = None

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

#: (pattern, test, param, part) of the measures of an attribution map: each may carry a ``[method]`` qualifier.
_ATTRIBUTION_PATTERNS = [
    (r"gini_([^\[\]]+)", "gini", "{0}", "value"),
    (r"(entropy|participation)", "concentration", "{0}", "value"),
    (r"(top_mass@[^\[\]]+)", "concentration", "{0}", "value"),
    (r"lorenz@([^\[\]]+)", "lorenz", "{0}", "share"),
    (r"attribution_all_zero", "gini", "pixel", "all_zero"),
]
_QUALIFIER = r"(?:\[(\w+)\])?"

#: (pattern, test, param, part) of the other suite columns; with the above, the only place that reads column names.
_COLUMN_PATTERNS = [
    (r"mprt\[(.+)\]_(spearman|ssim|gini)", "mprt", "{0}", "{1}"),
    (r"ina@(.+)", "inductive_noise", "{0}", "fooled"),
    (r"rn@(.+)", "random_noise", "{0}", "fooled"),
    (r"ioa\[(.+)\]_(fooled|area|queries|count|radius)", "inductive_occlusion", "{0}", "{1}"),
    (r"(pgd|fgsm|autoattack)@(.+)", "{0}", "{1}", "robust"),
    (r"corr\[(.+)\]", "corruption", "{0}", "correct"),
    (r"pgd_large_eps", "sanity", "large_eps_accuracy", "sanity"),
    (r"attribution_(cosine|spearman)", "alignment", "{0}", "value"),
]


def describe_column(name: str) -> PerImageColumn | None:
    """What per-image column ``name`` holds, or None for the base columns (index, label, prediction, ...)."""
    for pattern, test, param, part in _ATTRIBUTION_PATTERNS:
        match = re.fullmatch(pattern + _QUALIFIER, name)
        if match:
            *groups, method = match.groups()
            return PerImageColumn(name, test.format(*groups), param.format(*groups), part.format(*groups), method)
    for pattern, test, param, part in _COLUMN_PATTERNS:
        match = re.fullmatch(pattern, name)
        if match:
            found = match.groups()
            return PerImageColumn(name, test.format(*found), param.format(*found), part.format(*found))
    return None


def per_image_columns(names: Iterable[str], test: str | None = None, part: str | None = None) -> list[PerImageColumn]:
    """The suite columns among ``names`` (e.g. ``per_image.columns``), optionally of one test and part, in order."""
    found = (describe_column(n) for n in names)
    return [c for c in found if c is not None and (test is None or c.test == test) and (part is None or c.part == part)]


def column_name(test: str, param: str, part: str, attribution: str | None = None) -> str:
    """The per-image column of (test, param, part[, further attribution method]): the inverse of :func:`describe_column`."""
    prefix = {"inductive_noise": "ina", "random_noise": "rn"}
    if test in prefix:
        return f"{prefix[test]}@{param}"
    if test == "inductive_occlusion":
        return f"ioa[{param}]_{part}"
    if test in ("pgd", "fgsm", "autoattack"):
        return f"{test}@{param}"
    if test == "corruption":
        return f"corr[{param}]"
    if test == "sanity":
        return "pgd_large_eps"
    if test == "mprt":
        return f"mprt[{param}]_{part}"
    if test == "alignment":
        return f"attribution_{param}"
    qualifier = f"[{attribution}]" if attribution else ""
    if test == "lorenz":
        return f"lorenz@{param}{qualifier}"
    if test == "gini":
        return ("attribution_all_zero" if part == "all_zero" else f"gini_{param}") + qualifier
    if test == "concentration":
        return param + qualifier
    raise ValueError(f"no per-image column for test {test!r}")


def attribution_variant(variant: str, attribution: str | None = None) -> str:
    """The ``results.csv`` variant of an attribution measure's rows: as it is for the run's first method
    (``pixel:abs``), prefixed by a further method (``integrated_gradients/pixel:abs``), so that readers
    matching the variant's start (``Run.value``) keep reading the first method."""
    return f"{attribution}/{variant}" if attribution else variant
