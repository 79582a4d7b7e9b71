"""The bundled trainer: ``robench train --method NAME``; from Python, ``robench.train(**settings)``.

``robench.train`` is both this package and the API function :func:`robench.api.train`: importing a
subpackage makes it an attribute of its parent, which would hide a function of the same name, so
the package itself is made callable (calling it trains as :func:`robench.api.train` does, with
:func:`robench.train.config.make_config` and the trainer; it does not import the API, which imports this
package). The trainer and the methods (which import torch) load on first use; the settings
(:class:`TrainConfig`) load light.
"""

import sys
import types
from importlib import import_module
from typing import Any

from robench.train.config import PRESETS, TrainConfig, make_config

_LAZY = {"train": "robench.train.trainer", "METHODS": "robench.train.methods", "TrainMethod": "robench.train.methods"}


class _CallablePackage(types.ModuleType):
    def __call__(self, **settings: Any) -> Any:
        from robench.train.trainer import train

        return train(make_config(settings.pop("preset", None), **settings))

    def __getattr__(self, name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module 'robench.train' has no attribute {name!r}")
        return getattr(import_module(_LAZY[name]), name)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["METHODS", "PRESETS", "TrainConfig", "TrainMethod", "train"]
