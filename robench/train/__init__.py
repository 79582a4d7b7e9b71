"""The bundled trainer: ``robench train --method NAME``; from Python, ``robench.train(**settings)``.

``robench.train`` is both this package and the API function :func:`robench.api.train`: importing a
subpackage makes it an attribute of its parent, which would hide a function of the same name, so
the package itself is made callable (calling it calls :func:`robench.api.train`). The trainer and
the methods (which import torch) load on first use; the settings (:class:`TrainConfig`) load light.
"""

import sys
import types
from importlib import import_module
from typing import Any

from robench.train.config import PRESETS, TrainConfig

_LAZY = {"train": "robench.train.trainer", "METHODS": "robench.train.methods", "TrainMethod": "robench.train.methods"}


class _CallablePackage(types.ModuleType):
    def __call__(self, **settings: Any) -> Any:
        from robench.api import train as api_train

        return api_train(**settings)

    def __getattr__(self, name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module 'robench.train' has no attribute {name!r}")
        return getattr(import_module(_LAZY[name]), name)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["METHODS", "PRESETS", "TrainConfig", "TrainMethod", "train"]
