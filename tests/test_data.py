"""Dataset specs: the bundled sample, npz files, image folders, CIFAR-10 (python format, folder, archive), limits."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import robench.data.decode as decode
import robench.data.specs as specs
from robench.data import ImageSet, load_dataset
from robench.data.specs import CIFAR10_CLASSES, read_cifar_batch
from robench.errors import RobenchError

# ---------------------------------------------------------------------------------------------- helpers


def _pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _save_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


def _png(path: Path, array: np.ndarray) -> np.ndarray:
    """Write ``array`` (H×W×3 or H×W) as a lossless PNG and return it as H×W×C."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array if array.ndim == 3 else array[:, :, None]


def _folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (8, 6), gray: bool = False,
            seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """An ImageFolder tree: ``classes`` maps class name → image count; returns {(class, file): pixels}."""
    written = {}
    for c_i, (name, count) in enumerate(classes.items()):
        for j in range(count):
            shape = size if gray else (*size, 3)
            fname = f"img{j:02d}.png"
            written[(name, fname)] = _png(root / name / fname, _pixels(seed * 1000 + c_i * 100 + j, shape))
    return written


# ---------------------------------------------------------------------------------------------- sample


def test_sample_is_the_first_1000_official_test_images() -> None:
    data = load_dataset("sample")
    assert len(data) == 1000
    assert data.image_shape == (3, 32, 32)
    assert data.images.shape == (1000, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    np.testing.assert_array_equal(data.index, np.arange(1000))
    assert data.labels.dtype == np.int64 and data.labels.min() == 0 and data.labels.max() == 9
    # the official CIFAR-10 test labels begin cat, ship, ship, airplane, frog, frog, automobile, frog, cat, automobile
    assert data.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(data.labels, minlength=10).min() > 60  # all classes present, roughly balanced
    assert data.identity["spec"] == "sample" and data.identity["split"] == "test" and data.identity["n"] == 1000


def test_sample_batches_are_float_nchw_in_unit_range() -> None:
    data = load_dataset("sample", limit=70)
    batches = list(data.batches(32))
    assert [start for start, _, _ in batches] == [0, 32, 64]
    assert [len(x) for _, x, _ in batches] == [32, 32, 6]
    for start, x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 32, 32) and x.is_contiguous()
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        expected = torch.from_numpy(np.asarray(data.images[start:start + len(x)])).permute(0, 3, 1, 2).float() / 255
        assert torch.equal(x, expected)
        assert torch.equal(y, torch.from_numpy(data.labels[start:start + len(x)]))
    x0 = batches[0][1]
    assert float(x0[0, 1, 2, 5]) == pytest.approx(float(data.images[0, 2, 5, 1]) / 255)  # channel from the last axis


def test_sample_has_no_train_split() -> None:
    with pytest.raises(RobenchError, match="test images only"):
        load_dataset("sample", split="train")


def test_fingerprint_depends_on_data() -> None:
    a, b = load_dataset("sample", limit=20, seed=1), load_dataset("sample", limit=20, seed=1)
    c = load_dataset("sample", limit=20, seed=2)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


# ---------------------------------------------------------------------------------------------- npz


def test_npz_nhwc_with_classes(tmp_path: Path) -> None:
    x, y = _pixels(0, (5, 4, 6, 3)), np.array([2, 0, 1, 2, 0], dtype=np.uint8)
    data = load_dataset(_save_npz(tmp_path / "d.npz", x=x, y=y, classes=np.array(["a", "b", "c"])))
    np.testing.assert_array_equal(np.asarray(data.images), x)
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [2, 0, 1, 2, 0]
    assert data.classes == ["a", "b", "c"]
    assert data.image_shape == (3, 4, 6)
    np.testing.assert_array_equal(data.index, np.arange(5))
    assert data.identity["name"] == "d" and data.identity["path"] == str((tmp_path / "d.npz").resolve())


def test_npz_nhw_becomes_one_channel_and_classes_default_to_numbers(tmp_path: Path) -> None:
    x, y = _pixels(1, (4, 5, 7)), np.array([0, 3, 1, 3])
    data = load_dataset(_save_npz(tmp_path / "g.npz", x=x, y=y))
    assert data.images.shape == (4, 5, 7, 1) and data.image_shape == (1, 5, 7)
    np.testing.assert_array_equal(np.asarray(data.images)[..., 0], x)
    assert data.classes == ["0", "1", "2", "3"]
    _, xb, _ = next(data.batches(4))
    assert xb.shape == (4, 1, 5, 7)


