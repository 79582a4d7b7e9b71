"""experiments/reproduce_cifar10.py end to end on its `smoke` preset (tiny model, 200 real images)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "reproduce_cifar10.py"


@pytest.mark.slow
def test_smoke_study_trains_evaluates_and_resumes(tmp_path: Path) -> None:
    from robench.data import load_dataset

    data = load_dataset("sample", limit=200)
    npz = tmp_path / "small.npz"
    np.savez(npz, x=np.asarray(data.images), y=data.labels, classes=np.array(data.classes))
    out = tmp_path / "study"
    command = [sys.executable, str(SCRIPT), "--preset", "smoke", "--data", f"npz:{npz}", "--out", str(out),
               "--leaderboard", str(out / "leaderboard.csv")]
    env = {"ROBENCH_PROGRESS": "0", "PATH": "/usr/bin:/bin"}
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=600)
    names = ["standard", "igd-lam1"]
    assert sorted(p.stem for p in (out / "models").glob("*.pt") if not p.stem.endswith("-last")) == sorted(names)
    meta = json.loads((out / "runs" / "igd-lam1" / "meta.json").read_text())
    assert meta["model"]["training"]["method"] == "igd"
    assert meta["model"]["training"]["config"]["teacher"] == str(out / "models" / "standard.pt")
    assert (out / "report" / "plots" / "noise.png").exists() and (out / "CLAIMS.md").exists()
    assert pd.read_csv(out / "leaderboard.csv")["name"].tolist() == [f"repro-smoke/{n}" for n in names]
    log = json.loads((out / "commands.json").read_text())
    assert sum(entry["command"].startswith("robench train") for entry in log) == 2

    # the evaluation step alone, on the kept checkpoints, reproduces the results byte for byte ...
    verify = [*command, "--stage", "verify", "--only", "igd-lam1"]
    done = subprocess.run(verify, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and "igd-lam1/results.csv: identical" in done.stdout
    assert "igd-lam1/per_image.csv.gz: identical" in done.stdout
    # ... and says so when a committed result was altered
    results = out / "runs" / "igd-lam1" / "results.csv"
    results.write_text(results.read_text().replace("robust_accuracy,", "robust_accuracy,0", 1))
    done = subprocess.run(verify, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1 and "igd-lam1/results.csv: DIFFERS" in done.stdout
    # training again trains nothing: the finished checkpoints are kept
    subprocess.run([*command, "--stage", "train"], check=True, capture_output=True, env=env, timeout=600)
    log = json.loads((out / "commands.json").read_text())
    assert sum(entry["command"].startswith("robench train") for entry in log) == 2
