"""robench: measure the inequality phenomenon of adversarially trained image classifiers.

The Python API (docs/python-api.md) is importable from here: ``robench.evaluate``, ``robench.load_model``,
``robench.wrap``, ``robench.load_data``, ``robench.load_run``, ``robench.compare``, ``robench.rankings``,
``robench.paired``, ``robench.report``, ``robench.resummarize``, ``robench.train``, ``robench.leaderboard`` and the
:class:`Run` they return. They are imported on first use, so ``import robench`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from robench._version import __version__

_API = {"evaluate": "robench.api", "load_model": "robench.api", "wrap": "robench.api", "load_data": "robench.api",
        "compare": "robench.api", "rankings": "robench.api", "paired": "robench.api", "report": "robench.api",
        "resummarize": "robench.api", "train": "robench.train",
        "load_run": "robench.run", "Run": "robench.run", "leaderboard": "robench.reports.leaderboard"}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'robench' has no attribute {name!r}")
    module = import_module(_API[name])
    return module if name in ("leaderboard", "train") else getattr(module, name)  # robench.train: a callable package