def test_npz_index_key_is_kept(tmp_path: Path) -> None:
    data = load_dataset(_save_npz(tmp_path / "i.npz", x=_pixels(2, (3, 2, 2, 3)), y=np.array([0, 1, 0]),
                                  index=np.array([7, 11, 40], dtype=np.int32)))
    assert data.index.dtype == np.int64 and data.index.tolist() == [7, 11, 40]


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": _pixels(0, (2, 4, 4, 3))}, r"must hold arrays 'x'.*'y'.*\['x'\]"),
    ({"images": _pixels(0, (2, 4, 4, 3)), "labels": np.array([0, 1])}, r"must hold arrays 'x'"),
    ({"x": _pixels(0, (2, 3, 8, 8)), "y": np.array([0, 1])}, "channels-first"),
    ({"x": _pixels(0, (2, 8, 8, 3)).astype(np.float32), "y": np.array([0, 1])}, "uint8"),
    ({"x": _pixels(0, (2, 8)), "y": np.array([0, 1])}, "uint8 N×H×W×C"),
    ({"x": _pixels(0, (2, 4, 4, 3)), "y": np.array([0.0, 1.0])}, "1-D integer"),
    ({"x": _pixels(0, (2, 4, 4, 3)), "y": np.array([[0], [1]])}, "1-D integer"),
    ({"x": _pixels(0, (2, 4, 4, 3)), "y": np.array([0, 5]), "classes": np.array(["a", "b"])}, r"labels must lie in 0\.\.1"),
    ({"x": _pixels(0, (2, 4, 4, 3)), "y": np.array([-1, 1])}, "labels must lie in"),
    ({"x": _pixels(0, (3, 4, 4, 3)), "y": np.array([0, 1])}, "3 images but 2 labels"),
    ({"x": np.zeros((0, 4, 4, 3), np.uint8), "y": np.zeros(0, np.int64), "classes": np.array(["a"])}, "empty"),
    ({"x": np.zeros((0, 4, 4, 3), np.uint8), "y": np.zeros(0, np.int64)}, "empty"),
    ({"x": _pixels(0, (2, 4, 4, 3)), "y": np.array([0, 1]), "classes": np.array(["a", "b"], dtype=object)}, "npz"),
])
def test_npz_errors_are_clear(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    spec = _save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(RobenchError, match=message) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)


def test_npz_empty_error_names_the_file(tmp_path: Path) -> None:
    spec = _save_npz(tmp_path / "nothing.npz", x=np.zeros((0, 4, 4, 3), np.uint8), y=np.zeros(0, np.int64))
    with pytest.raises(RobenchError, match="nothing"):
        load_dataset(spec)


