"""The third-party checkpoint panel (experiments/third_party/manifest.csv) loads as it is, through the
example architecture module, and predicts what was recorded; probe_normalization and the near-chance
warning on synthetic models. The panel tests skip when the shared data is absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robench.data import ImageSet, load_dataset
from robench.io import sha256_file
from robench.models.probe import near_chance, probe_normalization
from robench.models.wrapper import ModelInfo, RobenchModel
from tests.conftest import ROOT

HERE = ROOT / "experiments" / "third_party"
sys.path.insert(0, str(HERE))
from panel import MNIST, PANEL, cli_args, data_spec, load, read_manifest  # noqa: E402

ROWS = read_manifest()
FIRST_BATCH = json.loads((HERE / "first_batch.json").read_text())


def test_manifest_covers_every_recorded_file_once() -> None:
    files = [r["file"] for r in ROWS]
    assert len(files) == 29 and len(set(files)) == 29 and set(files) == set(FIRST_BATCH)
    assert {r["dataset"] for r in ROWS} == {"cifar10", "mnist"}


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_checkpoint_loads_strictly_and_predicts_as_recorded(row: dict[str, str]) -> None:
    path = PANEL / row["file"]
    if not path.exists() or (row["dataset"] == "mnist" and not MNIST.is_dir()):
        pytest.skip(f"third-party panel not found at {PANEL} (set ROBENCH_SHARED_DATA)")
    assert sha256_file(path) == row["sha256"]
    model = load(row)  # strict: every name and shape of the file matches the example module's network
    x, _ = load_dataset(data_spec(row)).batch(0, 16)
    with torch.no_grad():
        assert model(x).argmax(1).tolist() == FIRST_BATCH[row["file"]]


def test_list_wrapped_panel_file_through_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    row = next(r for r in ROWS if r["file"] == "cifar10/abcrown-cifar_conv_small_pgd.pth")  # {'acc', 'state_dict': [sd]}
    if not (PANEL / row["file"]).exists():
        pytest.skip(f"third-party panel not found at {PANEL} (set ROBENCH_SHARED_DATA)")
    r = cli("evaluate", *cli_args(row), "--limit", "64", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    assert "near chance" not in r.err


class Standardised(torch.nn.Module):
    """A 2-class "network" that is right only on inputs standardised with mean 0.5, std 0.1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.mean(dim=(1, 2, 3))  # standardised: ≈ ±1.5 for bright/dark images; raw or half: below 1
        return torch.stack([1 - score, score - 1], dim=1)


def test_probe_normalization_ranks_the_right_setting_first() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    images = np.where(labels[:, None, None, None] == 1, 165, 90).astype(np.uint8) + rng.integers(0, 3, (200, 8, 8, 3),
                                                                                                 dtype=np.uint8)
    data = ImageSet(images, labels, ["dark", "bright"], np.arange(200))
    info = ModelInfo(name="toy", arch=None, num_classes=2, input_size=(3, 8, 8), mean=(0.0,) * 3, std=(1.0,) * 3)
    candidates = {"raw": ((0.0,), (1.0,)), "right": ((0.5,), (0.1,)), "half": ((0.5,), (0.5,))}
    table = probe_normalization(RobenchModel(Standardised(), info), data, candidates, limit=150)
    assert table["candidate"].tolist()[0] == "right" and table["accuracy"].iloc[0] == 1.0
    assert set(table["candidate"]) == {"raw", "right", "half", "loaded"} and (table["n"] == 150).all()
    assert table.set_index("candidate").loc["raw", "accuracy"] < 0.7


def test_near_chance_threshold() -> None:
    assert near_chance(0.25, 10) and not near_chance(0.355, 10) and not near_chance(0.9, 2) and near_chance(0.6, 2)


def test_evaluate_warns_near_chance_and_probe_command(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", "zoo:standard", "--limit", "64", "--mean", "0.9,0.9,0.9", "--std", "0.01,0.01,0.01")
    assert r.code == 0, r.err
    assert "robench: warning: clean accuracy" in r.err and "robench probe-normalization --model zoo:standard" in r.err
    r = cli("probe-normalization", "--model", "zoo:standard", "--limit", "64")
    assert r.code == 0, r.err
    assert "best:" in r.out and "imagenet" in r.out and "loaded" in r.out
    r = cli("probe-normalization", "--model", "zoo:standard", "--mean", "0.5")
    assert r.code == 2 and r.err.startswith("robench: error: --mean and --std go together")
