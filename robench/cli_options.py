"""Command-line options generated from settings dataclasses: each setting is declared once.

A field's default, type and ``metadata["help"]`` become a typer option ``--field-name`` (booleans get
``--name/--no-name``; ``metadata["short"]`` adds a short flag). A field with a text parser
(``metadata["parse"]``, a sequence such as ``eps``) becomes a text option whose value
:func:`robench.options.config_from_values` parses. A command built this way takes the settings as
keyword arguments with the dataclass's own names, so the Python API, the CLI and the recorded
metadata use one name for each setting.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Optional

import typer


def dataclass_options(cls: type, skip: tuple[str, ...] = (),
                      tag: Callable[[str], str] | None = None) -> list[inspect.Parameter]:
    """Keyword-only typer parameters for the fields of dataclass ``cls`` (except ``skip``), in field order;
    ``tag(field)`` starts each help text as ``[tag]`` (the suites a setting belongs to). Fields marked
    ``internal`` (:func:`robench.options.setting`) stay off the command line."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("internal"):
            continue
        hint = hints[f.name]
        args = typing.get_args(hint)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        optional = type(None) in args
        base = next(a for a in args if a is not type(None)) if union else hint  # str | Sequence[str]: str
        default = ... if f.default is dataclasses.MISSING else f.default
        help_text = f"{tag(f.name)}: {f.metadata.get('help')}" if tag else f.metadata.get("help")
        if "parse" in f.metadata:  # a sequence, given as text; None keeps the default
            base, optional = str, True
            if default is not None or "shown" in f.metadata:
                help_text = f"{help_text} (default {f.metadata.get('shown', _as_text(default))})"
            default = None
        decls = [f"--{f.name.replace('_', '-')}", f.metadata["short"]] if "short" in f.metadata else []
        option = typer.Option(default, *decls, help=help_text or "", min=f.metadata.get("min"))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[base] if optional else base))  # noqa: UP045 (typer reads it)
    return params


def _as_text(value: Any) -> str:
    """A default sequence in its command-line form: (1, 2, 3) → '1,2,3'; () → '' (none)."""
    return ",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, tuple) else str(value)


def with_options(fn: Callable[..., Any], *leading: inspect.Parameter, settings: list[inspect.Parameter]) -> Callable[..., Any]:
    """``fn(**kwargs)`` with a signature of ``leading`` parameters (default: ``fn``'s own, but its ``**kwargs``)
    then ``settings``, for typer to read."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fn.__signature__ = inspect.Signature([*(leading or own), *settings])  # type: ignore[attr-defined]
    return fn
