"""experiments/igd_alignment_224.py on a tiny model and 32-px images (the real run needs Lite0 and Tiny ImageNet)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import igd_alignment_224  # noqa: E402


def test_the_replay_starts_aligned_and_the_check_measures_both_gradients(tiny_checkpoint: Path, small_npz: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(igd_alignment_224, "LITE0", tiny_checkpoint)
    rows = igd_alignment_224.first_steps(f"npz:{small_npz}", lr=0.05, lam=1.0, steps=2)
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[0]["cosine"] == pytest.approx(1.0, abs=1e-5)  # the student starts as the teacher
    assert rows[1]["cosine"] < 0.9999  # one step at a large learning rate moves its gradients
    check = igd_alignment_224.gradient_check(f"npz:{small_npz}", lr=0.05)
    assert check["igd_grad_norm"] > 0 and check["ce_grad_norm"] > 0
    assert check["cosine_after_one_ce_step"] < 1
    assert check["cosine_after_igd_step_0.01"] != check["cosine_after_one_ce_step"]  # the step moved the weights
