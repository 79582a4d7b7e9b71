"""The imagenet:PATH dataset kind (standard 1,000-class index in every form) and the crop fraction."""

from __future__ import annotations

import csv
import io
import math
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import scipy.io
from PIL import Image

import robench
import robench.data.decode as decode
import robench.data.imagenet as imagenet
from robench.data import load_dataset
from robench.errors import RobenchError
from tests.conftest import SHARED

# real wnids and their standard indices (sorted-wnid order)
TENCH, GOLDFISH, SHARK, TOILET_TISSUE = "n01440764", "n01443537", "n01484850", "n15075141"
INDEX = {TENCH: 0, GOLDFISH: 1, SHARK: 2, TOILET_TISSUE: 999}
REAL = SHARED / "imagenet"

# ---------------------------------------------------------------------------------------------- helpers


def _image(path: Path, size: tuple[int, int], seed: int) -> bytes:
    """Write a random RGB image of ``size`` (H, W) as JPEG or PNG (by suffix); return its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return path.read_bytes()


def _decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _wnid_tree(root: Path, counts: dict[str, int], seed: int = 0) -> dict[str, bytes]:
    """``root/<wnid>/<wnid>_<j>.JPEG`` of mixed sizes; returns {relative path: bytes}."""
    written = {}
    for c, (wnid, count) in enumerate(counts.items()):
        for j in range(count):
            name = f"{wnid}/{wnid}_{j}.JPEG"
            written[name] = _image(root / name, (20 + 4 * j, 26 - 2 * c), seed * 100 + c * 10 + j)
    return written


def _val_name(k: int) -> str:
    return f"ILSVRC2012_val_{k:08d}.JPEG"


def _flat(root: Path, count: int) -> dict[str, bytes]:
    """``root/ILSVRC2012_val_0000000k.JPEG`` for k = 1..count, all 16×16."""
    return {_val_name(k): _image(root / _val_name(k), (16, 16), k) for k in range(1, count + 1)}


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FIELDS = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images")


def _meta_mat(path: Path, leaves: list[str]) -> None:
    """A devkit ``meta.mat``: ``leaves`` get ILSVRC2012_ID 1, 2, ... (the devkit's own order), then one
    non-leaf synset, as in the real file (fields in the devkit's order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    synsets = np.zeros(len(leaves) + 1, dtype=[(f, object) for f in FIELDS])
    for i, wnid in enumerate(leaves):
        synsets[i] = (i + 1, wnid, f"thing {i}, other name", "a gloss", 0, np.zeros(0), 0, 1300)
    synsets[-1] = (len(leaves) + 1, "n00001740", "entity", "the root", 2, np.array([1, 2]), 19, 0)
    scipy.io.savemat(path, {"synsets": synsets})


# ---------------------------------------------------------------------------------------------- class index


def test_standard_classes_are_the_sorted_wnids_with_unique_names() -> None:
    wnids, names = imagenet.standard_classes()
    assert len(wnids) == len(names) == len(set(names)) == 1000 and list(wnids) == sorted(wnids)
    assert [wnids[i] for i in INDEX.values()] == list(INDEX)
    assert names[:3] == ("tench", "goldfish", "great white shark") and names[999] == "toilet tissue"
    assert "crane (n02012849)" in names and "crane (n03126707)" in names  # a bird and a machine


# ---------------------------------------------------------------------------------------------- folder and tar forms


def test_folder_of_some_classes_keeps_the_standard_index(tmp_path: Path) -> None:
    _wnid_tree(tmp_path / "inet", {TOILET_TISSUE: 2, GOLDFISH: 1, SHARK: 2})
    (tmp_path / "inet" / "README.txt").write_text("not an image")
    data = load_dataset(f"imagenet:{tmp_path / 'inet'}", image_size=(12, 12))
    assert data.labels.tolist() == [1, 2, 2, 999, 999]  # by path, so by wnid
    assert len(data.classes) == 1000 and data.classes[1] == "goldfish" and data.classes[999] == "toilet tissue"
    assert data.images.shape == (5, 12, 12, 3) and data.images.dtype == np.uint8
    ident = data.identity
    assert ident["label_index"] == imagenet.LABEL_INDEX
    assert ident["labels_from"] == "folders (wnids)" and ident["name"] == "inet"
    assert ident["resize"] == {"size": [12, 12], "crop_pct": 0.875, "interpolation": "bicubic"}
    with pytest.raises(RobenchError, match="--image-size"):  # mixed sizes
        load_dataset(f"imagenet:{tmp_path / 'inet'}")


def test_same_sized_images_need_no_image_size(tmp_path: Path) -> None:
    root = tmp_path / "same"
    bytes_ = _image(root / GOLDFISH / "a.png", (9, 7), 1)
    _image(root / TENCH / "b.png", (9, 7), 2)
    data = load_dataset(f"imagenet:{root}")
    assert data.labels.tolist() == [0, 1] and "resize" not in data.identity  # tench's folder sorts first
    np.testing.assert_array_equal(np.asarray(data.images[1]), _decoded(bytes_))


def test_split_sub_folder(tmp_path: Path) -> None:
    root = tmp_path / "splits"
    _wnid_tree(root / "val", {TENCH: 1, TOILET_TISSUE: 1})
    _wnid_tree(root / "train", {GOLDFISH: 3})
    val = load_dataset(f"imagenet:{root}", split="val", image_size=(8, 8))
    assert val.labels.tolist() == [0, 999] and val.identity["split"] == "val"
    assert load_dataset(f"imagenet:{root}", split="train", image_size=(8, 8)).labels.tolist() == [1, 1, 1]
    with pytest.raises(RobenchError, match=r"no test/ sub-directory .*--split train"):
        load_dataset(f"imagenet:{root}", split="test")


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_tar_archive_at_any_depth_equals_the_folder(tmp_path: Path, suffix: str) -> None:
    written = _wnid_tree(tmp_path / "tree", {GOLDFISH: 2, TOILET_TISSUE: 1, TENCH: 1})
    members = {f"pack/inner/val/{name}": data for name, data in written.items()}
    members |= {f"pack/inner/train/{GOLDFISH}/x.JPEG": written[f"{GOLDFISH}/{GOLDFISH}_0.JPEG"],
                f"pack/inner/val/{GOLDFISH}/._junk.JPEG": b"AppleDouble"}  # another split; a macOS stray
    archive = _tar(tmp_path / f"pack{suffix}", members)
    from_tar = load_dataset(f"imagenet:{archive}", split="val", image_size=(10, 10))
    from_folder = load_dataset(f"imagenet:{tmp_path / 'tree'}", image_size=(10, 10))
    assert from_tar.labels.tolist() == from_folder.labels.tolist() == [0, 1, 1, 999]
    np.testing.assert_array_equal(np.asarray(from_tar.images), np.asarray(from_folder.images))
    assert from_tar.identity["name"] == "pack" and from_tar.identity["path"] == str(archive.resolve())
    with pytest.raises(RobenchError, match=r"no images under a test/ folder \(it has train, val\)"):
        load_dataset(f"imagenet:{archive}", split="test")


def test_cached_archive_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _wnid_tree(tmp_path / "tree", {GOLDFISH: 2})
    archive = _tar(tmp_path / "c.tar", {f"val/{name}": data for name, data in written.items()})
    first = load_dataset(f"imagenet:{archive}", split="val", image_size=(8, 8))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("read again despite a valid cache entry")

    for name in ("tar_image_names", "tar_images", "stack_images"):
        monkeypatch.setattr(imagenet, name, refuse)
    second = load_dataset(f"imagenet:{archive}", split="val", image_size=(8, 8))
    assert isinstance(second.images, np.memmap) and second.labels.tolist() == [1, 1]
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    with pytest.raises(AssertionError, match="read again"):  # another crop is another entry
        load_dataset(f"imagenet:{archive}", split="val", image_size=(8, 8), crop_pct=0.9)


# ---------------------------------------------------------------------------------------------- flat forms + label files


def test_flat_folder_with_csv_indices_wnids_or_both(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    written = _flat(root, 3)
    truth = {1: GOLDFISH, 2: TOILET_TISSUE, 3: TENCH}
    (root / "labels.csv").write_text("file,index,wnid\n" + "".join(
        f"{_val_name(k)},{INDEX[w]},{w}\n" for k, w in truth.items()))
    data = load_dataset(f"imagenet:{root}")
    assert data.labels.tolist() == [1, 999, 0] and data.identity["labels_from"] == str((root / "labels.csv").resolve())
    np.testing.assert_array_equal(np.asarray(data.images[1]), _decoded(written[_val_name(2)]))
    # wnids only, a path in the file column, a BOM, extra columns, rows for images that are not there
    (root / "labels.csv").write_text("\ufeffImage,Wnid,note\n" + "".join(
        f"somewhere/{_val_name(k)},{w},x\n" for k, w in {**truth, 4: SHARK}.items()))
    assert load_dataset(f"imagenet:{root}").labels.tolist() == [1, 999, 0]
    # <folder name>-labels.csv comes first, an index in a "label" column
    (root / "flat-labels.csv").write_text("filename,label\n" + "".join(f"{_val_name(k)},{k}\n" for k in truth))
    assert load_dataset(f"imagenet:{root}").labels.tolist() == [1, 2, 3]


def test_flat_split_folder_with_csv_in_the_parent(tmp_path: Path) -> None:
    _flat(tmp_path / "ds" / "val", 2)
    (tmp_path / "ds" / "labels.csv").write_text(f"file,label\n{_val_name(1)},{GOLDFISH}\n{_val_name(2)},998\n")
    assert load_dataset(f"imagenet:{tmp_path / 'ds'}", split="val").labels.tolist() == [1, 998]


def test_flat_folder_with_caffe_val_txt(tmp_path: Path) -> None:
    root = tmp_path / "caffe"
    _flat(root, 3)
    (root / "val.txt").write_text("".join(f"{_val_name(k)} {k * 199}\n" for k in range(1, 6)) + "\n")
    data = load_dataset(f"imagenet:{root}")
    assert data.labels.tolist() == [199, 398, 597] and data.identity["labels_from"].endswith("val.txt")


def test_flat_archive_with_csv_beside_it(tmp_path: Path) -> None:
    written = _flat(tmp_path / "src", 2)
    archive = _tar(tmp_path / "subset.tar.gz", {f"subset/{n}": d for n, d in written.items()})
    (tmp_path / "subset-labels.csv").write_text(f"file,index,wnid\n{_val_name(2)},999,{TOILET_TISSUE}\n"
                                                f"{_val_name(1)},0,{TENCH}\n")
    data = load_dataset(f"imagenet:{archive}", split="val")
    assert data.labels.tolist() == [0, 999] and data.images.shape == (2, 16, 16, 3)


def test_devkit_ground_truth_matches_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the devkit numbers classes in its own order (ILSVRC2012_ID), not the sorted one
    devkit_order = [TOILET_TISSUE, SHARK, TENCH, GOLDFISH]
    truth_ids = [1, 3, 4, 1, 2, 3]  # ground truth for val images 1..6; only 1..4 are present
    root = tmp_path / "val"
    _flat(root, 4)
    data_dir = root / "ILSVRC2012_devkit_t12" / "data"
    _meta_mat(data_dir / "meta.mat", devkit_order)
    (data_dir / imagenet.GROUND_TRUTH).write_text("".join(f"{i}\n" for i in truth_ids))
    data = load_dataset(f"imagenet:{root}")

    # the reference: torchvision's own devkit parser, on the same two files packed as the devkit archive
    from torchvision.datasets import imagenet as tv

    ref = tmp_path / "ref"
    ref.mkdir()
    with tarfile.open(ref / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tar:
        tar.add(root / "ILSVRC2012_devkit_t12", arcname="ILSVRC2012_devkit_t12")
    monkeypatch.setattr(tv, "_verify_archive", lambda *args: None)  # the tiny archive has not the real md5
    tv.parse_devkit_archive(str(ref))
    wnid_to_classes, val_wnids = tv.load_meta_file(str(ref))
    expected = [imagenet.standard_classes()[0].index(w) for w in val_wnids[:4]]
    assert data.labels.tolist() == expected == [999, 0, 1, 999]
    assert imagenet.devkit_wnids(data_dir / "meta.mat") == dict(enumerate(devkit_order, 1))
    assert set(wnid_to_classes) == set(devkit_order)  # the non-leaf synset is not a class, for both readers


# ---------------------------------------------------------------------------------------------- errors


def _one_line(info: pytest.ExceptionInfo[RobenchError]) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def test_folder_not_named_by_a_wnid_is_an_error(tmp_path: Path) -> None:
    _wnid_tree(tmp_path / "bad", {GOLDFISH: 1})
    _image(tmp_path / "bad" / "goldfish" / "x.png", (8, 8), 0)
    with pytest.raises(RobenchError, match="folder goldfish in .* is not one of the 1,000 ImageNet") as info:
        load_dataset(f"imagenet:{tmp_path / 'bad'}", image_size=(8, 8))
    _one_line(info)
    _image(tmp_path / "bad2" / "n99999999" / "x.png", (8, 8), 0)  # wnid-like, but not an ILSVRC2012 class
    archive = _tar(tmp_path / "bad.tar", {"d/n99999999/x.png": (tmp_path / "bad2" / "n99999999" / "x.png").read_bytes()})
    for path in (tmp_path / "bad2", archive):
        with pytest.raises(RobenchError, match="n99999999 in .* is not one of the 1,000"):
            load_dataset(f"imagenet:{path}")


def test_unlabelled_images_are_counted_with_an_example(tmp_path: Path) -> None:
    root = tmp_path / "partial"
    _flat(root, 4)
    (root / "labels.csv").write_text(f"file,index\n{_val_name(2)},5\n{_val_name(9)},7\n")
    with pytest.raises(RobenchError) as info:
        load_dataset(f"imagenet:{root}")
    message = _one_line(info)
    assert "3 of 4 images" in message and _val_name(1) in message
    assert "1 of its labels name files not there (e.g. ILSVRC2012_val_00000009.JPEG)" in message


@pytest.mark.parametrize(("rows", "message"), [
    ("file,index\nILSVRC2012_val_00000001.JPEG,1000\n", "label 1000 is outside the standard class index 0..999"),
    ("file,index\nILSVRC2012_val_00000001.JPEG,-1\n", "label -1 is outside"),
    ("file,label\nILSVRC2012_val_00000001.JPEG,goldfish\n", "neither a class index 0..999 nor an ImageNet wnid"),
    ("file,index,wnid\nILSVRC2012_val_00000001.JPEG,1,n01440764\n", "label 1 is n01443537, but its wnid column"),
    ("name,index\nILSVRC2012_val_00000001.JPEG,1\n", "needs a header with a file column"),
    ("file,index\nILSVRC2012_val_00000001.JPEG,1\nILSVRC2012_val_00000001.JPEG,2\n", "labelled twice"),
])
def test_bad_csv_rows_are_errors(tmp_path: Path, rows: str, message: str) -> None:
    _flat(tmp_path / "f", 1)
    (tmp_path / "f" / "labels.csv").write_text(rows)
    with pytest.raises(RobenchError, match=message) as info:
        load_dataset(f"imagenet:{tmp_path / 'f'}")
    _one_line(info)


def test_caffe_label_out_of_range_names_the_line(tmp_path: Path) -> None:
    _flat(tmp_path / "f", 2)
    (tmp_path / "f" / "val.txt").write_text(f"{_val_name(1)} 3\n{_val_name(2)} 1000\n")
    with pytest.raises(RobenchError, match=r"line 2 of .*val.txt: label 1000 is outside"):
        load_dataset(f"imagenet:{tmp_path / 'f'}")


def test_devkit_ground_truth_without_meta_mat(tmp_path: Path) -> None:
    _flat(tmp_path / "f", 2)
    (tmp_path / "f" / "data").mkdir()
    (tmp_path / "f" / "data" / imagenet.GROUND_TRUTH).write_text("1\n2\n")
    with pytest.raises(RobenchError, match="needs the devkit's meta.mat") as info:
        load_dataset(f"imagenet:{tmp_path / 'f'}")
    _one_line(info)
    _meta_mat(tmp_path / "f" / "data" / "meta.mat", [GOLDFISH])  # ID 2 is the non-leaf synset, not a class
    with pytest.raises(RobenchError, match="line 2 of .*: '2' is not an ILSVRC2012_ID of a class"):
        load_dataset(f"imagenet:{tmp_path / 'f'}")
    (tmp_path / "f" / "data" / "meta.mat").write_bytes(b"not a mat file")
    with pytest.raises(RobenchError, match="cannot read the devkit's class list"):
        load_dataset(f"imagenet:{tmp_path / 'f'}")


def test_missing_data_or_label_file(tmp_path: Path) -> None:
    with pytest.raises(RobenchError, match="not found"):
        load_dataset(f"imagenet:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RobenchError, match="holds no images"):
        load_dataset(f"imagenet:{tmp_path / 'empty'}")
    _flat(tmp_path / "nolabels", 1)
    with pytest.raises(RobenchError, match="no label file was found in .*nolabels .*val.txt") as info:
        load_dataset(f"imagenet:{tmp_path / 'nolabels'}")
    _one_line(info)
    (tmp_path / "junk.tar").write_bytes(b"not a tar archive at all" * 40)
    with pytest.raises(RobenchError, match="cannot read archive"):
        load_dataset(f"imagenet:{tmp_path / 'junk.tar'}")


# ---------------------------------------------------------------------------------------------- crop_pct


def test_crop_pct_changes_pixels_cache_entry_and_identity(tmp_path: Path) -> None:
    root = tmp_path / "crop"
    _wnid_tree(root, {GOLDFISH: 2})
    default = load_dataset(f"imagenet:{root}", image_size=(12, 12))
    entries = len(list((decode.cache_dir() / "decoded").glob("*.npy")))
    wider = load_dataset(f"imagenet:{root}", image_size=(12, 12), crop_pct=1.0)
    assert len(list((decode.cache_dir() / "decoded").glob("*.npy"))) == entries + 1
    assert not np.array_equal(np.asarray(default.images), np.asarray(wider.images))
    assert wider.identity["resize"]["crop_pct"] == 1.0 and default.identity["resize"]["crop_pct"] == 0.875
    # the same crop_pct reaches imagefolder:, and robench.load_data
    folder = load_dataset(f"imagefolder:{root}", image_size=(12, 12), crop_pct=1.0)
    np.testing.assert_array_equal(np.asarray(folder.images), np.asarray(wider.images))
    assert folder.identity["resize"] == wider.identity["resize"]
    api = robench.load_data(f"imagenet:{root}", image_size=(12, 12), crop_pct=1.0)
    np.testing.assert_array_equal(np.asarray(api.images), np.asarray(wider.images))


def test_resize_center_crop_keeps_crop_pct_of_the_shorter_side() -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    img[50:150, 50:150] = 255  # a white centre square, half the side
    for crop_pct in (1.0, 0.875, 0.5):
        # the shorter side becomes 100/crop_pct px, so the square 50/crop_pct px, of which the crop keeps ≤ 100
        out = np.asarray(decode.resize_center_crop(Image.fromarray(img), (100, 100), crop_pct))
        white = int((out[50] > 128).all(axis=1).sum())
        assert out.shape == (100, 100, 3) and abs(white - min(100, 50 / crop_pct)) <= 2, (crop_pct, white)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.01, math.nan])
def test_crop_pct_outside_unit_interval_is_an_error(bad: float) -> None:
    with pytest.raises(RobenchError, match=r"crop_pct must lie in \(0, 1\]") as info:
        load_dataset("sample", crop_pct=bad)
    _one_line(info)


# ---------------------------------------------------------------------------------------------- the shared real data


@pytest.mark.slow
def test_real_imagenet_validation_subset_gets_the_csv_labels() -> None:  # ~3 s: decodes 1,300 JPEGs
    archive, labels_csv = REAL / "imagenet-val-1300.tar", REAL / "imagenet-val-1300-labels.csv"
    if not archive.exists() or not labels_csv.exists():
        pytest.skip(f"shared ImageNet subset not found at {archive} (set ROBENCH_SHARED_DATA)")
    data = load_dataset(f"imagenet:{archive}", split="val", image_size=(224, 224))
    assert data.images.shape == (1300, 224, 224, 3) and len(data.classes) == 1000
    with open(labels_csv, newline="") as f:
        index = {row["file"]: int(row["index"]) for row in csv.DictReader(f)}
    with tarfile.open(archive) as tar:  # images come in member-name order
        names = sorted(m.name for m in tar if m.isfile() and m.name.endswith(".JPEG"))
    assert data.labels.tolist() == [index[PurePosixPath(n).name] for n in names]
    assert len(set(data.labels.tolist())) == 725
    assert data.identity["resize"] == {"size": [224, 224], "crop_pct": 0.875, "interpolation": "bicubic"}
