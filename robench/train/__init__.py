"""The bundled trainer: ``robench train --method NAME``; from Python, ``robench.train(**settings)``.

``robench.train`` is both this package and the API function :func:`robench.api.train`: importing a
subpackage makes it an attribute of its parent, which would hide a function of the same name, so
the package itself is made callable (calling it calls :func:`robench.api.train`).
"""

import sys
import types
from typing import Any

from robench.train.config import PRESETS, TrainConfig
from robench.train.methods import METHODS, TrainMethod
from robench.train.trainer import train


class _CallablePackage(types.ModuleType):
    def __call__(self, **settings: Any) -> Any:
        from robench.api import train as api_train

        return api_train(**settings)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["METHODS", "PRESETS", "TrainConfig", "TrainMethod", "train"]
