"""Resolve an ``--arch`` value to a network: a robench name, a timm name, or ``package.module:callable``."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from robench.errors import RobenchError
from robench.models.registry import get_arch, is_model, list_models


@dataclass
class BuiltNet:
    """A freshly built network and the input/normalisation defaults its source implies (see ModelInfo)."""

    net: nn.Module
    input_size: tuple[int, int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    crop_pct: float | None = None
    interpolation: str | None = None


def build_net(arch: str, num_classes: int | None, in_chans: int = 3, arch_path: str | None = None) -> BuiltNet:
    """Build the architecture named ``arch`` with ``num_classes`` outputs (None: its default)."""
    if is_model(arch):
        spec = get_arch(arch)
        net = spec.constructor(num_classes=num_classes or 10, in_chans=in_chans)
        return BuiltNet(net, (in_chans, *spec.input_size[1:]), None, None)
    if ":" in arch:
        return _build_user_callable(arch, num_classes, arch_path)
    import timm

    if timm.is_model(arch):
        return build_timm(arch, num_classes, in_chans)
    raise RobenchError(
        f"unknown architecture {arch!r}: not a robench architecture ({', '.join(list_models())}), "
        "not a timm model name, and not of the form package.module:callable"
    )


def build_timm(name: str, num_classes: int | None, in_chans: int = 3, pretrained: bool = False) -> BuiltNet:
    """A timm model with its pretrained config's input size, mean, std, crop fraction and interpolation."""
    import timm

    kwargs: dict[str, Any] = {"in_chans": in_chans}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    net = timm.create_model(name, pretrained=pretrained, **kwargs)
    cfg: dict[str, Any] = getattr(net, "pretrained_cfg", None) or {}
    size = tuple(cfg["input_size"]) if cfg.get("input_size") else None
    mean = tuple(cfg["mean"]) if cfg.get("mean") and len(cfg["mean"]) == in_chans else None
    std = tuple(cfg["std"]) if cfg.get("std") and len(cfg["std"]) == in_chans else None
    return BuiltNet(net, (in_chans, *size[1:]) if size else None, mean, std,
                    float(cfg["crop_pct"]) if cfg.get("crop_pct") else None, cfg.get("interpolation") or None)


def _build_user_callable(arch: str, num_classes: int | None, arch_path: str | None) -> BuiltNet:
    module_name, _, attr = arch.partition(":")
    if arch_path:
        if not Path(arch_path).is_dir():
            raise RobenchError(f"--arch-path {arch_path} is not a directory")
        if arch_path not in sys.path:
            sys.path.insert(0, arch_path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RobenchError(
            f"cannot import module {module_name!r} for --arch {arch} ({exc}); put it on PYTHONPATH or pass --arch-path DIR"
        ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RobenchError(f"module {module_name!r} has no callable {attr!r} (from --arch {arch})")
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    net = fn(num_classes=num_classes) if num_classes is not None and "num_classes" in params else fn()
    if not isinstance(net, nn.Module):
        raise RobenchError(f"--arch {arch} returned {type(net).__name__}, not a torch.nn.Module")
    return BuiltNet(net, None, None, None)
