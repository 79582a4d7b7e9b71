"""Progress: a live bar on a terminal, plain lines in a log file (a background run), nothing when switched off."""

from __future__ import annotations

import re

import numpy as np
import pytest

import robench
from robench.data.imageset import ImageSet
from robench.progress import LoggedProgress, make_progress, progress_mode, track


@pytest.mark.parametrize(("setting", "mode"), [("0", "off"), ("log", "log"), ("1", "bar"), (None, "log")])
def test_the_mode_follows_the_setting_and_a_log_file_gets_lines(monkeypatch: pytest.MonkeyPatch, setting: str | None,
                                                                mode: str) -> None:
    if setting is None:  # unset, and stderr captured by pytest: not a terminal
        monkeypatch.delenv("ROBENCH_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("ROBENCH_PROGRESS", setting)
    assert progress_mode() == mode
    assert isinstance(make_progress(), LoggedProgress) is (mode == "log")


def test_lines_count_up_to_done_and_a_loop_shorter_than_the_interval_writes_none(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROBENCH_PROGRESS", "log")
    monkeypatch.setenv("ROBENCH_PROGRESS_INTERVAL", "0")
    assert list(track(range(4), total=4, description="decoding")) == [0, 1, 2, 3]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"decoding: {i}/4 ({25 * i}%)" for i in range(1, 5)]
    assert lines[-1].endswith(", done") and all("remaining" in line for line in lines[:-1])
    monkeypatch.setenv("ROBENCH_PROGRESS_INTERVAL", "3600")
    assert list(track(range(4), total=4, description="decoding")) == [0, 1, 2, 3]
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("ROBENCH_PROGRESS_INTERVAL", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")  # under torchrun: each rank's shard, said whose
    list(track(range(2), total=2, description="evaluating"))
    assert capsys.readouterr().err.splitlines()[0].startswith("rank 1: evaluating: 1/2 (50%)")


def test_an_evaluation_in_a_log_file_reports_within_its_batches(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROBENCH_PROGRESS", "log")
    monkeypatch.setenv("ROBENCH_PROGRESS_INTERVAL", "0")
    rng = np.random.default_rng(0)
    data = ImageSet(rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8), np.arange(6) % 10,
                    [str(i) for i in range(10)], np.arange(6))
    robench.evaluate("zoo:standard", data, "inequality", batch_size=3, ina_budgets="0.01", rn_budgets="0.1",
                     occlusion_fill="0.5", occlusion_count=2)
    done = [float(m.group(1)) for m in re.finditer(r"^evaluating: (\d+)/6 ", capsys.readouterr().err, re.M)]
    assert done == sorted(done) and done[-1] == 6
    assert any(0 < d < 3 for d in done)  # a line before the first batch of 3 ends
