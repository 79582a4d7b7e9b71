"""`robench evaluate`: the files it writes, resuming, and one-line errors for every user mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robench.models.checkpoint import save_checkpoint
from robench.reports.runs import PER_IMAGE_FILE
from robench.runner import BATCH_SECONDS, _run_batch
from tests.conftest import tiny_model


def test_evaluate_writes_results_per_image_and_meta(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    r = cli("evaluate", "--model", tiny_checkpoint, "--data", "sample", "--limit", "50", "--out", out)
    assert r.code == 0, r.err
    assert "accuracy" in r.out
    results = pd.read_csv(out / "results.csv")
    assert {"suite", "test", "variant", "param", "metric", "value", "n"} <= set(results.columns)
    per_image = pd.read_csv(out / PER_IMAGE_FILE)
    assert list(per_image.columns[:4]) == ["index", "label", "prediction", "correct"] and len(per_image) == 50
    acc = results.query("metric == 'accuracy' and variant == 'all'")["value"].item()
    assert acc == pytest.approx(per_image["correct"].mean())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"]["sha256"] and meta["dataset"]["fingerprint"] and meta["seed"] == 0
    assert {"robench", "torch", "timm"} <= set(meta["environment"])
    assert meta["options"]["limit"] == 50 and meta["device"] == "cpu"
    assert not (out / ".partial").exists()


def _interrupt_at_third_batch(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make the runner's third batch raise KeyboardInterrupt (Ctrl-C); returns the call counter."""
    calls = {"n": 0}

    def flaky(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _run_batch(*a, **k)

    monkeypatch.setattr("robench.runner._run_batch", flaky)
    return calls


def test_interrupted_run_resumes_to_identical_results(cli, tiny_checkpoint: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["evaluate", "--model", tiny_checkpoint, "--limit", "40", "--batch-size", "8"]
    assert cli(*args, "--out", tmp_path / "whole").code == 0
    calls = _interrupt_at_third_batch(monkeypatch)
    assert cli(*args, "--out", tmp_path / "resumed").code == 130
    assert len(list((tmp_path / "resumed" / ".partial").glob("batch-*.npz"))) == 2
    assert not (tmp_path / "resumed" / "results.csv").exists()
    monkeypatch.setattr("robench.runner._run_batch", lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), _run_batch(*a, **k))[1])
    calls["n"] = 0
    assert cli(*args, "--out", tmp_path / "resumed").code == 0
    assert calls["n"] == 3  # 5 batches, 2 done before the interruption
    for name in ("results.csv", PER_IMAGE_FILE):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()


