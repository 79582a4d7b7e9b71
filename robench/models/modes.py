"""Context managers that put a model in the mode attribution and attacks need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model`` in eval mode and restore every submodule's previous mode afterwards.

    BatchNorm in train mode both changes outputs and corrupts running statistics, so every
    attribution and attack call runs inside this. Each module's own flag is put back, so layers a
    training run keeps in eval mode (``--freeze-bn``) stay there after an attack.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
