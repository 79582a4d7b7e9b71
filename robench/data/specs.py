"""Turn a dataset spec into an :class:`ImageSet`.

Specs: ``cifar10`` (searched in ``--data-dir`` and ``$ROBENCH_DATA``: torchvision's python format,
an ImageFolder tree, or the ``cifar10-jpeg.tar.gz`` archive; downloaded through torchvision only
as a last resort), ``imagefolder:PATH``, ``npz:PATH`` (keys ``x`` uint8 N×H×W×C or N×H×W and
``y``; optional ``classes``), ``mnist:DIR`` (the IDX files of MNIST or Fashion-MNIST, gzipped or
not: ``t10k-*`` for the test split, ``train-*`` for train), ``imagenet:PATH`` (ILSVRC2012 images in
a ``<wnid>/`` folder tree, a tar archive of one, or a flat folder with a label file, labelled in the
standard 1,000-class index: see :mod:`robench.data.imagenet`), ``sample`` (1,000 lossless CIFAR-10
test images bundled with robench).
"""

from __future__ import annotations

import gzip
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from robench.data.decode import (
    SPLITS,
    cache_key,
    cached_arrays,
    folder_is_grayscale,
    folder_listing,
    resize_info,
    split_root,
    stack_images,
    tar_members,
)
from robench.data.imagenet import load_imagenet
from robench.data.imageset import ImageSet
from robench.errors import RobenchError, SettingError
from robench.progress import track
from robench.registry import Registry

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class DatasetKind:
    """A ``--data`` form: ``usage`` as users write it; ``load(arg, split, data_dir, image_size, crop_pct)`` →
    ImageSet, ``arg`` being the text after ``KIND:`` (required when ``takes_path``, absent otherwise);
    kinds that decode image files resize them to ``image_size`` (H, W) with ``crop_pct``, others ignore both."""

    usage: str
    takes_path: bool
    load: Callable[[str, str, str | None, tuple[int, int] | None, float], ImageSet]


#: The dataset kinds by name, filled by ``@dataset_kind(...)`` below.
DATASETS: Registry[DatasetKind] = Registry("dataset kind")


def dataset_kind(name: str, usage: str, takes_path: bool) -> Callable[[Callable[..., ImageSet]], Callable[..., ImageSet]]:
    """Decorator: register ``load(arg, split, data_dir, image_size, crop_pct)`` as the dataset kind ``name``."""

    def add(load: Callable[..., ImageSet]) -> Callable[..., ImageSet]:
        DATASETS.register(name)(DatasetKind(usage, takes_path, load))
        return load

    return add


def load_dataset(spec: str, split: str = "test", data_dir: str | None = None, limit: int | None = None,
                 seed: int = 0, image_size: tuple[int, int] | None = None, crop_pct: float = 0.875) -> ImageSet:
    """Load the dataset ``spec``; ``limit`` keeps a seeded random subset of that many images, in order.

    ``image_size`` (H, W) resizes folder and archive images (imagefolder, imagenet): shorter side
    (bicubic) to max(H, W)/``crop_pct`` px, then a centre crop (``crop_pct`` in (0, 1]: timm's
    pretrained_cfg value, 0.875 for most ImageNet models); arrays (npz, sample, CIFAR) are never resized.
    """
    if split not in SPLITS:
        raise RobenchError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not 0 < crop_pct <= 1:
        raise RobenchError(f"crop_pct must lie in (0, 1] (the fraction of the resized image kept), got {crop_pct}")
    name, _, arg = spec.partition(":")
    kind = DATASETS[name] if name in DATASETS else None
    if kind is None or kind.takes_path != bool(arg):
        raise RobenchError(f"unknown dataset {spec!r}; use one of {', '.join(dataset_usages())}")
    data = kind.load(arg, split, data_dir, image_size, crop_pct)
    data.identity.update(spec=spec, split=split)
    data = limited(data, limit, seed)
    data.identity["n"] = len(data)
    return data


