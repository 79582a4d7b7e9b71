"""Parsing the text of command-line options (also as recorded in a run's ``meta.json``).

Each parser returns a tuple, or raises RobenchError naming the option and showing the expected form.
"""

from __future__ import annotations

from robench.errors import RobenchError


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """'0.485,0.456,0.406' → (0.485, 0.456, 0.406); RobenchError naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise RobenchError(f"{option} takes comma-separated numbers, e.g. 0.485,0.456,0.406; got {text!r}") from None
    return values


def parse_size(text: str | None, option: str) -> tuple[int, ...] | None:
    """'3,32,32' (C,H,W), '32,32' (H,W) or '32' (square) → a tuple of ints."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise RobenchError(f"{option} takes sizes like 3,32,32 or 224; got {text!r}") from None
    if not 1 <= len(values) <= 3 or min(values) < 1:
        raise RobenchError(f"{option} takes C,H,W or H,W or one size; got {text!r}")
    return values


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """'1,2,3' → (1, 2, 3)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise RobenchError(f"{option} takes comma-separated integers, e.g. 1,2,3; got {text!r}") from None


def parse_fractions(text: str, option: str) -> tuple[float, ...]:
    """'2/255,8/255' or '0.0314' → floats."""
    try:
        values = []
        for part in text.split(","):
            num, _, den = part.partition("/")
            values.append(float(num) / float(den) if den else float(num))
    except (ValueError, ZeroDivisionError):
        raise RobenchError(f"{option} takes numbers or fractions like 8/255, comma-separated; got {text!r}") from None
    return tuple(values)


def parse_budgets(text: str | None, option: str) -> tuple[float | int, ...] | None:
    """'0.002,0.004' → fractions of C·H·W; '5000' → absolute counts (ints)."""
    if text is None:
        return None
    try:
        values = tuple(float(v) if any(ch in v for ch in ".eE") else int(v) for v in text.split(","))
    except ValueError:
        raise RobenchError(f"{option} takes fractions (0.002,0.004) or counts (5000); got {text!r}") from None
    if any(not 0 < v < 1 if isinstance(v, float) else v < 1 for v in values):
        raise RobenchError(f"{option} takes fractions in (0, 1) (0.002,0.004) or counts ≥ 1 (5000); got {text!r}")
    return values
