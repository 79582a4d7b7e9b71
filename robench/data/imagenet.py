"""ImageNet (ILSVRC2012) images labelled in the standard 1,000-class index (``imagenet:PATH``).

A class's label is the position of its wnid in sorted order (timm's synset list, the torchvision and
Caffe order), whichever subset of the 1,000 classes the data holds; ``classes`` are the 1,000 names
(the first lemma, with the wnid added where two classes share one: ``crane (n02012849)``).
``PATH`` may be:

- a folder ``PATH/<split>/<wnid>/<image>`` or ``PATH/<wnid>/<image>`` (every sub-folder holding images
  must be named by an ImageNet wnid);
- a tar archive (``.tar``, ``.tar.gz``, ...) holding ``<split>/<wnid>/<image>`` or ``<wnid>/<image>`` at
  any depth (images under another split's folder are skipped);
- a flat folder of images (``PATH/<split>/`` or ``PATH``, no sub-folder holding images), or an archive
  whose images are not in ``<wnid>/`` folders, with a label file.

Label files are looked for (flat forms only) in the image folder, then in ``PATH`` when the images are in
``PATH/<split>/``; for an archive, in the folder holding it. In each place the first of these found is used:

1. ``<name>-labels.csv``, ``<name>.csv``, ``labels.csv`` (``<name>``: the folder's name, or the archive's
   without ``.tar``/``.tar.gz``/``.tgz``): a header row with a file column (``file``, ``filename`` or
   ``image``) and a label column (``label``, ``index`` or ``class``: a standard index 0..999 or a wnid;
   else ``wnid``); a ``wnid`` column beside an index column must agree with it;
2. ``val.txt``: Caffe's ``ILSVRC2012_val_00000001.JPEG 65`` lines (standard index);
3. the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (there, in ``data/`` or in
   ``ILSVRC2012_devkit_t12/data/``): line k labels ``ILSVRC2012_val_<k as 8 digits>`` by an ILSVRC2012_ID,
   the devkit's own class order, mapped to wnids through the devkit's ``meta.mat`` beside it or in ``data/``.

An image matches a label by file name, or by name without extension (``ILSVRC2012_val_00000001`` matches any
format). Every image needs a label; a label file may name more files than there are (a subset of the set).
Images are ordered by path (member name for an archive), which is label order in the ``<wnid>/`` forms.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache, partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from robench.data.decode import (
    IMAGE_SUFFIXES,
    SPLITS,
    cache_key,
    cached_array,
    resize_info,
    split_root,
    stack_images,
    tar_image_names,
    tar_images,
)
from robench.data.imageset import ImageSet
from robench.errors import RobenchError
from robench.progress import track

LABEL_INDEX = "ILSVRC2012 standard (sorted wnids)"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
WNID = re.compile(r"n\d{8}")
FILE_COLUMNS = ("file", "filename", "image")
LABEL_COLUMNS = ("label", "index", "class", "wnid")


@lru_cache(maxsize=1)
def standard_classes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(wnids, names) of the 1,000 ILSVRC2012 classes in standard index order, from timm's synset list."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = tuple(info.label_names())
    firsts = [info.index_to_description(i).split(",")[0].strip() for i in range(len(wnids))]
    shared = {name for name, count in Counter(firsts).items() if count > 1}
    names = tuple(f"{name} ({wnid})" if name in shared else name for name, wnid in zip(firsts, wnids))
    return wnids, names


@lru_cache(maxsize=1)
def _index_of() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(standard_classes()[0])}


def load_imagenet(path: Path, split: str, image_size: tuple[int, int] | None, crop_pct: float) -> ImageSet:
    """``imagenet:PATH`` → uint8 N×H×W×3 images (resized to ``image_size`` (H, W) with ``crop_pct`` when
    given), labels in the standard 1,000-class index, the 1,000 class names."""
    if path.is_dir():
        root = split_root(path, split, "ImageNet folder")
        names, labels, labels_from = _folder_labels(root, path)
        stat = [(name, (root / name).stat().st_size, (root / name).stat().st_mtime_ns) for name in names]
        source: tuple = ("imagenet-folder", str(root.resolve()), stat)
        # generators: nothing is read unless the cache misses
        items: Iterator[tuple[bytes | Path, str]] = _folder_items(root, names)
        display = path.name
    elif path.is_file():
        names, labels, labels_from = _archive_labels(path, split)
        st = path.stat()
        source = ("imagenet-archive", str(path.resolve()), st.st_size, st.st_mtime_ns, names)
        items = _archive_items(path, names)
        display = _archive_stem(path)
    else:
        raise RobenchError(f"ImageNet data {path} not found")
    resize = resize_info(image_size, crop_pct)
    progress = partial(track, total=len(names), description=f"decoding {display}")
    images = cached_array(cache_key(*source, resize),
                          lambda: stack_images(items, len(names), image_size, False, progress, crop_pct), "decoded")
    _, classes = standard_classes()
    identity: dict[str, Any] = {"name": display, "path": str(path.resolve()),
                                "description": "ImageNet (ILSVRC2012) images", "label_index": LABEL_INDEX,
                                "labels_from": labels_from}
    if resize:
        identity["resize"] = resize
    return ImageSet(images, labels, list(classes), np.arange(len(labels)), identity)


def _folder_items(root: Path, names: list[str]) -> Iterator[tuple[Path, str]]:
    for name in names:
        yield root / name, str(root / name)


def _archive_items(archive: Path, names: list[str]) -> Iterator[tuple[bytes, str]]:
    wanted = set(names)
    for data, name in tar_images(archive, wanted.__contains__):
        yield data, f"{archive}:{name}"


def _is_image(name: str) -> bool:
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _folder_labels(root: Path, path: Path) -> tuple[list[str], np.ndarray, str]:
    """(image paths relative to ``root``, labels, where labels came from) for a folder."""
    nested = sorted(f"{d.name}/{f.name}" for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                    for f in d.iterdir() if f.is_file() and _is_image(f.name))
    if nested:
        return nested, _wnid_labels(nested, root), "folders (wnids)"
    flat = sorted(f.name for f in root.iterdir() if f.is_file() and _is_image(f.name))
    if not flat:
        raise RobenchError(f"ImageNet folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)}), "
                           "neither in <wnid>/ sub-directories nor beside a label file")
    places = [root, path] if root != path else [root]
    labels_file = _find_label_file([(place, place.name) for place in places], root)
    return flat, _file_labels(flat, labels_file, root), str(labels_file.resolve())


def _archive_stem(archive: Path) -> str:
    return re.sub(r"\.(tar(\.\w+)?|tgz|tbz2|txz)$", "", archive.name, flags=re.IGNORECASE)


def _archive_labels(archive: Path, split: str) -> tuple[list[str], np.ndarray, str]:
    """(member names, labels, where labels came from) for a tar archive; its listing is cached."""
    st = archive.stat()
    key = cache_key("tar-image-names", str(archive.resolve()), st.st_size, st.st_mtime_ns)
    every = [str(n) for n in cached_array(key, lambda: np.array(tar_image_names(archive), dtype=str), "listings")]
    every = [n for n in every if _is_image(PurePosixPath(n).name)]
    folders = [set(PurePosixPath(n).parts[:-1]) for n in every]
    names = [n for n, dirs in zip(every, folders) if split in dirs]
    if not names:
        others = sorted({s for dirs in folders for s in SPLITS if s in dirs})
        if others:
            raise RobenchError(f"archive {archive} has no images under a {split}/ folder (it has "
                               f"{', '.join(others)}); pass --split {others[0]}")
        names = every
    if not names:
        raise RobenchError(f"archive {archive} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if any(WNID.fullmatch(PurePosixPath(n).parent.name) for n in names):
        return names, _wnid_labels(names, archive), "folders (wnids)"
    labels_file = _find_label_file([(archive.parent, _archive_stem(archive))], archive)
    return names, _file_labels(names, labels_file, archive), str(labels_file.resolve())


def _wnid_labels(names: list[str], where: Path) -> np.ndarray:
    """Labels from each image's folder name, which must be an ImageNet wnid."""
    index = _index_of()
    folders = [PurePosixPath(n).parent for n in names]
    bad = next((f for f in folders if f.name not in index), None)
    if bad is not None:
        raise RobenchError(f"folder {bad} in {where} is not one of the 1,000 ImageNet (ILSVRC2012) wnids "
                           "(like n01440764); name class folders by wnid")
    return np.array([index[f.name] for f in folders], dtype=np.int64)


