"""Context managers that put a model in the mode attribution and attacks need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model`` in eval mode and restore its previous mode afterwards.

    BatchNorm in train mode both changes outputs and corrupts running statistics, so every
    attribution and attack call runs inside this.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
