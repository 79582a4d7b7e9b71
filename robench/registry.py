"""One registry type for every kind of named thing robench looks up: architectures, attributions,
suites, training methods and dataset kinds (in the style of timm's ``register_model``).

    ATTRIBUTIONS = Registry("attribution")

    @ATTRIBUTIONS.register()          # under the function's name
    def saliency(...): ...

    @SUITES.register("clean")         # or an explicit name
    class CleanSuite: ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from robench.errors import RobenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order; behaves as a read-only mapping."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: record the decorated object under ``name`` (default: its ``__name__``)."""

        def add(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """The entry called ``name``; a RobenchError naming the choices (sorted) otherwise:
        ``unknown attribution 'gradcam'; choose one of: input_x_gradient, ...`` (docs/errors.md)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RobenchError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._entries))}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