def limited(data: ImageSet, limit: int | None, seed: int = 0) -> ImageSet:
    """A seeded random subset of ``limit`` images of ``data``, in dataset order (``--limit``); all when None."""
    if limit is None:
        return data
    if limit < 1:
        raise SettingError("limit", f"must be at least 1, got {limit}", sep=" ")
    if seed < 0:
        raise SettingError("seed", f"must be ≥ 0, got {seed}", sep=" ")
    if limit < len(data):
        data = data.subset(np.sort(np.random.default_rng(seed).choice(len(data), size=limit, replace=False)))
    data.identity.update(limit=limit, limit_seed=seed)
    return data


def dataset_usages() -> list[str]:
    """How each dataset kind is written (``npz:PATH``, ``sample``, ...), sorted."""
    return sorted(kind.usage for _, kind in DATASETS.items())


@dataset_kind("sample", "sample", takes_path=False)
def _sample_kind(arg: str, split: str, data_dir: str | None, image_size: tuple[int, int] | None,
                 crop_pct: float) -> ImageSet:
    return _sample(split)


@dataset_kind("cifar10", "cifar10", takes_path=False)
def _cifar10_kind(arg: str, split: str, data_dir: str | None, image_size: tuple[int, int] | None,
                  crop_pct: float) -> ImageSet:
    return _cifar10(split, data_dir)


@dataset_kind("imagefolder", "imagefolder:PATH", takes_path=True)
def _imagefolder_kind(arg: str, split: str, data_dir: str | None, image_size: tuple[int, int] | None,
                      crop_pct: float) -> ImageSet:
    return _imagefolder(Path(arg).expanduser(), split, image_size, crop_pct)


@dataset_kind("imagenet", "imagenet:PATH", takes_path=True)
def _imagenet_kind(arg: str, split: str, data_dir: str | None, image_size: tuple[int, int] | None,
                   crop_pct: float) -> ImageSet:
    return load_imagenet(Path(arg).expanduser(), split, image_size, crop_pct)


@dataset_kind("mnist", "mnist:DIR", takes_path=True)
def _mnist_kind(arg: str, split: str, data_dir: str | None, image_size: tuple[int, int] | None,
                crop_pct: float) -> ImageSet:
    return _mnist(Path(arg).expanduser(), split)


@dataset_kind("npz", "npz:PATH", takes_path=True)
def _npz_kind(arg: str, split: str, data_dir: str | None, image_size: tuple[int, int] | None,
              crop_pct: float) -> ImageSet:
    return _npz(Path(arg).expanduser())


def _sample(split: str) -> ImageSet:
    if split != "test":
        raise RobenchError("the bundled sample holds test images only; use --split test")
    with files("robench").joinpath("assets/cifar10_test_sample.npz").open("rb") as f:
        arrays = np.load(f)
        x, y, index = arrays["x"], arrays["y"].astype(np.int64), arrays["test_index"].astype(np.int64)
    ident = {"name": "cifar10-sample", "description": "CIFAR-10 official test images 0..999 (lossless), bundled"}
    return ImageSet(x, y, CIFAR10_CLASSES, index, ident)


