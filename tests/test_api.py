"""The Python API (robench.evaluate, load_model, wrap, load_data, Run, load_run, compare, report, train)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import robench
from robench.errors import RobenchError
from robench.reports.runs import PER_IMAGE_FILE

SUITE = {"ina_budgets": "0.01", "rn_budgets": (0.02,), "occlusion_fill": [0.5], "occlusion_count": 2}


def plain_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 10))


@pytest.fixture(scope="module")
def zoo_run() -> robench.Run:
    return robench.evaluate("zoo:standard", "sample", suites="inequality", limit=32, **SUITE)


def test_evaluate_a_zoo_model_from_python(zoo_run: robench.Run) -> None:
    assert zoo_run.path is None and len(zoo_run.per_image) == 32
    assert {"gini", "inductive_noise", "random_noise", "inductive_occlusion"} <= set(zoo_run.results["test"])
    assert zoo_run.meta["options"]["model"] == "zoo:standard" and zoo_run.meta["options"]["ina_budgets"] == "0.01"
    assert 0 < zoo_run.headline()["gini_pixel"] < 1


def test_save_and_load_run_give_equal_tables(zoo_run: robench.Run, tmp_path: Path) -> None:
    zoo_run.save(tmp_path / "run")
    back = robench.load_run(tmp_path / "run")
    pd.testing.assert_frame_equal(back.results, zoo_run.results)
    pd.testing.assert_frame_equal(back.per_image, zoo_run.per_image, check_dtype=False)
    assert back.meta == zoo_run.meta
    saved, live = back.headline(), zoo_run.headline()  # results.csv keeps 6 significant digits
    assert saved.keys() == live.keys()
    for key, value in live.items():
        assert saved[key] == (pytest.approx(value, rel=1e-5, nan_ok=True) if isinstance(value, float) else value), key


def test_same_results_as_the_cli(zoo_run: robench.Run, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("evaluate", "--model", "zoo:standard", "--data", "sample", "--suite", "inequality", "--limit", "32",
            "--ina-budgets", "0.01", "--rn-budgets", "0.02", "--occlusion-fill", "0.5", "--occlusion-count", "2",
            "--out", tmp_path / "cli")
    assert r.code == 0, r.err
    zoo_run.save(tmp_path / "api")
    for name in ("results.csv", PER_IMAGE_FILE):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


def test_wrap_a_plain_module_and_evaluate_it() -> None:
    model = robench.wrap(plain_net(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), plain_net()((x - 0.5) / 0.25))
    run = robench.evaluate(plain_net(), "sample", suites="clean", limit=16)
    assert len(run.per_image) == 16 and run.meta["options"]["model"] is None
    with pytest.raises(RobenchError, match="nn.Module"):
        robench.wrap("not a module")  # type: ignore[arg-type]


def test_load_data_from_memory_matches_the_sample() -> None:
    sample = robench.load_data("sample", limit=12)
    x, y = sample.batch(0, 12)
    as_tensor = robench.load_data(x, y, classes=sample.classes)
    as_uint8 = robench.load_data(np.asarray(sample.images), sample.labels, classes=sample.classes)
    as_dataset = robench.load_data(torch.utils.data.TensorDataset(x, y), classes=sample.classes)
    for data in (as_tensor, as_uint8, as_dataset):
        assert np.array_equal(np.asarray(data.images), np.asarray(sample.images))
        assert np.array_equal(data.labels, sample.labels) and data.classes == sample.classes
    with pytest.raises(RobenchError, match="labels"):
        robench.load_data(x)
    with pytest.raises(RobenchError, match=r"\[0, 1\]"):
        robench.load_data(x * 2, y)


def test_suite_options_are_checked_by_name() -> None:
    with pytest.raises(RobenchError, match="unknown evaluation option 'ina_budget'"):
        robench.evaluate("zoo:standard", "sample", suites="inequality", limit=8, ina_budget=0.01)
    with pytest.raises(RobenchError, match="eps is an option of the adversarial suite"):
        robench.evaluate("zoo:standard", "sample", suites="inequality", limit=8, eps="8/255")


@pytest.mark.slow
def test_compare_and_report_take_runs_and_paths(zoo_run: robench.Run, tmp_path: Path) -> None:
    other = robench.evaluate("zoo:pgd-at", "sample", suites="inequality", limit=32, **SUITE)
    table = robench.compare([zoo_run, other])
    assert {"scope", "test"} <= set(table.columns) and len(table)
    robench.compare([zoo_run, other], out=tmp_path / "unsaved")  # runs never saved compare too
    assert "not saved (in memory)" in (tmp_path / "unsaved" / "report.md").read_text()
    zoo_run.save(tmp_path / "a")
    other.save(tmp_path / "b")
    robench.compare([zoo_run, tmp_path / "b"], out=tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "examples skipped" not in text  # a run made from Python reloads its model and images like a CLI run
    assert (tmp_path / "report" / "plots" / "examples.png").exists()
    robench.report(tmp_path / "a", out=tmp_path / "one")
    assert (tmp_path / "one" / "report.html").exists()


def test_train_from_python(small_npz: Path, tmp_path: Path) -> None:
    model = robench.train(out=str(tmp_path / "m.pt"), arch="cnn_tiny", data=f"npz:{small_npz}", epochs=1,
                          batch_size=32, eval_limit=16, device="cpu")
    assert model.info.training["config"]["epochs"] == 1 and (tmp_path / "m.pt").exists()
    with pytest.raises(RobenchError, match="unknown training option"):
        robench.train(out=str(tmp_path / "x.pt"), epoch=1)


def test_leaderboard_from_python(zoo_run: robench.Run, tmp_path: Path) -> None:
    zoo_run.save(tmp_path / "run")
    board = tmp_path / "board.csv"
    robench.leaderboard.add_run(tmp_path / "run", name="std", path=board)
    assert "std" in robench.leaderboard.show(board)


@pytest.mark.slow
def test_the_documented_example_runs(tmp_path: Path) -> None:
    import runpy

    example = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "python_api.py"))
    example["main"](16, tmp_path)
    assert (tmp_path / "report" / "report.html").exists() and robench.load_run(tmp_path / "pgd-at").path


def test_load_data_from_a_dataset_of_pil_images() -> None:
    from PIL import Image

    sample = robench.load_data("sample", limit=6)
    pairs = [(Image.fromarray(np.asarray(img)), int(label)) for img, label in zip(sample.images, sample.labels)]

    class PilDataset(torch.utils.data.Dataset):  # what torchvision datasets without a transform return
        def __len__(self) -> int:
            return len(pairs)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return pairs[i]

    data = robench.load_data(PilDataset(), classes=sample.classes)
    assert np.array_equal(np.asarray(data.images), np.asarray(sample.images))
