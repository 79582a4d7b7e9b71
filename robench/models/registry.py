"""A registry of named architecture constructors, in the style of timm's.

``@register_model`` records a constructor together with its default input size, so a checkpoint
that names an architecture can be rebuilt without the caller knowing its shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from robench.registry import Registry


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: its constructor and the input it expects (C, H, W)."""

    name: str
    constructor: Callable[..., nn.Module]
    input_size: tuple[int, int, int]
    description: str


#: robench's architectures by name (``--arch NAME``), filled by ``@register_model()``.
ARCHITECTURES: Registry[ArchSpec] = Registry("robench architecture")


def register_model(
    input_size: tuple[int, int, int] = (3, 32, 32),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn(num_classes=..., in_chans=...) -> nn.Module`` under its name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = (fn.__doc__ or "").strip().splitlines()
        ARCHITECTURES.register(fn.__name__)(ArchSpec(fn.__name__, fn, input_size, doc[0] if doc else ""))
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of robench's own architectures, sorted."""
    return sorted(ARCHITECTURES)


def is_model(name: str) -> bool:
    """Whether ``name`` is a robench architecture."""
    return name in ARCHITECTURES


def get_arch(name: str) -> ArchSpec:
    """The registered architecture called ``name``; RobenchError naming the choices if unknown (:meth:`Registry.get`)."""
    return ARCHITECTURES.get(name)


def create_model(name: str, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """Build the robench architecture ``name`` with freshly initialised weights."""
    return get_arch(name).constructor(num_classes=num_classes, in_chans=in_chans)
