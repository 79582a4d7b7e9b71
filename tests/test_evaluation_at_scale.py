"""Evaluating large images: the model's own size and crop for image folders, pass sizes set by the image
size, progress within a batch, and the early near-chance hint."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import robench
from robench.attacks import default_attack_batch
from robench.data.imageset import ImageSet
from robench.runner import default_batch_size
from robench.suites import InequalityConfig, make_suites
from robench.suites.base import Batch
from tests.conftest import Recorder

GOLDFISH, SHARK = "n01443537", "n01484850"  # standard ImageNet indices 1 and 2


def _imagenet_folder(root: Path) -> Path:
    """Two classes, three images each of mixed sizes."""
    rng = np.random.default_rng(0)
    for c, wnid in enumerate((GOLDFISH, SHARK)):
        (root / wnid).mkdir(parents=True)
        for j in range(3):
            pixels = rng.integers(0, 256, size=(40 + 6 * j, 50 - 4 * c, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / wnid / f"{wnid}_{j}.JPEG")
    return root


class ConstantClass(nn.Module):
    """Logits favouring class ``k`` whatever the image (k outputs of ``classes``), differentiable in x."""

    def __init__(self, classes: int, k: int = 0) -> None:
        super().__init__()
        self.classes, self.k = classes, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x.mean(dim=(1, 2, 3), keepdim=False)[:, None].repeat(1, self.classes) * 0.01
        logits[:, self.k] += 1.0
        return logits


def test_pass_and_batch_sizes_follow_the_image_size() -> None:
    assert default_attack_batch(32, 32) == 256 and default_attack_batch(28, 28) == 256
    assert default_attack_batch(224, 224) == 20 and default_attack_batch(1024, 1024) == 1
    assert default_batch_size(32, 32) == 128 and default_batch_size(64, 64) == 128
    assert default_batch_size(224, 224) == 16 and default_batch_size(260, 260) == 8


def test_image_folders_are_decoded_at_the_models_size_and_crop(tmp_path: Path) -> None:
    folder = _imagenet_folder(tmp_path / "inet")
    model = robench.wrap(ConstantClass(1000), input_size=(3, 24, 24))
    model.info.crop_pct = 0.9
    run = robench.evaluate(model, f"imagenet:{folder}", "clean")
    assert run.meta["dataset"]["resize"] == {"size": [24, 24], "crop_pct": 0.9, "interpolation": "bicubic"}
    assert run.meta["dataset"]["image_shape"] == [3, 24, 24] and run.meta["batch_size"] == 128
    given = robench.evaluate(model, f"imagenet:{folder}", "clean", data_options={"crop_pct": 0.5})
    assert given.meta["dataset"]["resize"]["crop_pct"] == 0.5  # what the caller gives wins


def test_the_suites_passes_stay_within_the_attack_batch() -> None:
    """At 160 px the attack batch is 40 images and a gradient pass 20: a 48-image batch is split."""
    n, size = 48, 160
    rng = np.random.default_rng(1)
    data = ImageSet(rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8), np.zeros(n, dtype=np.int64),
                    ["a", "b"], np.arange(n))
    recorder = Recorder(ConstantClass(2))
    model = robench.wrap(recorder, input_size=(3, size, size))
    config = dict(ina_budgets="0.01", rn_budgets="0.1", occlusion_fill="0.5", occlusion_count=2)
    robench.evaluate(model, data, "inequality", batch_size=n, **config)
    grad = [x.shape[0] for x, (_, g) in zip(recorder.inputs, recorder.states) if g]
    plain = [x.shape[0] for x, (_, g) in zip(recorder.inputs, recorder.states) if not g]
    assert default_attack_batch(size, size) == 40
    assert sum(grad) == n and max(grad) == 20
    assert max(plain[2:]) <= 40  # after the compatibility check and the batch's clean pass


def test_progress_moves_within_a_batch() -> None:
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.random((6, 3, 32, 32), dtype=np.float32))
    model = robench.wrap(ConstantClass(2), input_size=(3, 32, 32))
    suites = make_suites("inequality", suite_options={"inequality": {"config": InequalityConfig(
        ina_budgets=(0.01,), rn_budgets=(0.1,), occlusion_fill=(0.0, 1.0), occlusion_count=2)}})
    (suite,) = [s for s in suites if s.name == "inequality"]
    suite.prepare(ImageSet(np.zeros((1, 32, 32, 3), dtype=np.uint8), np.zeros(1, dtype=np.int64), ["a", "b"],
                           np.arange(1)))
    shares: list[float] = []
    batch = Batch(x=x, y=torch.zeros(6, dtype=torch.long), index=np.arange(6), logits=model(x).detach(),
                  generator=torch.Generator().manual_seed(0), report=shares.append)
    suite.run_batch(model, batch)
    assert shares == sorted(shares) and len(shares) == 5 and shares[-1] == 1.0  # map, INA, RN, two fills


def test_a_first_batch_near_chance_says_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(3)
    n = 40
    data = ImageSet(rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10,
                    [str(i) for i in range(10)], np.arange(n))
    model = robench.wrap(ConstantClass(10, k=0), input_size=(3, 32, 32), mean=(0.5,), std=(0.5,))
    with caplog.at_level(logging.WARNING, logger="robench.runner"):
        robench.evaluate(model, data, "clean", batch_size=20)  # two batches: the hint comes after the first
    (message,) = [r.getMessage() for r in caplog.records if r.name == "robench.runner"]
    assert message.startswith("robench: warning: clean accuracy 0.100 on the first 20 images is near chance")
    assert "normalisation (mean 0.5, std 0.5" in message
    caplog.clear()
    right = robench.wrap(ConstantClass(10, k=0), input_size=(3, 32, 32))
    with caplog.at_level(logging.WARNING, logger="robench.runner"):
        robench.evaluate(right, data.subset(np.flatnonzero(data.labels == 0)), "clean", batch_size=1)
    assert not [r for r in caplog.records if r.name == "robench.runner"]


def test_runs_recorded_before_the_search_setting_read_as_sweeps() -> None:
    from robench.settings import recorded_settings

    old = recorded_settings({"occlusion_order": "count_first", "occlusion_count": 10, "max_batch": 256})
    assert old["occlusion_search"] == "sweep" and old["attack_batch"] == 256
    assert recorded_settings({"occlusion_order": "count_first", "occlusion_search": "bisect"})["occlusion_search"] == "bisect"


def test_a_wrapped_modules_run_reports_and_compares(tmp_path: Path) -> None:
    """A model made with robench.wrap has no checkpoint: its report names none instead of crashing."""
    from tests.conftest import tiny_model

    model = robench.wrap(tiny_model().net, mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 32, 32))
    run = robench.evaluate(model, "sample", "inequality", limit=8, out=tmp_path / "run", ina_budgets="0.01",
                           rn_budgets="0.1", occlusion_fill="0.5", occlusion_count=2)
    table = robench.report(run, tmp_path / "report", examples=False)
    assert len(table) and (tmp_path / "report" / "report.md").exists()
    assert "(in memory)" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_importing_the_plots_leaves_the_matplotlib_backend_alone() -> None:
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('pdf'); import robench.reports.plots; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "pdf"


def test_list_shows_full(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("list", "suites")
    assert result.code == 0 and "full" in result.out


def test_auto_occlusion_search_sweeps_small_grids_and_bisects_large_ones() -> None:
    from robench.suites.inequality import default_occlusion_search

    assert default_occlusion_search("auto", 10, 3) == "sweep"  # 32 px: 30 steps, the papers' loop
    assert default_occlusion_search("auto", 10, 20) == "bisect"  # 224 px: 200 steps
    assert default_occlusion_search("sweep", 10, 20) == "sweep" and default_occlusion_search("bisect", 10, 3) == "bisect"
    run = robench.evaluate(robench.wrap(ConstantClass(2), input_size=(3, 32, 32)),
                           ImageSet(np.zeros((2, 32, 32, 3), dtype=np.uint8), np.zeros(2, dtype=np.int64), ["a", "b"],
                                    np.arange(2)), "inequality", ina_budgets="0.01", rn_budgets="0.1")
    assert run.meta["suites"]["inequality"]["occlusion_search"] == "sweep"
