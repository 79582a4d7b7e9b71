"""torchrun with 2 gloo processes trains exactly like one process on the same global batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from robench.models.loading import load_model

FIXTURES = Path(__file__).parent / "fixtures"


def _train(tmp_path: Path, npz: Path, name: str, nproc: int) -> Path:
    out = tmp_path / f"{name}.pt"
    args = ["train", "--method", "standard", "--arch", "nobn_net:net", "--data", f"npz:{npz}", "--epochs", "2",
            "--batch-size", "32", "--eval-limit", "32", "--device", "cpu", "--lr", "0.05", "--out", str(out)]
    if nproc == 1:
        cmd = [sys.executable, "-m", "robench.cli", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", "29517",
               "-m", "robench.cli", *args]
    env = dict(os.environ, PYTHONPATH=f"{FIXTURES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1",
               ROBENCH_PROGRESS="0")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path: Path, small_npz: Path) -> None:
    single = _train(tmp_path, small_npz, "single", 1)
    double = _train(tmp_path, small_npz, "double", 2)
    log1, log2 = pd.read_csv(f"{single}.log.csv"), pd.read_csv(f"{double}.log.csv")
    assert len(log1) == len(log2) == 2
    for col in ("loss", "test_acc"):
        assert log1[col].tolist() == pytest.approx(log2[col].tolist(), rel=1e-5, abs=1e-6)
    m1 = load_model(str(single), arch_path=str(FIXTURES))
    m2 = load_model(str(double), arch_path=str(FIXTURES))
    for (k, a), b in zip(m1.net.state_dict().items(), m2.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), k
    assert m2.info.training["world_size"] == 2 and m1.info.training["world_size"] == 1
    assert not list(tmp_path.glob("*.tmp")) and not Path(f"{double}.state.pt").exists()