def _find_label_file(places: list[tuple[Path, str]], where: Path) -> Path:
    """The first label file found (see the module docstring for the order)."""
    tried = []
    for place, name in places:
        candidates = [place / f"{name}-labels.csv", place / f"{name}.csv", place / "labels.csv", place / "val.txt",
                      place / GROUND_TRUTH, place / "data" / GROUND_TRUTH,
                      place / "ILSVRC2012_devkit_t12" / "data" / GROUND_TRUTH]
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            return found
        tried.append(str(place))
    raise RobenchError(f"{where} holds images outside <wnid>/ folders but no label file was found in "
                       f"{' or '.join(tried)} (looked for <name>-labels.csv, <name>.csv, labels.csv, val.txt, "
                       f"{GROUND_TRUTH})")


def _file_labels(names: list[str], labels_file: Path, where: Path) -> np.ndarray:
    """The label of each image in ``names`` (paths) from ``labels_file``, matched by file name or stem."""
    table = read_label_file(labels_file)
    labels, unlabelled, used = [], [], set()
    for name in names:
        base = PurePosixPath(name).name
        key = base if base in table else PurePosixPath(base).stem
        if key in table:
            labels.append(table[key])
            used.add(key)
        else:
            unlabelled.append(name)
    if unlabelled:
        extra = sorted(set(table) - used)
        also = f"; {len(extra)} of its labels name files not there (e.g. {extra[0]})" if extra else ""
        raise RobenchError(f"{len(unlabelled)} of {len(names)} images in {where} have no label in {labels_file} "
                           f"(e.g. {unlabelled[0]}){also}")
    return np.array(labels, dtype=np.int64)