def test_npz_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RobenchError, match=r"npz file .*absent\.npz not found"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"this is not an npz archive at all")
    with pytest.raises(RobenchError, match="cannot read npz file"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    with pytest.raises(RobenchError, match="not found"):
        load_dataset(f"npz:{tmp_path}")  # a directory is not an npz file


# ---------------------------------------------------------------------------------------------- imagefolder


def test_imagefolder_rgb_labels_follow_sorted_class_names(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    written = _folder(root, {"zebra": 2, "ant": 3, "moth": 1})
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / "moth" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "labels.csv").write_text("a file at the root is not a class")
    (root / ".hidden").mkdir()
    _png(root / ".hidden" / "x.png", _pixels(9, (8, 6, 3)))
    data = load_dataset(f"imagefolder:{root}")
    assert data.classes == ["ant", "moth", "zebra"]
    assert data.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert data.images.shape == (6, 8, 6, 3) and data.image_shape == (3, 8, 6)
    order = [("ant", "img00.png"), ("ant", "img01.png"), ("ant", "img02.png"), ("moth", "img00.png"),
             ("zebra", "img00.png"), ("zebra", "img01.png")]
    for i, key in enumerate(order):
        np.testing.assert_array_equal(np.asarray(data.images[i]), written[key])
    np.testing.assert_array_equal(data.index, np.arange(6))
    assert data.identity["name"] == "imgs"


def test_imagefolder_grayscale_tree_gives_one_channel(tmp_path: Path) -> None:
    written = _folder(tmp_path / "g", {"a": 2, "b": 2}, size=(5, 5), gray=True)
    data = load_dataset(f"imagefolder:{tmp_path / 'g'}")
    assert data.images.shape == (4, 5, 5, 1)
    np.testing.assert_array_equal(np.asarray(data.images[2]), written[("b", "img00.png")])


def test_imagefolder_uses_the_split_subdirectory(tmp_path: Path) -> None:
    root = tmp_path / "split"
    test_imgs = _folder(root / "test", {"cat": 1, "dog": 2}, seed=1)
    _folder(root / "train", {"cat": 3, "dog": 3}, seed=2)
    test = load_dataset(f"imagefolder:{root}", split="test")
    assert test.classes == ["cat", "dog"] and test.labels.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(np.asarray(test.images[1]), test_imgs[("dog", "img00.png")])
    train = load_dataset(f"imagefolder:{root}", split="train")
    assert len(train) == 6 and train.classes == ["cat", "dog"]
    with pytest.raises(RobenchError, match="val"):  # not silently treating test/ and train/ as classes
        load_dataset(f"imagefolder:{root}", split="val")


def test_imagefolder_without_split_dirs_serves_every_split(tmp_path: Path) -> None:
    _folder(tmp_path / "flat", {"a": 1, "b": 1})
    for split in ("test", "train", "val"):
        assert load_dataset(f"imagefolder:{tmp_path / 'flat'}", split=split).classes == ["a", "b"]


def test_imagefolder_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    _png(root / "a" / "0.png", _pixels(0, (8, 8, 3)))
    _png(root / "a" / "1.png", _pixels(1, (10, 12, 3)))
    with pytest.raises(RobenchError, match="--image-size") as info:
        load_dataset(f"imagefolder:{root}")
    assert "12×10" in str(info.value) and "8×8" in str(info.value)


def test_imagefolder_image_size_resizes_every_image(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    _png(root / "a" / "0.png", np.full((40, 60, 3), (200, 10, 50), np.uint8))
    _png(root / "b" / "1.png", np.full((30, 20, 3), (5, 250, 128), np.uint8))
    keep = _png(root / "b" / "2.png", _pixels(3, (16, 16, 3)))
    data = load_dataset(f"imagefolder:{root}", image_size=(16, 16))
    assert data.images.shape == (3, 16, 16, 3)
    assert np.abs(np.asarray(data.images[0], dtype=int) - [200, 10, 50]).max() <= 1  # a flat colour stays flat
    assert np.abs(np.asarray(data.images[1], dtype=int) - [5, 250, 128]).max() <= 1
    np.testing.assert_array_equal(np.asarray(data.images[2]), keep)  # already the right size: untouched
    wide = load_dataset(f"imagefolder:{root}", image_size=(8, 12))
    assert wide.images.shape == (3, 8, 12, 3)


def test_resize_center_crop_keeps_the_centre() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 16:48] = 255  # a white centre square covering the middle half
    out = np.asarray(decode.resize_center_crop(Image.fromarray(img), (28, 28)))
    assert out.shape == (28, 28, 3)
    # shorter side → 32, so the centre 28×28 crop shows the square (16 px) in the middle, black at the corners
    assert out[14, 14].min() > 240 and out[0, 0].max() < 15 and out[27, 27].max() < 15


@pytest.mark.parametrize("bad_position", ["first", "last"])
def test_imagefolder_undecodable_image_is_a_clear_error(tmp_path: Path, bad_position: str) -> None:
    root = tmp_path / "broken"
    _folder(root, {"a": 3, "b": 2})
    name = "aaa.png" if bad_position == "first" else "zzz.png"
    (root / "b" / name).write_bytes(b"\x89PNG not really a png")
    with pytest.raises(RobenchError, match=f"cannot decode image .*{name}"):
        load_dataset(f"imagefolder:{root}")


def test_imagefolder_truncated_image_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "trunc"
    _folder(root, {"a": 2})
    good = (root / "a" / "img01.png").read_bytes()
    (root / "a" / "img01.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(RobenchError, match="cannot decode image .*img01.png"):
        load_dataset(f"imagefolder:{root}")


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(RobenchError, match="not found"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RobenchError, match="no class sub-directories"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    (tmp_path / "noimg" / "a" / "readme.txt").write_text("x")
    with pytest.raises(RobenchError, match="holds no images"):
        load_dataset(f"imagefolder:{tmp_path / 'noimg'}")


def _decoded_files() -> list[Path]:
    return sorted((decode.cache_dir() / "decoded").glob("*.npy"))


def test_imagefolder_cache_is_reused_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cached"
    _folder(root, {"a": 2, "b": 2})
    first = load_dataset(f"imagefolder:{root}")
    assert len(_decoded_files()) == 1
    assert not isinstance(first.images, np.memmap)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite a valid cache entry")

    monkeypatch.setattr(decode, "decode_image", refuse)
    monkeypatch.setattr(specs, "stack_images", refuse)
    second = load_dataset(f"imagefolder:{root}")
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    assert second.labels.tolist() == first.labels.tolist() and second.classes == first.classes
    # a different --image-size is a different cache entry (and needs decoding)
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(f"imagefolder:{root}", image_size=(4, 4))


def test_imagefolder_cache_is_invalidated_by_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "changing"
    _folder(root, {"a": 2, "b": 1})
    before = np.asarray(load_dataset(f"imagefolder:{root}").images).copy()
    # same size in bytes? not necessarily: bump the mtime as an editor would, so the key must change either way
    path = root / "a" / "img01.png"
    new = _png(path, np.full((8, 6, 3), 77, np.uint8))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    after = load_dataset(f"imagefolder:{root}")
    np.testing.assert_array_equal(np.asarray(after.images[1]), new)
    np.testing.assert_array_equal(np.asarray(after.images[0]), before[0])
    # an added image also changes the entry
    _png(root / "b" / "img09.png", np.full((8, 6, 3), 3, np.uint8))
    assert len(load_dataset(f"imagefolder:{root}")) == 4


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "dmg"
    _folder(root, {"a": 2})
    first = np.asarray(load_dataset(f"imagefolder:{root}").images).copy()
    (npy,) = _decoded_files()
    npy.with_suffix(".json").write_text("{not json")
    np.testing.assert_array_equal(np.asarray(load_dataset(f"imagefolder:{root}").images), first)
    npy.write_bytes(npy.read_bytes()[:40])  # a truncated array file
    np.testing.assert_array_equal(np.asarray(load_dataset(f"imagefolder:{root}").images), first)


def test_unwritable_cache_does_not_stop_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "a-file" / "cache"))  # cannot be created
    written = _folder(tmp_path / "ro", {"a": 1})
    data = load_dataset(f"imagefolder:{tmp_path / 'ro'}")
    np.testing.assert_array_equal(np.asarray(data.images[0]), written[("a", "img00.png")])


# ---------------------------------------------------------------------------------------------- cifar10


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickles as Python 2's cPickle did for the published CIFAR files: byte strings as BINSTRING opcodes."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _dump(entry: object, path: Path, protocol: int | str = "py2") -> None:
    """``protocol`` "py2" writes the published files' format (numpy.core globals, BINSTRING data)."""
    if protocol == "py2":
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(entry)
        path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    else:
        with open(path, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)


def _cifar_batch(path: Path, images: np.ndarray, labels: list[int], protocol: int | str = "py2") -> None:
    """A batch file in CIFAR-10's python format: rows of 3072 bytes, the R plane, then G, then B."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    entry = {"batch_label": "testing batch 1 of 1", "labels": labels, "data": rows,
             "filenames": [f"img_{i}.png" for i in range(len(labels))]}
    path.parent.mkdir(parents=True, exist_ok=True)
    _dump(entry, path, protocol)


def _cifar_python(root: Path, protocol: int | str = "py2") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    train_x, train_y = [], []
    for i in range(1, 6):
        x, y = _pixels(10 + i, (3, 32, 32, 3)), [(i + k) % 10 for k in range(3)]
        _cifar_batch(folder / f"data_batch_{i}", x, y, protocol)
        train_x.append(x)
        train_y += y
    test_x, test_y = _pixels(20, (4, 32, 32, 3)), [9, 0, 4, 7]
    _cifar_batch(folder / "test_batch", test_x, test_y, protocol)
    return np.concatenate(train_x), np.array(train_y), test_x, np.array(test_y)


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])  # the published files; files re-saved by Python 3
def test_cifar10_python_format_round_trips(tmp_path: Path, protocol: int | str) -> None:
    train_x, train_y, test_x, test_y = _cifar_python(tmp_path, protocol)
    test = load_dataset("cifar10", split="test", data_dir=str(tmp_path))
    np.testing.assert_array_equal(np.asarray(test.images), test_x)
    assert test.labels.tolist() == test_y.tolist() and test.classes == CIFAR10_CLASSES
    assert test.identity["encoding"] == "lossless" and test.identity["name"] == "cifar10"
    train = load_dataset("cifar10", split="train", data_dir=str(tmp_path))
    assert len(train) == 15
    np.testing.assert_array_equal(np.asarray(train.images), train_x)
    assert train.labels.tolist() == train_y.tolist()
    np.testing.assert_array_equal(train.index, np.arange(15))


def test_cifar_batch_channel_order(tmp_path: Path) -> None:
    # one image whose red plane is 10, green 20, blue 30, except pixel (row 1, col 2) of the green plane
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    row[1024 + 1 * 32 + 2] = 99
    _dump({"data": row[None], "labels": [5]}, tmp_path / "b")
    x, y = read_cifar_batch(tmp_path / "b")
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.uint8 and x.flags["C_CONTIGUOUS"]
    assert x[0, 0, 0].tolist() == [10, 20, 30]
    assert x[0, 1, 2].tolist() == [10, 99, 30] and x[0, 2, 1].tolist() == [10, 20, 30]
    assert y.dtype == np.int64 and y.tolist() == [5]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {self.marker}",)


class _EvalPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [_Payload, _EvalPayload])
def test_cifar_batch_with_code_is_refused_without_running_it(tmp_path: Path, payload: type) -> None:
    _cifar_python(tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump({"data": payload(marker), "labels": [0]}, evil)
    with pytest.raises(RobenchError, match=r"cannot read CIFAR-10 batch .*test_batch.*not allowed"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()


def test_cifar_batch_damaged_or_missing(tmp_path: Path) -> None:
    _cifar_python(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(RobenchError, match="data_batch_3"):
        load_dataset("cifar10", split="train", data_dir=str(tmp_path))
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(")  # a truncated pickle
    with pytest.raises(RobenchError, match="test_batch"):
        load_dataset("cifar10", split="test", data_dir=str(tmp_path))
    _dump({"labels": [1]}, folder / "test_batch")  # no 'data'
    with pytest.raises(RobenchError, match="test_batch"):
        load_dataset("cifar10", split="test", data_dir=str(tmp_path))


def test_cifar10_rejects_val_split(tmp_path: Path) -> None:
    with pytest.raises(RobenchError, match="train and test splits only"):
        load_dataset("cifar10", split="val", data_dir=str(tmp_path))


def test_robench_data_env_var_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, test_x, test_y = _cifar_python(tmp_path / "datasets")
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path / "datasets"))
    data = load_dataset("cifar10")
    np.testing.assert_array_equal(np.asarray(data.images), test_x)
    assert data.labels.tolist() == test_y.tolist()
    assert data.identity["path"] == str((tmp_path / "datasets" / "cifar-10-batches-py").resolve())


def test_data_dir_takes_precedence_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, test_a, _ = _cifar_python(tmp_path / "a")
    _cifar_python(tmp_path / "b")
    _dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}, tmp_path / "b" / "cifar-10-batches-py" / "test_batch")
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path / "b"))
    np.testing.assert_array_equal(np.asarray(load_dataset("cifar10", data_dir=str(tmp_path / "a")).images), test_a)
    assert len(load_dataset("cifar10")) == 1


@pytest.mark.parametrize(("suffix", "encoding"), [(".png", "lossless"), (".jpg", "jpeg")])
def test_cifar10_imagefolder_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, encoding: str) -> None:
    monkeypatch.delenv("ROBENCH_DATA", raising=False)
    root = tmp_path / "data" / "cifar10" / "test"
    for k, name in enumerate(CIFAR10_CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(np.full((32, 32, 3), k * 20 + j, np.uint8)).save(root / name / f"{j:04d}{suffix}")
    data = load_dataset("cifar10", data_dir=str(tmp_path / "data"))
    assert data.classes == CIFAR10_CLASSES and data.labels.tolist() == [k for k in range(10) for _ in range(2)]
    assert data.identity["encoding"] == encoding
    assert abs(int(np.asarray(data.images)[5, 10, 10, 0]) - (2 * 20 + 1)) <= 3
    _fake_torchvision(monkeypatch, _no_download)
    with pytest.raises(RobenchError, match="CIFAR-10 not found"):  # no train/ tree, nothing to download
        load_dataset("cifar10", split="train", data_dir=str(tmp_path / "data"))


def _no_download(*args: object, **kwargs: object) -> None:
    raise RuntimeError("network unreachable (test)")


def _fake_torchvision(monkeypatch: pytest.MonkeyPatch, cifar10: object) -> None:
    """Replace torchvision's CIFAR10 (there is no network here) without the cost of importing torchvision."""
    package, datasets = types.ModuleType("torchvision"), types.ModuleType("torchvision.datasets")
    datasets.CIFAR10 = cifar10  # type: ignore[attr-defined]
    package.datasets = datasets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def test_missing_cifar10_lists_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def fail(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise RuntimeError("network unreachable (test)")

    _fake_torchvision(monkeypatch, fail)
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path / "env"))
    with pytest.raises(RobenchError) as info:
        load_dataset("cifar10", data_dir=str(tmp_path / "given"))
    msg = str(info.value)
    assert "\n" not in msg and "CIFAR-10 not found" in msg
    assert str(tmp_path / "given") in msg and str(tmp_path / "env") in msg
    assert "cifar-10-batches-py" in msg and "cifar10-jpeg.tar.gz" in msg and "--data-dir" in msg
    assert calls and calls[0][0] == str(tmp_path / "given")  # tried the first place only, and failed fast
    monkeypatch.delenv("ROBENCH_DATA")
    calls.clear()
    with pytest.raises(RobenchError, match="no --data-dir and no \$ROBENCH_DATA to look in"):
        load_dataset("cifar10")
    assert not calls