def _npz(path: Path) -> ImageSet:
    if not path.is_file():
        raise RobenchError(f"npz file {path} not found")
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        arrays = np.load(path, allow_pickle=False) if is_zip else None
        keys = set(arrays.files) if arrays is not None else set()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RobenchError(f"cannot read npz file {path}: {exc}") from None
    if arrays is None:
        raise RobenchError(f"cannot read npz file {path}: not an .npz archive (write one with numpy.savez(path, x=images, y=labels))")
    if not {"x", "y"} <= keys:
        raise RobenchError(f"npz file {path} must hold arrays 'x' (uint8 N×H×W×C) and 'y' (labels); it has {sorted(keys)}")
    try:
        x, y = arrays["x"], arrays["y"]
        names = arrays["classes"] if "classes" in keys else None
        index = arrays["index"] if "index" in keys else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # object arrays (pickle), damage
        raise RobenchError(f"cannot read npz file {path}: {exc}") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8 or x.ndim != 4:
        raise RobenchError(f"npz key 'x' must be uint8 N×H×W×C or N×H×W, got {x.dtype} {x.shape}")
    if x.shape[-1] not in (1, 3, 4) and x.shape[1] in (1, 3):
        raise RobenchError(f"npz key 'x' has shape {x.shape}, which looks channels-first; store it as N×H×W×C")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise RobenchError(f"npz key 'y' must be a 1-D integer array, got {y.dtype} {y.shape}")
    if len(y) == 0:
        raise RobenchError(f"npz file {path} is empty (no images)")
    classes = [str(c) for c in names] if names is not None else [str(i) for i in range(int(y.max()) + 1)]
    index = index.astype(np.int64) if index is not None else np.arange(len(y))
    return ImageSet(x, y.astype(np.int64), classes, index, {"name": path.stem, "path": str(path.resolve())})


def _mnist(folder: Path, split: str) -> ImageSet:
    """MNIST-style IDX files in ``folder``: ``{t10k,train}-images-idx3-ubyte[.gz]`` and ``-labels-idx1-ubyte[.gz]``."""
    if split == "val":
        raise RobenchError("MNIST has train and test splits only")
    stem = "t10k" if split == "test" else "train"
    arrays = []
    for name in (f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte"):
        found = [p for p in (folder / f"{name}.gz", folder / name) if p.is_file()]
        if not found:
            raise RobenchError(f"MNIST file {name}[.gz] not found in {folder}")
        arrays.append(read_idx(found[0]))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1:
        raise RobenchError(f"MNIST files in {folder} hold arrays of shape {images.shape} and {labels.shape}, "
                           "not N×H×W images and N labels")
    ident = {"name": "mnist", "path": str(folder.resolve()), "encoding": "lossless"}
    classes = [str(i) for i in range(10)]
    return ImageSet(images[..., None], labels.astype(np.int64), classes, np.arange(len(labels)), ident)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, gzipped when the name ends in ``.gz``) of unsigned bytes as an array."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise RobenchError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise RobenchError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) != offset + int(np.prod(shape)):
        raise RobenchError(f"IDX file {path} holds {len(raw) - offset} data bytes, not the {int(np.prod(shape))} "
                           f"of its shape {shape}: truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape).copy()


def _imagefolder(path: Path, split: str, image_size: tuple[int, int] | None, crop_pct: float) -> ImageSet:
    if not path.is_dir():
        raise RobenchError(f"image folder {path} " + ("is not a directory" if path.exists() else "not found"))
    root = split_root(path, split, "image folder")
    return _decode_folder(root, {"name": path.name, "path": str(path.resolve())}, image_size, crop_pct)


def _decode_folder(root: Path, identity: dict, image_size: tuple[int, int] | None, crop_pct: float = 0.875) -> ImageSet:
    listing, classes = folder_listing(root)
    stat = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f, _ in listing]
    resize = resize_info(image_size, crop_pct)
    key = cache_key("folder", str(root.resolve()), stat, resize)

    def build() -> tuple[np.ndarray, np.ndarray, list[str]]:
        gray = folder_is_grayscale(listing)
        images = stack_images(((f, str(f)) for f, _ in listing), len(listing), image_size, gray,
                              progress=lambda it: track(it, total=len(listing), description=f"decoding {root.name}"),
                              crop_pct=crop_pct)
        return images, np.array([label for _, label in listing], dtype=np.int64), classes

    images, labels, classes = cached_arrays(key, build)
    if resize:
        identity["resize"] = resize
    return ImageSet(images, labels, classes, np.arange(len(labels)), identity)