def read_label_file(path: Path) -> dict[str, int]:
    """{file name, or name without extension: standard class index} from a CSV, Caffe ``val.txt`` or the
    devkit's ground truth (read with its ``meta.mat``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RobenchError(f"cannot read label file {path}: {exc}") from None
    if path.name == GROUND_TRUTH:
        return _ground_truth_labels(path, text)
    table: dict[str, int] = {}
    rows = _csv_rows(path, text) if path.suffix.lower() == ".csv" else _caffe_rows(path, text)
    for where, file, label in rows:
        key = PurePosixPath(file.replace("\\", "/")).name
        if table.setdefault(key, label) != label:
            raise RobenchError(f"{where}: {key} is labelled twice, as {table[key]} and {label}")
    return table


def _csv_rows(path: Path, text: str) -> list[tuple[str, str, int]]:
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    file_col = next((header.index(c) for c in FILE_COLUMNS if c in header), None)
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if file_col is None or label_col is None:
        raise RobenchError(f"label file {path} needs a header with a file column ({', '.join(FILE_COLUMNS)}) and a "
                           f"label column ({', '.join(LABEL_COLUMNS)}); it has {', '.join(header) or 'none'}")
    wnid_col = header.index("wnid") if "wnid" in header and header.index("wnid") != label_col else None
    out = []
    for line, row in enumerate(rows[1:], 2):
        where = f"line {line} of {path}"
        if len(row) < len(header):
            raise RobenchError(f"{where} has {len(row)} fields, not the header's {len(header)}")
        label = class_index(row[label_col].strip(), where)
        if wnid_col is not None and class_index(row[wnid_col].strip(), where) != label:
            raise RobenchError(f"{where}: label {label} is {standard_classes()[0][label]}, but its wnid column "
                               f"says {row[wnid_col].strip()}")
        out.append((where, row[file_col].strip(), label))
    return out


def _caffe_rows(path: Path, text: str) -> list[tuple[str, str, int]]:
    out = []
    for line, row in enumerate(text.splitlines(), 1):
        where = f"line {line} of {path}"
        fields = row.split()
        if fields and len(fields) != 2:
            raise RobenchError(f"{where} is not 'FILE INDEX': {row.strip()[:80]!r}")
        if fields:
            out.append((where, fields[0], class_index(fields[1], where)))
    return out


def class_index(text: str, where: str) -> int:
    """A standard class index 0..999, or a wnid, as its standard index."""
    index = _index_of()
    if text in index:
        return index[text]
    if not re.fullmatch(r"[+-]?\d+", text):
        raise RobenchError(f"{where}: label {text!r} is neither a class index 0..999 nor an ImageNet wnid")
    if not 0 <= int(text) < len(index):
        raise RobenchError(f"{where}: label {int(text)} is outside the standard class index 0..{len(index) - 1}")
    return int(text)


def _ground_truth_labels(path: Path, text: str) -> dict[str, int]:
    """The devkit's validation ground truth: ``ILSVRC2012_val_<k>`` → standard index, through ``meta.mat``."""
    metas = [path.parent / "meta.mat", path.parent / "data" / "meta.mat"]
    meta = next((m for m in metas if m.is_file()), None)
    if meta is None:
        raise RobenchError(f"{path} numbers classes in the devkit's own order and needs the devkit's meta.mat to "
                           f"map them to wnids; it is not in {path.parent} or {path.parent / 'data'}")
    id_to_wnid = devkit_wnids(meta)
    index, table = _index_of(), {}
    for line, row in enumerate(text.splitlines(), 1):
        if not row.strip():
            continue
        where = f"line {line} of {path}"
        if not re.fullmatch(r"\d+", row.strip()) or int(row) not in id_to_wnid:
            raise RobenchError(f"{where}: {row.strip()[:40]!r} is not an ILSVRC2012_ID of a class in {meta}")
        wnid = id_to_wnid[int(row)]
        if wnid not in index:
            raise RobenchError(f"{meta} maps ILSVRC2012_ID {int(row)} to {wnid}, not one of the 1,000 ImageNet wnids")
        table[f"ILSVRC2012_val_{line:08d}"] = index[wnid]
    return table


def devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012_ID → wnid of the leaf synsets (the 1,000 classes) in the devkit's ``meta.mat``, read as
    torchvision's ImageNet reads it."""
    import scipy.io

    try:
        synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
        ids, wnids, children = (np.atleast_1d(synsets[f]) for f in ("ILSVRC2012_ID", "WNID", "num_children"))
        return {int(i): str(w) for i, w, c in zip(ids, wnids, children) if int(c) == 0}
    except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError,
            scipy.io.matlab.MatReadError) as exc:
        raise RobenchError(f"cannot read the devkit's class list {meta}: {exc}") from None
