"""Choosing the torch device from the ``--device`` option."""

from __future__ import annotations

import torch

from robench.errors import RobenchError


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise RobenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RobenchError("--device cuda but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(device)
