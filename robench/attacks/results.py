"""Per-batch attack results joined into one: the shared rule of every attack's ``merge``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor

from robench.errors import RobenchError

Result = TypeVar("Result")


def concat_batches(results: Iterable[Result], what: str, dim: int = 0) -> Result:
    """Concatenate per-batch result dataclasses along the image axis ``dim``: every Tensor field is concatenated,
    ``forward_passes`` summed, and every other field (the attack's settings) must be equal across the batches."""
    rs: list[Any] = list(results)
    if not rs:
        raise RobenchError(f"nothing to merge: no {what} results")
    first = rs[0]
    names = [f.name for f in dataclasses.fields(first)]
    tensors = [n for n in names if isinstance(getattr(first, n), Tensor)]
    settings = [n for n in names if n not in tensors and n != "forward_passes"]
    if any(getattr(r, n) != getattr(first, n) for r in rs[1:] for n in settings):
        raise RobenchError(f"cannot merge {what} results with different settings")
    joined = {n: torch.cat([getattr(r, n) for r in rs], dim=dim) for n in tensors}
    return dataclasses.replace(first, **joined, forward_passes=sum(r.forward_passes for r in rs))
