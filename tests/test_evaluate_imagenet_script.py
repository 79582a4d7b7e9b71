"""experiments/evaluate_imagenet.py's run bookkeeping (the evaluations themselves are the library's, tested elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import robench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import evaluate_imagenet  # noqa: E402


@pytest.mark.parametrize(("limit", "settings", "replaced"),
                         [(4, {}, False), (None, {}, True), (4, {"seed": 1}, True)])
def test_a_finished_run_made_otherwise_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None,
                                                   settings: dict[str, Any], replaced: bool) -> None:
    """A finished run on another number of images or with another setting (here the seed) is evaluated again into its
    directory, without ``overwrite`` (which would discard an interrupted replacement's finished batches); the same run
    is kept."""
    out, evaluate = tmp_path / "imagenet", robench.evaluate
    first = evaluate("zoo:standard", "sample", "clean", out=out / "runs" / "lite0-clean", limit=4)
    calls: list[dict[str, Any]] = []

    def on_the_sample(model: Path, data: str, suites: str, model_options: Any, data_options: Any,
                      **kwargs: Any) -> robench.Run:  # the ImageNet model and images replaced by the bundled ones
        calls.append(kwargs)
        return evaluate("zoo:standard", "sample", suites, **kwargs)

    monkeypatch.setattr(evaluate_imagenet, "checkpoint", lambda model: Path(f"{model}.pth"))
    monkeypatch.setattr(robench, "evaluate", on_the_sample)
    spec = evaluate_imagenet.Evaluation("lite0", "clean", limit, settings)
    again = evaluate_imagenet.run("lite0-clean", spec, "imagenet:x.tar", out)
    assert len(calls) == 1 + replaced and all("overwrite" not in c for c in calls)
    assert (again.meta["signature"] != first.meta["signature"]) is replaced
    assert robench.load_run(out / "runs" / "lite0-clean").meta["signature"] == again.meta["signature"]


def test_the_fine_tuned_table_reads_each_measure_from_the_runs(tmp_path: Path) -> None:
    """Every row of the fine-tuned models' table finds its value (a mismatched ε or test name would print "–")."""
    options = {"limit": 4, "eps": "1/255,4/255", "reference_model": "zoo:standard", "masking_checks": False}
    runs = {name: robench.evaluate(f"zoo:{model}", "sample", "inequality,adversarial", out=tmp_path / name, **options)
            for name, model in (("lite0-ft-baseline", "standard"), ("ft-pgd-at-eps4", "pgd-at"))}
    lines = evaluate_imagenet.fine_tuned_section(runs)
    header = next(line for line in lines if line.startswith("| measure"))
    assert header == "| measure | Lite0, untouched | PGD-AT ε = 4/255 |"
    rows = [line for line in lines if line.startswith("| ") and line != header]
    assert len(rows) == 11 and not [row for row in rows if "–" in row], rows
    cosine = next(row for row in rows if row.startswith("| saliency cosine"))
    assert cosine.split(" | ")[1].startswith("1.000")  # the untouched model against itself
    assert not [line for line in lines if line.startswith("| PGD-AT ε = 4/255 against")]  # its pair is ft-standard
    paired = evaluate_imagenet.paired_lines({"ft-pgd-at-eps4": runs["ft-pgd-at-eps4"], "ft-standard": runs["lite0-ft-baseline"]})
    row = next(line for line in paired if line.startswith("| PGD-AT ε = 4/255 against fine-tuned, standard ("))
    assert row.count("p = ") == len(evaluate_imagenet.PAIRED_ERRORS) and "–" not in row, row