@pytest.mark.slow
def test_cifar10_jpeg_archive_matches_the_lossless_images(shared_data: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    data = load_dataset("cifar10", split="test", data_dir=str(shared_data))
    assert len(data) == 10_000 and data.images.shape == (10_000, 32, 32, 3)
    assert data.classes == CIFAR10_CLASSES
    assert data.labels.tolist() == [k for k in range(10) for _ in range(1000)]
    assert data.identity["encoding"] == "jpeg" and "JPEG" in data.identity["description"]
    assert data.identity["path"] == str((shared_data / "cifar10-jpeg.tar.gz").resolve())

    lossless = np.load(shared_data / "cifar10-test-lossless-1195.npz")
    labels_all, test_index, x = lossless["labels_all"], lossless["test_index"], lossless["x"]
    y = lossless["y"].astype(np.int64)
    rank = {k: np.flatnonzero(labels_all == k) for k in range(10)}
    # test/<class>/NNNN.jpg is the NNNN-th image of that class in the official order
    positions = np.array([y[i] * 1000 + int(np.searchsorted(rank[int(y[i])], test_index[i])) for i in range(len(y))])
    jpeg = np.asarray(data.images[positions], dtype=np.float32)
    diff = np.abs(jpeg - x.astype(np.float32)).mean(axis=(1, 2, 3)) / 255
    assert np.median(diff) < 8 / 255 and diff.max() < 16 / 255, (np.median(diff), diff.max())  # JPEG q≈75 noise
    assert data.labels[positions].tolist() == y.tolist()
    # a neighbour in the archive is far further away: the match is the image, not just a similar one
    shifted = np.asarray(data.images[np.where(positions % 1000 == 999, positions - 1, positions + 1)], np.float32)
    shifted_diff = np.abs(shifted - x.astype(np.float32)).mean(axis=(1, 2, 3)) / 255
    assert np.all(diff < shifted_diff) and np.median(shifted_diff) > 5 * np.median(diff)

    # the second load comes from the cache, memory-mapped, and a limit subsets it
    again = load_dataset("cifar10", split="test", data_dir=str(shared_data), limit=100, seed=3)
    assert len(again) == 100
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(data.images[again.index]))


