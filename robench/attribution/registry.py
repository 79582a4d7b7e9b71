"""Attribution methods by name, for specs and the CLI."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from robench.errors import RobenchError
from robench.registry import Registry

AttributionFn = Callable[..., Tensor]

#: name -> function(model, x, target, **options) -> attribution with x's shape; filled by ``@ATTRIBUTIONS.register()``
#: in the modules that define them (imported by :mod:`robench.attribution`).
ATTRIBUTIONS: Registry[AttributionFn] = Registry("attribution")

#: The default attribution (IGD's choice; Duan used integrated_gradients).
DEFAULT_ATTRIBUTION = "saliency"


def attribution_options(name: str) -> tuple[str, ...]:
    """Keyword options accepted by attribution ``name``, e.g. ``("baseline", "steps", ...)``."""
    fn = get_attribution(name)
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY)


def get_attribution(name: str) -> AttributionFn:
    """The attribution function called ``name``; RobenchError naming the choices otherwise (:meth:`Registry.get`)."""
    return ATTRIBUTIONS.get(name)


def attribution_names(spec: str | Sequence[str]) -> tuple[str, ...]:
    """The methods of ``spec`` in order: ``"saliency,integrated_gradients"`` or a list of names.

    RobenchError for an unknown, repeated or missing name. The first method is the one the attacks use.
    """
    names = tuple(n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec))
    if not names or not all(names):
        raise RobenchError(f"attribution takes method names, comma-separated (e.g. saliency,smoothgrad); got {spec!r}")
    for name in names:
        get_attribution(name)
    if len(set(names)) != len(names):
        raise RobenchError(f"attribution lists a method twice: {','.join(names)}")
    return names


def options_per_method(names: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each method's share of the flat ``options`` (the keys it accepts, e.g. ``steps`` for integrated gradients).

    RobenchError naming an option that no listed method accepts.
    """
    accepted = {name: set(attribution_options(name)) for name in names}
    wrong = sorted(k for k in options if not any(k in keys for keys in accepted.values()))
    if wrong:
        raise RobenchError(f"option(s) {', '.join(wrong)} do not apply to attribution "
                           f"{' or '.join(repr(n) for n in names)}")
    return {name: {k: v for k, v in options.items() if k in keys} for name, keys in accepted.items()}


def attribute(name: str, model: nn.Module, x: Tensor, target: Tensor, **options: Any) -> Tensor:
    """Run attribution ``name`` on ``x`` (N×C×H×W in [0, 1]) for ``target`` (N labels).

    Unknown names or options raise RobenchError listing the valid ones. Returns a detached
    tensor of ``x``'s shape.
    """
    fn = get_attribution(name)
    valid = attribution_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        allowed = ", ".join(valid) if valid else "none"
        raise RobenchError(f"unknown option(s) {', '.join(unknown)} for attribution {name!r}; "
                           f"valid options: {allowed}")
    return fn(model, x, target, **options)