def test_resumed_run_counts_the_time_of_its_earlier_batches(cli, tiny_checkpoint: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """meta.json's duration_s is the whole evaluation's time, not only the attempt that finished it."""
    args = ["evaluate", "--model", tiny_checkpoint, "--limit", "40", "--batch-size", "8", "--out", tmp_path / "run"]
    _interrupt_at_third_batch(monkeypatch)
    assert cli(*args).code == 130
    monkeypatch.setattr("robench.runner._run_batch", _run_batch)
    batches = sorted((tmp_path / "run" / ".partial").glob("batch-*.npz"))
    assert len(batches) == 2
    for path in batches:  # as if each finished batch had taken 1,000 s
        with np.load(path) as arrays:
            assert 0 <= float(arrays[BATCH_SECONDS]) < 1000
            columns = {k: arrays[k] for k in arrays.files}
        columns[BATCH_SECONDS] = np.float64(1000.0)
        with open(path, "wb") as f:
            np.savez(f, **columns)
    assert cli(*args).code == 0
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert 2000 <= meta["duration_s"] < 2600
    assert BATCH_SECONDS not in pd.read_csv(tmp_path / "run" / PER_IMAGE_FILE).columns


@pytest.mark.slow
def test_same_seed_same_bytes_and_other_run_refused(cli, tiny_checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every suite that draws random numbers (noise, PGD random starts, corruptions), run twice in one process."""
    suites = ["--suite", "inequality,adversarial,corruptions", "--corruptions", "noise", "--severities", "1",
              "--ina-budgets", "0.01", "--rn-budgets", "0.02", "--occlusion-fill", "0.5", "--pgd-steps", "2"]
    base = ["evaluate", "--model", tiny_checkpoint, *suites, "--limit", "30"]
    assert cli(*base, "--out", tmp_path / "a").code == 0
    assert cli(*base, "--out", tmp_path / "b").code == 0
    for name in ("results.csv", PER_IMAGE_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert cli(*base[:-1], "30", "--seed", "1", "--out", tmp_path / "c").code == 0
    assert (tmp_path / "a" / PER_IMAGE_FILE).read_bytes() != (tmp_path / "c" / PER_IMAGE_FILE).read_bytes()
    r = cli(*base[:-1], "31", "--out", tmp_path / "a")
    assert r.code == 2 and "different run" in r.err
    assert cli(*base[:-1], "31", "--out", tmp_path / "a", "--overwrite").code == 0


def _bad_inputs(tmp: Path, good: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "random.pt").write_bytes(b"\x17" + np.random.default_rng(7).bytes(2047))  # fixed: not a pickle opcode
    (tmp / "trunc.pt").write_bytes(good.read_bytes()[:3000])
    torch.save(tiny_model().net.state_dict(), tmp / "sd.pt")
    torch.save(tiny_model().net, tmp / "whole.pt")
    save_checkpoint(tiny_model(num_classes=5), tmp / "five.pt")
    big = tiny_model()
    big.info.input_size = (3, 64, 64)
    save_checkpoint(big, tmp / "big.pt")
    np.savez(tmp / "gray.npz", x=np.zeros((4, 32, 32), np.uint8), y=np.zeros(4, np.int64), classes=np.array(list("abcdefghij")))
    return {
        "missing file": (["--model", str(tmp / "nope.pt")], "not found"),
        "random bytes": (["--model", str(tmp / "random.pt")], "not a checkpoint"),
        "truncated": (["--model", str(tmp / "trunc.pt")], "truncated or corrupt"),
        "arch mismatch": (["--model", str(tmp / "sd.pt"), "--arch", "cnn_small"], "do not match"),
        "unknown timm": (["--model", "timm:not_a_model_x"], "unknown timm model"),
        "unknown arch": (["--model", str(tmp / "sd.pt"), "--arch", "not_an_arch"], "unknown architecture"),
        "unknown dataset": (["--model", str(good), "--data", "mnist9"], "unknown dataset"),
        "unknown suite": (["--model", str(good), "--suite", "nonsense"], "unknown suite"),
        "class count": (["--model", str(tmp / "five.pt")], "outputs 5 classes but the dataset has 10"),
        "input size": (["--model", str(tmp / "big.pt")], "expects 64×64 images"),
        "channels": (["--model", str(good), "--data", f"npz:{tmp / 'gray.npz'}"], "3-channel"),
        "pickled module": (["--model", str(tmp / "whole.pt"), "--arch", "cnn_tiny"], "--trust-checkpoint"),
        "bad mean": (["--model", str(good), "--mean", "a,b,c"], "comma-separated numbers"),
        "bad device": (["--model", str(good), "--device", "tpu"], "unknown device"),
        "missing npz": (["--model", str(good), "--data", "npz:/no/such.npz"], "not found"),
        "cifar10 absent": (["--model", str(good), "--data", "cifar10", "--data-dir", str(tmp / "empty")], "CIFAR-10 not found"),
    }


CASES = ["missing file", "random bytes", "truncated", "arch mismatch", "unknown timm", "unknown arch",
         "unknown dataset", "unknown suite", "class count", "input size", "channels", "pickled module",
         "bad mean", "bad device", "missing npz", "cifar10 absent"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_no_output(cli, tiny_checkpoint: Path, tmp_path: Path, case: str,  # type: ignore[no-untyped-def]
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ROBENCH_DATA", raising=False)
    (tmp_path / "empty").mkdir()
    args, message = _bad_inputs(tmp_path, tiny_checkpoint)[case]
    out = tmp_path / "out"
    r = cli("evaluate", *args, "--out", out)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robench: error:"), r.err
    assert message in lines[0]
    assert "Traceback" not in r.err + r.out
    assert not out.exists()


@pytest.mark.parametrize("args,message", [(["evaluate", "--bogus"], "No such option"),
                                          (["evaluate", "--limit", "abc"], "Invalid value for '--limit'"),
                                          (["list", "nothing"], "nothing called 'nothing'")])
def test_usage_errors_are_one_line(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    r = cli(*args)
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in r.err


@pytest.mark.slow
@pytest.mark.parametrize("attribution", ["saliency", "integrated_gradients", "input_x_gradient", "smoothgrad"])
def test_every_attribution_repeats_byte_for_byte_and_resumes(cli, tiny_checkpoint: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch, attribution: str) -> None:
    """Stochastic attributions (SmoothGrad) draw from the batch's generator: same seed, same bytes, also resumed."""
    args = ["evaluate", "--model", tiny_checkpoint, "--suite", "inequality", "--limit", "24", "--batch-size", "8",
            "--attribution", attribution,
            "--ina-budgets", "0.01", "--rn-budgets", "0.02", "--occlusion-fill", "0.5"]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert cli(*args, "--out", tmp_path / "b").code == 0
    calls = {"n": 0}

    def interrupted(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return _run_batch(*a, **k)

    monkeypatch.setattr("robench.runner._run_batch", interrupted)
    assert cli(*args, "--out", tmp_path / "c").code == 130
    monkeypatch.setattr("robench.runner._run_batch", _run_batch)
    assert cli(*args, "--out", tmp_path / "c").code == 0
    for run in ("b", "c"):
        assert (tmp_path / "a" / PER_IMAGE_FILE).read_bytes() == (tmp_path / run / PER_IMAGE_FILE).read_bytes()
