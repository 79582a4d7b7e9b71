"""Choosing the torch device from the ``--device`` option, and the float32 precision used on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


def describe_device(device: torch.device) -> str:
    """The device a job ran on, for its record: ``cpu`` or ``cuda (NVIDIA H200)``."""
    device = torch.device(device)
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def _tf32_switches() -> list[tuple[object, str, object]]:
    """``(object, attribute, full-float32 value)`` for the settings that let CUDA use TF32 for float32.

    torch ≥ 2.9 has ``fp32_precision`` settings ("ieee" = full float32) and refuses reads of the
    legacy ``allow_tf32`` flags once they are used; older versions only have the flags.
    """
    conv, matmul = getattr(torch.backends.cudnn, "conv", None), torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        return [(conv, "fp32_precision", "ieee"), (matmul, "fp32_precision", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", False), (matmul, "allow_tf32", False)]


@contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """On CUDA, float32 convolutions and matmuls in full float32 (no TF32) while active; restored after.

    PyTorch lets cuDNN run float32 convolutions in TF32 (10-bit mantissa) by default. Attributions
    computed that way differ from float32 ones by about 1e-3 relative, enough to move a Gini in the
    third decimal (measured on an H100: reports/benchmarks/gpu/README.md), so evaluation turns it
    off. Training keeps PyTorch's default. Nothing changes on other devices.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    switches = _tf32_switches()
    saved = [getattr(obj, name) for obj, name, _ in switches]
    try:
        for obj, name, value in switches:
            setattr(obj, name, value)
        yield
    finally:
        for (obj, name, _), old in zip(switches, saved):
            setattr(obj, name, old)
