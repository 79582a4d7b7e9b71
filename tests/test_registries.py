"""Every registry (architectures, attributions, suites, training methods, dataset kinds): one style, every entry used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robench.attribution import ATTRIBUTIONS, attribute
from robench.data import DATASETS, load_dataset
from robench.errors import RobenchError
from robench.models.registry import ARCHITECTURES
from robench.registry import Registry
from robench.suites import SUITES, make_suites
from robench.train import METHODS
from tests.conftest import tiny_model

REGISTRIES = {"archs": ARCHITECTURES, "attributions": ATTRIBUTIONS, "suites": SUITES, "methods": METHODS,
              "datasets": DATASETS}


@pytest.mark.parametrize("group", sorted(REGISTRIES))
def test_every_registry_is_listed_and_refuses_unknown_names(cli, group: str) -> None:  # type: ignore[no-untyped-def]
    registry = REGISTRIES[group]
    assert isinstance(registry, Registry) and len(registry) >= 4
    r = cli("list", group)
    assert r.code == 0
    for name in registry:
        assert name in r.out, f"{name} missing from `robench list {group}`"
    with pytest.raises(RobenchError, match="choose one of"):
        registry.get("no-such-entry")


def test_a_name_cannot_be_registered_twice() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("a")(1)
    with pytest.raises(ValueError, match="twice"):
        registry.register("a")(2)


@pytest.mark.parametrize("name", ATTRIBUTIONS.names())
def test_every_attribution_gives_a_map_of_the_input_shape(name: str) -> None:
    x, y = load_dataset("sample", limit=4).batch(0, 4)
    options = {"steps": 4} if name == "integrated_gradients" else {"samples": 2} if name == "smoothgrad" else {}
    attr = attribute(name, tiny_model(), x, y, **options)
    assert attr.shape == x.shape and torch.isfinite(attr).all() and attr.abs().sum() > 0


@pytest.mark.parametrize("name", SUITES.names())
def test_every_suite_builds_and_records_its_options(name: str) -> None:
    suites = make_suites(name)
    assert suites[0].name == "clean" and suites[-1].name == name
    assert isinstance(suites[-1].options(), dict)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def _example(kind: str, root: Path) -> tuple[str, str | None]:
    """A spec of dataset kind ``kind`` backed by a few images under ``root``, and its --data-dir."""
    rng = np.random.default_rng(0)
    if kind == "sample":
        return "sample", None
    if kind == "npz":
        np.savez(root / "d.npz", x=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), y=np.arange(4))
        return f"npz:{root / 'd.npz'}", None
    if kind == "mnist":
        _write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))
        _write_idx(root / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
        return f"mnist:{root}", None
    from PIL import Image

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name in classes[: 10 if kind == "cifar10" else 2]:  # cifar10: an ImageFolder tree in --data-dir
        folder = root / "test" / name
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "0000.png")
    return ("cifar10", str(root)) if kind == "cifar10" else (f"imagefolder:{root}", None)


@pytest.mark.parametrize("kind", DATASETS.names())
def test_every_dataset_kind_loads(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    spec, data_dir = _example(kind, tmp_path)
    data = load_dataset(spec, "test", data_dir)
    assert len(data) >= 1 and data.images.dtype == np.uint8 and DATASETS[kind].usage.split(":")[0] == kind
    with pytest.raises(RobenchError, match="unknown dataset"):
        load_dataset(f"{kind}:extra" if not DATASETS[kind].takes_path else kind)