# ---------------------------------------------------------------------------------------------- limit, specs


def _write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) in LeCun's IDX format, gzipped when ``path`` ends in .gz."""
    import gzip

    raw = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_mnist_idx_files_gzipped_or_not(tmp_path: Path) -> None:
    test_x, train_x = _pixels(0, (5, 28, 28)), _pixels(1, (3, 28, 28))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test_x)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([7, 2, 1, 0, 4], dtype=np.uint8))
    _write_idx(tmp_path / "train-images-idx3-ubyte", train_x)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([5, 0, 9], dtype=np.uint8))
    test = load_dataset(f"mnist:{tmp_path}")
    assert test.image_shape == (1, 28, 28) and test.labels.tolist() == [7, 2, 1, 0, 4]
    x, _ = test.batch(0, 5)
    assert torch.equal(x[:, 0], torch.from_numpy(test_x).float() / 255)
    train = load_dataset(f"mnist:{tmp_path}", split="train")
    assert np.array_equal(train.images[..., 0], train_x) and train.classes == [str(i) for i in range(10)]


def test_mnist_errors(tmp_path: Path) -> None:
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", _pixels(0, (5, 28, 28)))
    with pytest.raises(RobenchError, match="t10k-labels-idx1-ubyte.*not found"):
        load_dataset(f"mnist:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))  # 5 labels, 2 bytes
    with pytest.raises(RobenchError, match="truncated or corrupt"):
        load_dataset(f"mnist:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(RobenchError, match="not an IDX file"):
        load_dataset(f"mnist:{tmp_path}")
    with pytest.raises(RobenchError, match="train and test splits only"):
        load_dataset(f"mnist:{tmp_path}", split="val")


def test_limit_keeps_a_seeded_sorted_subset() -> None:
    full = load_dataset("sample")
    a = load_dataset("sample", limit=50, seed=7)
    b = load_dataset("sample", limit=50, seed=7)
    c = load_dataset("sample", limit=50, seed=8)
    assert len(a) == 50 and a.identity["n"] == 50 and a.identity["limit"] == 50 and a.identity["limit_seed"] == 7
    assert a.index.tolist() == b.index.tolist() != c.index.tolist()
    assert np.all(np.diff(a.index) > 0)
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(full.images[a.index]))
    np.testing.assert_array_equal(a.labels, full.labels[a.index])
    assert a.classes == full.classes


def test_limit_above_size_keeps_all_and_below_one_is_an_error(tmp_path: Path) -> None:
    data = load_dataset("sample", limit=5000)
    assert len(data) == 1000 and data.index.tolist() == list(range(1000))
    small = load_dataset(_save_npz(tmp_path / "s.npz", x=_pixels(0, (3, 2, 2, 3)), y=np.array([0, 1, 2])), limit=3)
    assert small.index.tolist() == [0, 1, 2]
    for bad in (0, -4):
        with pytest.raises(RobenchError, match="limit must be at least 1"):
            load_dataset("sample", limit=bad)


@pytest.mark.parametrize("spec", ["mnist", "npz:", "imagefolder:", "sample:extra", "cifar10:foo", "", "NPZ:x.npz"])
def test_unknown_spec_is_an_error(spec: str) -> None:
    with pytest.raises(RobenchError, match="unknown dataset .*cifar10, imagefolder:PATH, imagenet:PATH, mnist:DIR, npz:PATH, sample"):
        load_dataset(spec)


def test_unknown_split_is_an_error() -> None:
    with pytest.raises(RobenchError, match="unknown split 'valid'; choose one of train, test, val"):
        load_dataset("sample", split="valid")


def test_imageset_validates_its_arrays() -> None:
    x = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(RobenchError, match="uint8"):
        ImageSet(x.astype(np.float32), np.array([0, 1]), ["a", "b"], np.arange(2))
    with pytest.raises(RobenchError, match="uint8"):
        ImageSet(x[..., 0], np.array([0, 1]), ["a", "b"], np.arange(2))
    with pytest.raises(RobenchError, match="2 images but 3"):
        ImageSet(x, np.array([0, 1, 1]), ["a", "b"], np.arange(3))
    with pytest.raises(RobenchError, match="images but"):
        ImageSet(x, np.array([0, 1]), ["a", "b"], np.arange(3))
    sub = ImageSet(x, np.array([0, 1]), ["a", "b"], np.array([10, 20]), {"k": 1}).subset(np.array([1]))
    assert sub.index.tolist() == [20] and sub.identity == {"k": 1, "n": 1}
