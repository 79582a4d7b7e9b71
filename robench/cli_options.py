"""Command-line options generated from settings dataclasses: each setting is declared once.

A field's default, type and ``metadata["help"]`` become a typer option ``--field-name`` (booleans get
``--name/--no-name``; ``metadata["short"]`` adds a short flag). A command built this way takes the
settings as keyword arguments with the dataclass's own names, so the Python API, the CLI and the
recorded metadata use one name for each setting.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, Optional

import typer


def dataclass_options(cls: type, skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """Keyword-only typer parameters for the fields of dataclass ``cls`` (except ``skip``), in field order."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next(a for a in args if a is not type(None)) if optional else hint
        default = ... if f.default is dataclasses.MISSING else f.default
        decls = [f"--{f.name.replace('_', '-')}", f.metadata["short"]] if "short" in f.metadata else []
        option = typer.Option(default, *decls, help=f.metadata.get("help"), min=f.metadata.get("min"))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[base] if optional else base))  # noqa: UP045 (typer reads it)
    return params


def with_options(fn: Callable[..., Any], *leading: inspect.Parameter, settings: list[inspect.Parameter]) -> Callable[..., Any]:
    """``fn(**kwargs)`` with a signature of ``leading`` parameters then ``settings``, for typer to read."""
    fn.__signature__ = inspect.Signature([*leading, *settings])  # type: ignore[attr-defined]
    return fn
