"""Faults: SIGKILL in the middle of `evaluate` and `train` (rerun → identical files), unwritable or full
output directories (one line before any work; atomic writes keep the previous files)."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch

from robench.errors import RobenchError
from robench.io import check_writable
from robench.reports.runs import PER_IMAGE_FILE
from tests.conftest import one_error_line

NO_SPACE = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---------------------------------------------------------------------------------------------- SIGKILL


def start(args: list[object], log: Path) -> subprocess.Popen[bytes]:
    """``python -m robench ARGS`` in a fresh process (one torch thread, no progress bars), output to ``log``."""
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-m", "robench", *map(str, args)], stdout=f, stderr=subprocess.STDOUT,
                                env=dict(os.environ, ROBENCH_PROGRESS="0", OMP_NUM_THREADS="1"))


def finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail if it ends first (the test would prove nothing)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the first checkpoint"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


@pytest.mark.slow
def test_evaluate_killed_with_sigkill_resumes_to_identical_files(cli, tiny_checkpoint: Path, small_npz: Path,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    args = ["evaluate", "--model", tiny_checkpoint, "--data", f"npz:{small_npz}", "--suite", "inequality",
            "--batch-size", 8]
    a, b = tmp_path / "A", tmp_path / "B"
    killed = start([*args, "--out", a], tmp_path / "a1.log")
    with ThreadPoolExecutor(1) as pool:  # kill it after its first batch while the uninterrupted run goes on here
        kill = pool.submit(kill_when, killed, lambda: any((a / ".partial").glob("batch-*.npz")), tmp_path / "a1.log")
        assert cli(*args, "--out", b).code == 0
        kill.result()
    assert not (a / "results.csv").exists()  # killed mid-run (96 images, 12 batches)
    assert 1 <= len(list((a / ".partial").glob("batch-*.npz"))) < 12

    finish(start([*args, "--out", a], tmp_path / "a2.log"), tmp_path / "a2.log")  # the same command again
    for name in ("results.csv", PER_IMAGE_FILE):  # meta.json differs in its timing fields only
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert len(pd.read_csv(a / PER_IMAGE_FILE)) == 96
    assert not (a / ".partial").exists()
    assert not list(a.rglob(".*.tmp")), "temporary files left behind"


def log_without_timing(path: Path) -> list[dict[str, str]]:
    """The log CSV's rows as text, without the wall-clock ``seconds`` column."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_train_killed_with_sigkill_resumes_to_identical_weights(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    epochs = 8

    def args(out: Path) -> list[object]:
        return ["train", "--method", "standard", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--epochs", epochs,
                "--batch-size", 32, "--eval-limit", 32, "--device", "cpu", "--out", out]

    whole, part = tmp_path / "whole" / "m.pt", tmp_path / "part" / "m.pt"
    state = Path(f"{part}.state.pt")
    killed = start(args(part), tmp_path / "part1.log")
    with ThreadPoolExecutor(1) as pool:  # kill it once its first epoch is saved; the uninterrupted run goes on here
        kill = pool.submit(kill_when, killed, state.exists, tmp_path / "part1.log")
        assert cli(*args(whole)).code == 0
        kill.result()
    assert state.exists() and len(pd.read_csv(f"{part}.log.csv")) < epochs  # killed mid-run

    finish(start([*args(part), "--resume"], tmp_path / "part2.log"), tmp_path / "part2.log")
    assert not state.exists()
    for a, b in ((whole, part), (whole.with_name("m-last.pt"), part.with_name("m-last.pt"))):
        wa = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
        wb = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
        assert wa.keys() == wb.keys() and len(wa) > 0
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{key} differs in {b.name}"
    log_whole, log_part = log_without_timing(Path(f"{whole}.log.csv")), log_without_timing(Path(f"{part}.log.csv"))
    assert len(log_whole) == epochs and log_part == log_whole
    assert not list(part.parent.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------- unwritable output


def _root_unwritable(directory: Path) -> OSError | None:
    """The error creating a file in ``directory`` raises, or None when it can be created."""
    try:
        fd, probe = tempfile.mkstemp(dir=directory)
    except OSError as exc:
        return exc
    os.close(fd)
    os.unlink(probe)
    return None


@pytest.fixture(params=["chmod 0o555", "/sys"])
def unwritable(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A directory no file can be created in, and the OS's reason; skipped where none can be made."""
    if request.param == "/sys":
        if not Path("/sys").is_dir():
            pytest.skip("no /sys on this system")
        directory = Path("/sys")
    else:
        directory = tmp_path / "readonly"
        directory.mkdir()
        directory.chmod(0o555)
    error = _root_unwritable(directory)
    if error is None:
        if request.param != "/sys":
            directory.chmod(0o755)
        pytest.skip(f"{directory} is writable here (running as root: chmod does not stop root)")
    yield directory, error.strerror
    if request.param != "/sys":
        directory.chmod(0o755)


# Model and data that do not exist: had the command loaded either before checking its output
# directory, the error would name them instead of the directory.
NO_MODEL, NO_DATA = "/nonexistent/model.pt", "npz:/nonexistent/data.npz"


def test_unwritable_evaluate_out_fails_before_any_work(cli, unwritable) -> None:  # type: ignore[no-untyped-def]
    directory, reason = unwritable
    out = directory / "robench-test" / "run"
    line = one_error_line(cli("evaluate", "--model", NO_MODEL, "--data", NO_DATA, "--out", out))
    assert line == f"robench: error: cannot write to {out}: {reason}"
    assert not out.parent.exists()


def test_unwritable_train_out_fails_before_any_work(cli, unwritable) -> None:  # type: ignore[no-untyped-def]
    directory, reason = unwritable
    line = one_error_line(cli("train", "--arch", "cnn_tiny", "--data", NO_DATA, "--out", directory / "m.pt"))
    assert line == f"robench: error: cannot write to {directory}: {reason}"


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_full_disk_fails_before_any_work(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         command: str) -> None:
    def full(fd: int) -> None:
        raise NO_SPACE

    monkeypatch.setattr("robench.io._write_probe", full)
    if command == "evaluate":
        out = tmp_path / "run"
        r = cli("evaluate", "--model", NO_MODEL, "--data", NO_DATA, "--out", out)
    else:
        out = tmp_path / "models"
        r = cli("train", "--arch", "cnn_tiny", "--data", NO_DATA, "--out", out / "m.pt")
    assert one_error_line(r) == f"robench: error: cannot write to {out}: No space left on device"
    assert not out.exists() and not list(tmp_path.glob(".robench-write-check.*"))


def test_disk_full_while_writing_results_keeps_the_previous_results(cli, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                                     tiny_checkpoint: Path, small_npz: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["evaluate", "--model", tiny_checkpoint, "--data", f"npz:{small_npz}", "--out", out]
    assert cli(*base, "--limit", 16).code == 0
    names = ("results.csv", PER_IMAGE_FILE, "meta.json")
    before = {name: (out / name).read_bytes() for name in names}

    def full(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"suite,test,vari")  # the disk fills part-way through the file
        raise NO_SPACE

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    line = one_error_line(cli(*base, "--limit", 24, "--overwrite"))
    assert line == f"robench: error: cannot write {out / 'results.csv'}: No space left on device"
    assert {name: (out / name).read_bytes() for name in names} == before
    assert not list(out.rglob(".*.tmp"))


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(cli, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                                     small_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    args = ["train", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--epochs", 1, "--batch-size", 32,
            "--eval-limit", 32, "--device", "cpu", "--out", out]
    assert cli(*args).code == 0
    before = out.read_bytes()

    def full(obj, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"PK\x03\x04")
        raise NO_SPACE

    monkeypatch.setattr(torch, "save", full)
    line = one_error_line(cli(*args, "--seed", 1))
    assert line.startswith("robench: error: cannot write ") and line.endswith(": No space left on device")
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    check_writable(tmp_path / "a" / "b" / "c")  # not created: the probe goes to the nearest existing ancestor
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(RobenchError, match="exists and is not a directory"):
        check_writable(tmp_path / "file" / "run")
    check_writable(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
