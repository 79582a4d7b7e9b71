"""End to end on a CUDA GPU: every suite (through the CLI; the sanity suite through the Python API), and every
training method.

Skipped without CUDA (CI has no GPU); run on a GPU machine with ``python -m pytest tests/test_cuda.py``.
These catch what CPU runs cannot: tensors, generators or draws left on the wrong device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from robench.reports.runs import PER_IMAGE_FILE

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_every_suite_runs_on_cuda(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    r = cli("evaluate", "--model", tiny_checkpoint, "--data", "sample", "--limit", 24, "--batch-size", 8,
            "--suite", "full", "--corruptions", "noise", "--severities", "1,3", "--no-autoattack",
            "--ina-budgets", "0.01", "--rn-budgets", "0.1", "--occlusion-count", 2, "--occlusion-fill", "0.5",
            "--device", "cuda", "--out", out)
    assert r.code == 0, r.err
    results = pd.read_csv(out / "results.csv")
    assert set(results["suite"]) == {"clean", "inequality", "corruptions", "adversarial"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["device"].startswith("cuda") and "TF32 off" in meta["float32"]
    assert len(pd.read_csv(out / PER_IMAGE_FILE)) == 24


@pytest.mark.parametrize("method", ["standard", "pgd-at", "trades"])
def test_training_runs_on_cuda(cli, small_npz: Path, tmp_path: Path, method: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / f"{method}.pt"
    r = cli("train", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--method", method, "--epochs", 1,
            "--batch-size", 32, "--attack-steps", 2, "--eval-limit", 32, "--device", "cuda", "--out", out)
    assert r.code == 0, r.err
    assert out.exists() and len(pd.read_csv(f"{out}.log.csv")) == 1


def test_igd_training_runs_on_cuda(cli, small_npz: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "igd.pt"
    r = cli("train", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--method", "igd", "--teacher",
            tiny_checkpoint, "--lam", 1, "--epochs", 1, "--batch-size", 32, "--attack-steps", 2, "--eval-limit", 32,
            "--device", "cuda", "--out", out)
    assert r.code == 0, r.err
    assert out.exists()


def test_sanity_suite_on_cuda_randomises_like_the_cpu() -> None:
    """The re-initialisation draws on the CPU and is copied to the device: CUDA and CPU runs see the same
    randomised weights (their correlations agree); smoothgrad's per-step noise generator lives on the device."""
    import robench

    runs = {device: robench.evaluate("zoo:standard", "sample", suites="sanity", limit=16, device=device)
            for device in ("cpu", "cuda")}
    columns = [c for c in runs["cpu"].per_image.columns if c.startswith("mprt[")]
    pd.testing.assert_frame_equal(runs["cpu"].per_image[columns], runs["cuda"].per_image[columns], atol=1e-4,
                                  check_exact=False)
    run = robench.evaluate("zoo:standard", "sample", suites="sanity", limit=16, device="cuda",
                           attribution="smoothgrad", smoothgrad_samples=2)
    assert len(run.rows("mprt", "flagged")) == 1
