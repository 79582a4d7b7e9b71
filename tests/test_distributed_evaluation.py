"""robench evaluate under torchrun (2 gloo processes) writes the same files as one process."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robench.reports.runs import PER_IMAGE_FILE

ARGS = ["--suite", "inequality,adversarial", "--ina-budgets", "0.01,0.02", "--rn-budgets", "0.02",
        "--occlusion-fill", "0.5", "--occlusion-count", "3", "--pgd-steps", "3", "--batch-size", "16", "--device", "cpu"]


def _evaluate(ckpt: Path, npz: Path, out: Path, nproc: int) -> subprocess.CompletedProcess[str]:
    args = ["evaluate", "--model", str(ckpt), "--data", f"npz:{npz}", *ARGS, "--out", str(out)]
    launcher = [] if nproc == 1 else ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                                      "--master-port", "29531"]
    cmd = [sys.executable, *launcher, "-m", "robench.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", ROBENCH_PROGRESS="0")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.slow
def test_two_gloo_processes_write_the_single_process_files(tmp_path: Path, tiny_checkpoint: Path,
                                                           small_npz: Path) -> None:
    single = _evaluate(tiny_checkpoint, small_npz, tmp_path / "one", 1)
    double = _evaluate(tiny_checkpoint, small_npz, tmp_path / "two", 2)
    for name in ("results.csv", PER_IMAGE_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert len(gzip.decompress((tmp_path / "two" / PER_IMAGE_FILE).read_bytes()).splitlines()) == 97  # 96 images + header
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["n_images"] == 96
    assert not (tmp_path / "two" / ".partial").exists()
    assert double.stdout.count("results written to") == 1  # only rank 0 reports
    assert "results written to" in single.stdout
