"""experiments/evaluate_imagenet.py's run bookkeeping (the evaluations themselves are the library's, tested elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import robench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import evaluate_imagenet  # noqa: E402


@pytest.mark.parametrize(("limit", "replaced"), [(4, False), (None, True)])
def test_a_finished_run_on_another_number_of_images_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 limit: int | None, replaced: bool) -> None:
    out = tmp_path / "imagenet"
    robench.evaluate("zoo:standard", "sample", "clean", out=out / "runs" / "lite0-clean", limit=4)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(evaluate_imagenet, "checkpoint", lambda model: Path(f"{model}.pth"))
    monkeypatch.setattr(robench, "evaluate", lambda *args, **kwargs: calls.append(kwargs))
    spec = evaluate_imagenet.Evaluation("lite0", "clean", limit)
    evaluate_imagenet.run("lite0-clean", spec, "imagenet:x.tar", out)
    assert (out / "runs" / "lite0-clean" / "meta.json").exists() is not replaced  # no longer counts as finished
    assert calls[0]["limit"] == limit and "overwrite" not in calls[0]  # an interrupted replacement resumes
