"""Device selection and the float32 precision evaluation uses on CUDA."""

from __future__ import annotations

import pytest
import torch

from robench.devices import _tf32_switches, full_float32, resolve_device
from robench.errors import RobenchError


def _state() -> list[object]:
    return [getattr(obj, name) for obj, name, _ in _tf32_switches()]


def test_full_float32_turns_tf32_off_on_cuda_and_restores() -> None:
    before = _state()
    assert before != [value for _, _, value in _tf32_switches()], "PyTorch's default lets cuDNN use TF32"
    with full_float32(torch.device("cuda")):  # the switches exist without a GPU
        assert _state() == [value for _, _, value in _tf32_switches()]
    assert _state() == before
    with pytest.raises(ValueError), full_float32(torch.device("cuda")):
        raise ValueError("restored on errors too")
    assert _state() == before


def test_full_float32_leaves_cpu_alone() -> None:
    before = _state()
    with full_float32(torch.device("cpu")):
        assert _state() == before


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(RobenchError, match="unknown device"):
        resolve_device("tpu")
