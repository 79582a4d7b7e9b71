"""Registry of evaluation suites: ``robench evaluate --suite NAME[,NAME...]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robench.errors import RobenchError
from robench.suites.adversarial import AdversarialConfig, AdversarialSuite
from robench.suites.base import Batch, Suite, result_row
from robench.suites.clean import CleanSuite
from robench.suites.corruptions import CorruptionsConfig, CorruptionsSuite
from robench.suites.inequality import InequalityConfig, InequalitySuite

SUITES: dict[str, Callable[..., Suite]] = {
    "clean": CleanSuite,
    "inequality": InequalitySuite,
    "adversarial": AdversarialSuite,
    "corruptions": CorruptionsSuite,
}
FULL = ("clean", "inequality", "corruptions", "adversarial")


def make_suites(names: str, seed: int = 0, suite_options: dict[str, dict[str, Any]] | None = None) -> list[Suite]:
    """Suites for a comma-separated list of names; ``clean`` always runs first (others depend on it).

    ``suite_options[name]`` holds keyword arguments for that suite's constructor.
    """
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if "full" in wanted:  # the whole benchmark
        wanted = [n for n in wanted if n != "full"] + list(FULL)
    unknown = [n for n in wanted if n not in SUITES]
    if unknown or not wanted:
        raise RobenchError(f"unknown suite {', '.join(unknown) or repr(names)}; choose from {', '.join(SUITES)} or full")
    ordered = ["clean"] + [n for n in dict.fromkeys(wanted) if n != "clean"]
    return [SUITES[n](seed=seed, **(suite_options or {}).get(n, {})) for n in ordered]


__all__ = ["FULL", "SUITES", "AdversarialConfig", "Batch", "CorruptionsConfig", "InequalityConfig", "Suite", "make_suites", "result_row"]
