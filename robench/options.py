"""Declaring settings once, and parsing the text of command-line options (also as recorded in ``meta.json``).

:func:`setting` declares a field of a settings dataclass (a suite's or the trainer's config) with its
help text, its text parser and its checks: the CLI option is generated from that declaration
(:mod:`robench.cli_options`), and the Python API reads the same text forms through
:func:`config_from_values`. Each parser returns a tuple, or raises a :class:`SettingError` naming the
setting by its field (``mean takes comma-separated numbers ...``; the CLI shows its flag, ``--mean``)
and showing the expected form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from robench.errors import RobenchError, SettingError

T = TypeVar("T")


def setting(default: Any, help: str, *, parse: Callable[[str, str], Any] | None = None, **checks: Any) -> Any:
    """A settings-dataclass field: its default, one-line help, and optionally ``parse(text, name)`` for the
    text form of a sequence (``"2/255,8/255"``) and CLI checks (``min``, ``short``); ``internal=True`` keeps a
    field off the command line."""
    metadata = {"help": help, **({"parse": parse} if parse else {}), **checks}
    return dataclasses.field(default=default, metadata=metadata)


def config_from_values(cls: type[T], values: Mapping[str, Any], label: Callable[[str], str] = str) -> T:
    """``cls(**values)`` for a settings dataclass, with text values of parsed fields read by their parser
    (``eps="2/255,8/255"``), lists made tuples, and ``None`` for a parsed field meaning its default.
    ``label(field)`` is how a parse error names the setting (default: the field's name; the CLI shows its
    flag). A name that is no field is a RobenchError listing the fields."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(name for name, f in fields.items() if not f.metadata.get("internal"))
            raise RobenchError(f"unknown setting {key!r} of {cls.__name__}; settings: {known}")
        parse = fields[key].metadata.get("parse")
        if parse is not None and value is None:
            continue
        if parse is not None and isinstance(value, str):
            value = parse(value, label(key))
        elif isinstance(value, list):
            value = tuple(value)
        given[key] = value
    return cls(**given)


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """'0.485,0.456,0.406' → (0.485, 0.456, 0.406); SettingError naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SettingError(option, f"takes comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}",
                           sep=" ") from None
    return values


def parse_size(text: str | None, option: str) -> tuple[int, ...] | None:
    """'3,32,32' (C,H,W), '32,32' (H,W) or '32' (square) → a tuple of ints."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise SettingError(option, f"takes sizes like 3,32,32 or 224; got {text!r}", sep=" ") from None
    if not 1 <= len(values) <= 3 or min(values) < 1:
        raise SettingError(option, f"takes C,H,W or H,W or one size; got {text!r}", sep=" ")
    return values


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """'1,2,3' → (1, 2, 3)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SettingError(option, f"takes comma-separated integers, e.g. 1,2,3; got {text!r}", sep=" ") from None


def parse_fractions(text: str, option: str) -> tuple[float, ...]:
    """'2/255,8/255' or '0.0314' → floats."""
    try:
        values = []
        for part in text.split(","):
            num, _, den = part.partition("/")
            values.append(float(num) / float(den) if den else float(num))
    except (ValueError, ZeroDivisionError):
        raise SettingError(option, f"takes numbers or fractions like 8/255, comma-separated; got {text!r}",
                           sep=" ") from None
    return tuple(values)


def parse_budgets(text: str | None, option: str) -> tuple[float | int, ...] | None:
    """'0.002,0.004' → fractions of C·H·W; '5000' → absolute counts (ints)."""
    if text is None:
        return None
    try:
        values = tuple(float(v) if any(ch in v for ch in ".eE") else int(v) for v in text.split(","))
    except ValueError:
        raise SettingError(option, f"takes fractions (0.002,0.004) or counts (5000); got {text!r}", sep=" ") from None
    if any(not 0 < v < 1 if isinstance(v, float) else v < 1 for v in values):
        raise SettingError(option, f"takes fractions in (0, 1) (0.002,0.004) or counts ≥ 1 (5000); got {text!r}",
                           sep=" ")
    return values


def parse_optional_floats(text: str, option: str) -> tuple[float, ...]:
    """'0,0.5,1' → (0.0, 0.5, 1.0); an empty text → () (none)."""
    return (parse_floats(text, option) or ()) if text.strip() else ()


def flag(name: str) -> str:
    """The command-line flag of setting ``name``: ``occlusion_count`` → ``--occlusion-count`` (a flag stays)."""
    return name if name.startswith("-") else "--" + name.replace("_", "-")
