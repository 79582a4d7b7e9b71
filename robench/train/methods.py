"""Training methods: each turns a batch into a loss and its named parts.

A method gets the model in train mode and the batch in [0, 1]. Adversarial methods (a later
addition: PGD-AT, TRADES, IGD) craft their examples with the model in eval mode through
:func:`robench.models.modes.eval_mode`, then compute the loss in train mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from robench.errors import RobenchError
from robench.models.wrapper import RobenchModel


class TrainMethod(Protocol):
    """``loss(model, x, y)`` → (scalar loss to minimise, {part name: value} for the log)."""

    name: str

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        ...


class Standard:
    """Cross-entropy on clean images (NAT)."""

    name = "standard"

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(model(x), y)
        return ce, {"ce": float(ce.detach())}


METHODS: dict[str, Callable[..., TrainMethod]] = {"standard": Standard}


def make_method(name: str) -> TrainMethod:
    """The training method called ``name``."""
    if name not in METHODS:
        raise RobenchError(f"unknown training method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]()
