"""Attack budgets: how many input entries a noise attack may touch.

A budget is either a *fraction* of the C·H·W entries of one image (a float strictly between 0
and 1) or an *absolute count* (an int ≥ 1). Both papers' defaults are kept here so that the
suite and the docs quote the same numbers (defined with the suite's settings, robench.settings).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import cast

from robench.errors import RobenchError
from robench.settings import INA_DEFAULT_FRACTIONS, RN_DEFAULT_FRACTIONS  # noqa: F401 (the suite's defaults)

Budget = float | int


#: Duan et al.'s absolute INA budget on 224×224 ImageNet images (entries, not pixels).
DUAN_INA_COUNT_224: int = 5000


def resolve_budget(budget: Budget, numel: int) -> int:
    """Turn one budget into a number of entries k, 1 ≤ k ≤ numel.

    ``budget``: a float in (0, 1) is a fraction of ``numel`` (= C·H·W of one image), rounded
    half up and at least 1; an int ≥ 1 is an absolute count and must not exceed ``numel``.
    Anything else (bool, 0, 1.0, negative, NaN, a float ≥ 1) raises :class:`RobenchError`.
    """
    if isinstance(numel, bool) or not isinstance(numel, numbers.Integral) or numel < 1:
        raise RobenchError(f"number of entries per image must be a positive int, got {numel!r}")
    numel = int(numel)
    if isinstance(budget, bool):
        raise RobenchError(f"budget must be a fraction in (0, 1) or a count >= 1, got {budget!r}")
    if isinstance(budget, numbers.Integral):
        k = int(budget)
        if k < 1:
            raise RobenchError(f"budget count must be >= 1, got {k}")
        if k > numel:
            raise RobenchError(f"budget count {k} exceeds the {numel} entries of one image")
        return k
    if isinstance(budget, numbers.Real):
        f = float(budget)
        if not (0.0 < f < 1.0):  # also rejects NaN
            raise RobenchError(
                "budget fraction must be in (0, 1) (use an int for an absolute count), "
                f"got {budget!r}"
            )
        return min(numel, max(1, math.floor(f * numel + 0.5)))
    raise RobenchError(f"budget must be a fraction in (0, 1) or a count >= 1, got {budget!r}")


def resolve_budgets(budgets: Budget | Iterable[Budget], numel: int) -> list[int]:
    """Resolve several budgets (see :func:`resolve_budget`), keeping their order.

    A single number is accepted as a one-level list. An empty list raises :class:`RobenchError`.
    """
    if isinstance(budgets, numbers.Real):  # not (int, float): NumPy scalars count too, which mypy cannot narrow
        seq: Sequence[Budget] = [cast(Budget, budgets)]
    else:
        seq = list(cast(Iterable[Budget], budgets))
    if not seq:
        raise RobenchError("at least one budget level is needed")
    return [resolve_budget(b, numel) for b in seq]
