"""Atomic file writing, reproducible gzip and hashing: a result file is either whole or absent, never torn."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robench.errors import RobenchError


class WriteError(RobenchError, OSError):
    """A file could not be written (no space, read-only, permission): one line for the CLI, and still an
    ``OSError`` for callers that tolerate failed writes (the decoded-data cache)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def _write_error(what: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {what}: {exc.strerror or exc}", exc.errno)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic on POSIX).

    On any failure the temporary file is removed and ``path`` keeps its previous content; an
    ``OSError`` (disk full, read-only directory, ...) becomes a one-line :class:`WriteError`.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except WriteError:
        raise
    except OSError as exc:
        raise _write_error(target, exc) from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, target)
    except WriteError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(target, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(directory: str | os.PathLike[str], subject: str = "") -> None:
    """Fail early, with one line, when files cannot be written in ``directory``.

    Creates and removes a small probe file in ``directory``, or, when it does not exist yet, in its
    nearest existing ancestor (where it would be created), so a check that fails leaves nothing behind.
    Catches read-only file systems, missing permissions and a full disk before any work starts.
    ``subject`` names what would be written in the message ("cannot write the report to ...").
    """
    target = Path(directory).expanduser().absolute()
    lead = f"cannot write {subject} to {target}" if subject else f"cannot write to {target}"
    probe_dir = target
    while not probe_dir.exists() and probe_dir.parent != probe_dir:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise RobenchError(f"{lead}: {probe_dir} exists and is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".robench-write-check.", suffix=".tmp", dir=probe_dir)
    except OSError as exc:
        raise WriteError(f"{lead}: {exc.strerror or exc}", exc.errno) from None
    try:
        _write_probe(fd)
    except OSError as exc:
        raise WriteError(f"{lead}: {exc.strerror or exc}", exc.errno) from None
    finally:
        os.close(fd)
        Path(probe).unlink(missing_ok=True)


def _write_probe(fd: int) -> None:
    """Write 64 KiB: an empty file can be created on a full disk, data cannot."""
    os.write(fd, b"\0" * 65536)


def write_atomic(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` (its return value is ignored) and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def json_text(obj: Any) -> str:
    """``obj`` as robench writes JSON: indented, keys sorted, anything else as ``str``."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json_text(obj))


#: The compression level of the gzip files robench writes (:func:`gzip_bytes`); part of their bytes, so fixed.
GZIP_LEVEL = 9


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzip-compressed reproducibly: level :data:`GZIP_LEVEL`, modification time 0 and no file name in the
    header, so the same data always give the same bytes, whatever the file is called and whenever it is written
    (``gzip -dc`` or pandas read it back; committed files compare byte for byte with re-written ones)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=GZIP_LEVEL, mtime=0) as f:
        f.write(data)
    return buffer.getvalue()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
