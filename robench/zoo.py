"""Models bundled with robench, addressed as ``zoo:NAME`` (files in ``robench/assets/zoo``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from robench.errors import RobenchError


def zoo_dir() -> Path:
    """The folder of the bundled models (``robench/assets/zoo``)."""
    return Path(str(files("robench").joinpath("assets/zoo")))


def zoo_names() -> list[str]:
    """Names of the bundled models."""
    folder = zoo_dir()
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def zoo_path(name: str) -> Path:
    """The checkpoint file of bundled model ``name``."""
    path = zoo_dir() / f"{name}.pt"
    if not path.is_file():
        raise RobenchError(f"no bundled model {name!r}; bundled: {', '.join(zoo_names()) or 'none'}")
    return path
