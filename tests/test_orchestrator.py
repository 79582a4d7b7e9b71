"""One orchestrator (robench.api.evaluate; the CLI only turns text into its arguments) and each option declared once:
the model-loading options (LoadOptions), the attribution options (AttributionOptions) and the default suite have one
name and one default in Python, on the command line and in meta.json."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path

import pytest
import typer.main
from conftest import tiny_model  # tests/ is on sys.path (no package), under pytest and python -m pytest

import robench
from robench.api import evaluate, suite_configs
from robench.errors import RobenchError, SettingError
from robench.options import flag
from robench.settings import (
    DEFAULT_SUITE,
    AttributionOptions,
    InequalityConfig,
    LoadOptions,
    SanityConfig,
    recorded_settings,
)


def _flags(command: str) -> dict[str, object]:
    from robench.cli import app

    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    return {opt: param for param in params for opt in param.opts}


def test_one_default_suite_in_python_and_on_the_command_line() -> None:
    assert inspect.signature(evaluate).parameters["suites"].default == DEFAULT_SUITE == "clean"
    assert _flags("evaluate")["--suite"].default == DEFAULT_SUITE  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls, command, skip", [(LoadOptions, "evaluate", ()), (AttributionOptions, "evaluate", ()),
                                                (LoadOptions, "probe-normalization", ("mean", "std"))])
def test_every_loading_and_attribution_option_is_a_flag_of_the_same_name(cls: type, command: str,
                                                                         skip: tuple[str, ...]) -> None:
    flags = _flags(command)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal") or f.name in skip:
            assert flag(f.name) not in flags or f.name in skip
            continue
        assert flag(f.name) in flags, f"{cls.__name__}.{f.name} has no {flag(f.name)} on {command}"
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_attribution_options_have_one_name_and_the_older_form_still_reads() -> None:
    named = suite_configs("inequality,sanity", {"attribution": "integrated_gradients", "ig_steps": 8})
    legacy = suite_configs("inequality,sanity", {"attribution": "integrated_gradients",
                                                 "attribution_options": {"steps": 8}})
    assert named == legacy
    for suite in ("inequality", "sanity"):  # one setting, each suite that runs
        assert named[suite]["config"].attribution_options == AttributionOptions(ig_steps=8)
        assert named[suite]["config"].attribution_options.keywords() == {"steps": 8}
    assert InequalityConfig(attribution=["saliency", "smoothgrad"]).attribution == "saliency,smoothgrad"
    assert dataclasses.fields(InequalityConfig)[0].type == dataclasses.fields(SanityConfig)[0].type  # one declaration
    assert recorded_settings({"attribution_options": {"steps": 8, "samples": 2}})["attribution_options"] == {
        "ig_steps": 8, "smoothgrad_samples": 2}  # runs recorded by the methods' keywords
    with pytest.raises(SettingError, match=r"^ig_steps does not apply to attribution 'saliency'$"):
        suite_configs("inequality", {"ig_steps": 8})["inequality"]["config"].validate()
    with pytest.raises(SettingError, match=r"^ig_steps is an option of the inequality and sanity suite"):
        suite_configs("clean", {"ig_steps": 8})


def test_the_sanity_suite_records_its_attribution_options_by_name() -> None:
    run = robench.evaluate(tiny_model(), "sample", "sanity", limit=4, attribution="smoothgrad", smoothgrad_samples=2,
                           mprt_steps=2)
    assert run.meta["suites"]["sanity"]["attribution_options"] == {"smoothgrad_samples": 2}


def test_load_model_takes_the_options_as_keywords_a_mapping_or_text(tiny_checkpoint: Path) -> None:
    model = robench.load_model(str(tiny_checkpoint), {"mean": "0.4,0.4,0.4", "std": [0.2, 0.2, 0.2]},
                               test_time_flip=True)
    assert model.info.mean == (0.4, 0.4, 0.4) and model.info.std == (0.2, 0.2, 0.2) and model.info.test_time_flip
    again = robench.load_model(str(tiny_checkpoint), LoadOptions(mean=(0.4,) * 3, std=(0.2,) * 3, test_time_flip=True))
    assert again.info == model.info
    with pytest.raises(RobenchError, match="unknown setting 'archh'"):
        robench.load_model(str(tiny_checkpoint), archh="cnn_tiny")


@pytest.mark.parametrize("call, message", [
    ({"limit": 0}, r"^limit must be at least 1, got 0$"),
    ({"batch_size": 0}, r"^batch_size must be at least 1, got 0$"),
    ({"model_options": {"num_classes": 0}}, r"^num_classes must be at least 1$"),
    ({"model_options": {"input_size": "32,32"}}, r"^input_size takes C,H,W, e.g. 3,32,32$"),
    ({"model_options": {"mean": "a,b"}}, r"^mean takes comma-separated numbers"),
    ({"suites": "inequality", "ina_budgets": "5000"}, r"^ina_budgets count 5000 exceeds the 3072 entries"),
    ({"suites": "inequality", "occlusion_count": 5000}, r"^occlusion_count 5000 exceeds the 1024 pixels"),
    ({"data_options": {"image_size": "3,32,32"}}, r"^image_size takes H,W or one size"),
    ({"suites": "inequality", "attribution": "integrated_gradients", "ig_method": "bogus"},  # in the first batch
     r"unknown integrated-gradients method 'bogus'"),
])
def test_python_errors_name_the_setting_and_leave_no_output(tiny_checkpoint: Path, tmp_path: Path, call: dict,  # type: ignore[type-arg]
                                                            message: str) -> None:
    """The checks the command line made before are the API's: the same errors, naming the setting (the CLI shows
    its flag, docs/errors.md), and an output directory this call created is removed."""
    out = tmp_path / "new" / "run"
    with pytest.raises(RobenchError, match=message):
        robench.evaluate(str(tiny_checkpoint), **{"suites": "clean", "limit": 8, "out": out, **call})
    assert not (tmp_path / "new").exists()


def test_the_api_logs_the_warnings_the_cli_prints(caplog: pytest.LogCaptureFixture, cli,  # type: ignore[no-untyped-def]
                                                  tiny_checkpoint: Path) -> None:
    with caplog.at_level(logging.WARNING, logger="robench.api"):
        robench.evaluate(str(tiny_checkpoint), limit=32)  # an untrained model: near chance
    (message,) = [r.getMessage() for r in caplog.records if r.name == "robench.api"]
    assert message.startswith("robench: warning: clean accuracy") and "is near chance" in message
    assert f"robench probe-normalization --model {tiny_checkpoint} --data sample" in message
    r = cli("evaluate", "--model", tiny_checkpoint, "--limit", "32")
    assert r.code == 0 and message in r.err


def test_help_fits_80_columns_with_every_option_named() -> None:
    """`robench evaluate --help` in an 80-column terminal: plain text, no name cut short, the suites listed."""
    import subprocess
    import sys

    from robench.suites import SUITES

    env = {**__import__("os").environ, "COLUMNS": "80", "TERM": "dumb"}
    text = subprocess.run([sys.executable, "-m", "robench", "evaluate", "--help"], capture_output=True, text=True,
                          env=env, timeout=120, check=True).stdout
    assert "…" not in text and "\\[" not in text and "ATTRIBUTION_FLAGS" not in text
    assert max(map(len, text.splitlines())) <= 80
    for name in ("--occlusion-radius", "--occlusion-search", "--reference-model", "--test-time-flip", "--ig-steps"):
        assert f"  {name} " in text, name
    suite_help = " ".join(text.split("--suite", 1)[1].split("-o, --out")[0].split())
    assert all(name in suite_help for name in [*SUITES, "full"]), suite_help
