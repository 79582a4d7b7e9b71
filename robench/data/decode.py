"""Decoding image files (folders and tar archives) into uint8 N×H×W×C arrays, with an on-disk cache.

Decoded arrays are cached under ``$ROBENCH_CACHE`` (default ``~/.cache/robench``) as ``.npy``
files that are memory-mapped on later runs, so a large set costs no memory beyond what a batch touches.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from robench.errors import RobenchError
from robench.io import atomic_path, write_json_atomic

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
SPLITS = ("train", "test", "val")


def cache_dir() -> Path:
    """Where decoded datasets are cached: ``$ROBENCH_CACHE`` or ``~/.cache/robench``."""
    return Path(os.environ.get("ROBENCH_CACHE") or Path.home() / ".cache" / "robench")


def cache_key(*parts: Any) -> str:
    """A short stable key from the parts that determine a decoded array."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]


def _read_npy(path: Path) -> np.ndarray | None:
    """A cached array, memory-mapped; None when absent or damaged (it is then rebuilt)."""
    try:
        return np.load(path, mmap_mode="r") if path.exists() else None
    except (ValueError, OSError):
        return None


def _write_npy(path: Path, array: np.ndarray) -> None:
    """Cache ``array`` atomically; a read-only cache directory must not stop the run."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
    except OSError:
        pass


def cached_array(key: str, build: Callable[[], np.ndarray], folder: str = "arrays") -> np.ndarray:
    """The array cached under ``folder/key``, memory-mapped; built and cached on first use."""
    path = cache_dir() / folder / f"{key}.npy"
    array = _read_npy(path)
    if array is None:
        array = build()
        _write_npy(path, array)
    return array


def cached_arrays(key: str, build: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (images memmap, labels, classes) for ``key``, building and caching them on first use."""
    root = cache_dir() / "decoded"
    images_path, meta_path = root / f"{key}.npy", root / f"{key}.json"
    images = _read_npy(images_path)
    if images is not None and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            return images, np.asarray(meta["labels"], dtype=np.int64), list(meta["classes"])
        except (ValueError, KeyError, OSError):
            pass  # a damaged cache entry is rebuilt below
    images, labels, classes = build()
    _write_npy(images_path, images)
    try:
        write_json_atomic(meta_path, {"labels": labels.tolist(), "classes": classes})
    except OSError:
        pass
    return images, labels, classes


def decode_image(data: bytes | Path, name: str, size: tuple[int, int] | None, grayscale: bool,
                 crop_pct: float = 0.875) -> np.ndarray:
    """Decode one image to uint8 H×W×C (C = 1 if ``grayscale`` else 3), resized to ``size`` if given
    (see :func:`resize_center_crop`; an image already of that size is kept as it is)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img = img.convert("L" if grayscale else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = resize_center_crop(img, size, crop_pct)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise RobenchError(f"cannot decode image {name}: {exc}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def resize_center_crop(img: Image.Image, size: tuple[int, int], crop_pct: float = 0.875) -> Image.Image:
    """Resize (bicubic) the shorter side to ``max(size) / crop_pct`` px (the ImageNet evaluation convention;
    timm's ``crop_pct``), then centre-crop to ``size`` (H, W)."""
    h, w = size
    scale = max(h, w) / crop_pct / min(img.size)
    img = img.resize((max(w, round(img.size[0] * scale)), max(h, round(img.size[1] * scale))),
                     Image.Resampling.BICUBIC)
    left, top = (img.size[0] - w) // 2, (img.size[1] - h) // 2
    return img.crop((left, top, left + w, top + h))


def resize_info(size: tuple[int, int] | None, crop_pct: float) -> dict[str, Any] | None:
    """How images are resized (for ``identity["resize"]`` and cache keys); None when they are not."""
    if size is None:
        return None
    return {"size": [int(size[0]), int(size[1])], "crop_pct": float(crop_pct), "interpolation": "bicubic"}


def stack_images(items: Iterable[tuple[bytes | Path, str]], count: int, size: tuple[int, int] | None,
                 grayscale: bool, progress: Callable[[Iterable[Any]], Iterator[Any]] | None = None,
                 crop_pct: float = 0.875) -> np.ndarray:
    """Decode ``count`` images into one uint8 N×H×W×C array; all must share a size unless ``size`` is given."""
    out: np.ndarray | None = None
    iterator = progress(items) if progress else items
    for i, (data, name) in enumerate(iterator):
        arr = decode_image(data, name, size, grayscale, crop_pct)
        if out is None:
            out = np.empty((count, *arr.shape), dtype=np.uint8)
        elif arr.shape != out.shape[1:]:
            raise RobenchError(
                f"image {name} is {arr.shape[1]}×{arr.shape[0]} but earlier ones are {out.shape[2]}×{out.shape[1]}; "
                "pass --image-size to resize them all"
            )
        out[i] = arr
    if out is None:
        raise RobenchError("no images found")
    return out


def split_root(path: Path, split: str, what: str) -> Path:
    """``path/split`` when it exists; ``path`` itself when it has no split folders at all; a RobenchError (naming
    ``what``, e.g. "image folder") when it has other split folders but not this one: they are not classes."""
    if (path / split).is_dir():
        return path / split
    others = [s for s in SPLITS if (path / s).is_dir()]
    if others:
        raise RobenchError(f"{what} {path} has no {split}/ sub-directory (it has {', '.join(others)}); "
                           f"pass --split {others[0]}")
    return path


def folder_listing(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """ImageFolder layout: ``root/<class>/<image>``; classes sorted by name, files sorted within each."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise RobenchError(f"{root} has no class sub-directories (expected ImageFolder layout root/<class>/<image>)")
    files = [(f, label) for label, c in enumerate(classes)
             for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise RobenchError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class directories")
    return files, classes


def folder_is_grayscale(files: list[tuple[Path, int]]) -> bool:
    """True when the first images are single-channel (mode L): the set is then decoded as 1 channel."""
    sample = files[:: max(1, len(files) // 16)][:16]
    modes = set()
    for f, _ in sample:
        try:
            with Image.open(f) as img:
                modes.add(img.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise RobenchError(f"cannot decode image {f}: {exc}") from None
    return modes <= {"L", "1", "I;16"}


def tar_image_names(archive: Path) -> list[str]:
    """The member names of every image file in a tar archive (any compression), sorted; nothing is extracted."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            return sorted(m.name for m in tar if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RobenchError(f"cannot read archive {archive}: {exc}") from None


def tar_images(archive: Path, keep: Callable[[str], bool]) -> list[tuple[bytes, str]]:
    """(bytes, member name) of every image file in a tar archive whose name ``keep`` accepts, sorted by name."""
    found: list[tuple[bytes, str]] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).suffix.lower() in IMAGE_SUFFIXES and keep(member.name):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        found.append((handle.read(), member.name))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RobenchError(f"cannot read archive {archive}: {exc}") from None
    return sorted(found, key=lambda t: t[1])


def tar_members(archive: Path, split: str) -> tuple[list[tuple[bytes, str, str]], list[str]]:
    """(bytes, member name, class) for every image under ``<split>/<class>/`` in a tar archive."""

    def in_split(name: str) -> bool:
        parts = Path(name).parts
        return len(parts) >= 3 and parts[-3] == split

    found = [(data, name, Path(name).parts[-2]) for data, name in tar_images(archive, in_split)]
    if not found:
        raise RobenchError(f"archive {archive} has no images under {split}/<class>/")
    return found, sorted({c for _, _, c in found})
