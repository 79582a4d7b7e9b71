"""Registry of evaluation suites: ``robench evaluate --suite NAME[,NAME...]``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd

from robench.errors import RobenchError
from robench.options import config_from_values
from robench.schema import RESULT_COLUMNS
from robench.settings import (
    SUITE_CONFIGS,
    AdversarialConfig,
    CorruptionsConfig,
    InequalityConfig,
    SanityConfig,
    recorded_settings,
)
from robench.suites.base import SUITES, Batch, Suite, result_row

# Importing a suite's module registers it; this order is the order `robench list` shows.
# isort: off
from robench.suites.clean import CleanSuite  # noqa: F401
from robench.suites.inequality import InequalitySuite  # noqa: F401
from robench.suites.adversarial import AdversarialSuite  # noqa: F401
from robench.suites.corruptions import CorruptionsSuite  # noqa: F401
from robench.suites.sanity import SanitySuite  # noqa: F401
# isort: on

FULL = ("clean", "inequality", "corruptions", "adversarial")


def suite_names(names: str) -> list[str]:
    """The suites a comma-separated list runs, in running order: ``clean`` first (the others depend on it),
    ``full`` expanded (the whole benchmark); a RobenchError for an unknown name."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if "full" in wanted:
        wanted = [n for n in wanted if n != "full"] + list(FULL)
    unknown = [n for n in wanted if n not in SUITES]
    if unknown or not wanted:
        raise RobenchError(f"unknown suite {', '.join(unknown) or repr(names)}; choose from {', '.join(SUITES)} or full")
    return ["clean"] + [n for n in dict.fromkeys(wanted) if n != "clean"]


def make_suites(names: str, seed: int = 0, suite_options: dict[str, dict[str, Any]] | None = None) -> list[Suite]:
    """Suites for a comma-separated list of names (:func:`suite_names`).

    ``suite_options[name]`` holds keyword arguments for that suite's constructor.
    """
    return [SUITES[n](seed=seed, **(suite_options or {}).get(n, {})) for n in suite_names(names)]


def restore_suites(meta: dict[str, Any]) -> list[Suite]:
    """A finished run's suites, rebuilt from its recorded settings (``meta["suites"]``, earlier names read
    through :func:`robench.settings.recorded_settings`): ``summarize`` on them needs only the per-image table."""
    suites = []
    for name, recorded in meta["suites"].items():
        settings = recorded_settings(recorded)
        cls = SUITE_CONFIGS.get(name)
        options: dict[str, Any] = {}
        if cls is not None:
            names = {f.name for f in dataclasses.fields(cls)}
            options["config"] = config_from_values(cls, {k: v for k, v in settings.items() if k in names})
        suite = SUITES[name](seed=int(meta["seed"]), **options)
        suite.restore(settings)
        suites.append(suite)
    return suites


def summary_table(suites: Sequence[Suite], per_image: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """The results table (``RESULT_COLUMNS``): each suite's ``summarize`` rows on the per-image table, in suite order.
    What a run writes to results.csv, and what :func:`robench.resummarize` recomputes from a finished run."""
    return pd.DataFrame([row for suite in suites for row in suite.summarize(per_image, classes)],
                        columns=RESULT_COLUMNS)


__all__ = ["FULL", "SUITES", "SUITE_CONFIGS", "AdversarialConfig", "Batch", "CorruptionsConfig", "InequalityConfig",
           "SanityConfig", "Suite", "make_suites", "restore_suites", "result_row", "suite_names", "summary_table"]