def _cifar10(split: str, data_dir: str | None) -> ImageSet:
    if split == "val":
        raise RobenchError("CIFAR-10 has train and test splits only")
    roots = [Path(p).expanduser() for p in (data_dir, os.environ.get("ROBENCH_DATA")) if p]
    for root in roots:
        if (root / "cifar-10-batches-py").is_dir():
            return _cifar10_torchvision(root, split, download=False)
        for folder in (root / "cifar10", root / "cifar10-jpeg", root):
            if (folder / split).is_dir() and {p.name for p in (folder / split).iterdir()} >= set(CIFAR10_CLASSES):
                data = _decode_folder(folder / split, {"name": "cifar10", "path": str(folder.resolve())}, None)
                data.identity["encoding"] = "jpeg" if any((folder / split / "airplane").glob("*.jpg")) else "lossless"
                return data
        archive = root / "cifar10-jpeg.tar.gz"
        if archive.is_file():
            return _cifar10_archive(archive, split)
    if roots:
        target = roots[0]
        try:
            return _cifar10_torchvision(target, split, download=True)
        except RobenchError:
            pass
    if not roots:
        raise RobenchError("CIFAR-10 not found: no --data-dir and no $ROBENCH_DATA to look in; pass --data-dir DIR (a "
                           "folder holding cifar-10-batches-py/, an ImageFolder tree or cifar10-jpeg.tar.gz)")
    raise RobenchError(
        f"CIFAR-10 not found in {', '.join(str(r) for r in roots)} (looked for cifar-10-batches-py/, an ImageFolder "
        f"{split}/ tree, cifar10-jpeg.tar.gz) and it could not be downloaded; pass --data-dir DIR"
    )


def _cifar10_torchvision(root: Path, split: str, download: bool) -> ImageSet:
    """torchvision's python format (``cifar-10-batches-py/``), downloading it first when asked."""
    folder = root / "cifar-10-batches-py"
    if download:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(root), train=split == "train", download=True)
        except Exception as exc:  # download failures come as URLError, OSError, RuntimeError
            raise RobenchError(f"CIFAR-10 could not be downloaded into {root}: {exc}") from None
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        x, y = read_cifar_batch(folder / name)
        xs.append(x)
        ys.append(y)
    ident = {"name": "cifar10", "path": str(folder.resolve()), "encoding": "lossless"}
    y_all = np.concatenate(ys)
    return ImageSet(np.concatenate(xs), y_all, CIFAR10_CLASSES, np.arange(len(y_all)), ident)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's batch files, refusing every global except NumPy's array reconstruction."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               # how Python 3 pickles bytes at protocol 2, and NumPy arrays at protocol 5: data only, no code
               ("_codecs", "encode"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch file")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file of the python format → (uint8 N×32×32×3, int64 labels), read without running code."""
    try:
        with open(path, "rb") as f:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
        raise RobenchError(f"cannot read CIFAR-10 batch {path}: {exc}") from None
    return np.ascontiguousarray(data), labels


def _cifar10_archive(archive: Path, split: str) -> ImageSet:
    stat = archive.stat()
    key = cache_key("cifar10-archive", str(archive.resolve()), stat.st_size, stat.st_mtime_ns, split)

    def build() -> tuple[np.ndarray, np.ndarray, list[str]]:
        members, classes = tar_members(archive, split)
        if classes != CIFAR10_CLASSES:
            raise RobenchError(f"archive {archive} has classes {classes}, not CIFAR-10's")
        images = stack_images(((data, name) for data, name, _ in members), len(members), None, False,
                              progress=lambda it: track(it, total=len(members), description=f"decoding cifar10 {split}"))
        labels = np.array([CIFAR10_CLASSES.index(c) for _, _, c in members], dtype=np.int64)
        return images, labels, classes

    images, labels, classes = cached_arrays(key, build)
    ident = {"name": "cifar10", "path": str(archive.resolve()), "encoding": "jpeg",
             "description": "CIFAR-10 (JPEG re-encoded)"}
    return ImageSet(images, labels, classes, np.arange(len(labels)), ident)
