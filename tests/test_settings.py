"""Each suite setting is declared once (robench.settings): one name in the API, the CLI and meta.json."""

from __future__ import annotations

import dataclasses

import pytest

import robench
from robench.api import suite_configs
from robench.errors import SettingError
from robench.options import flag
from robench.settings import LEGACY_NAMES, SUITE_CONFIGS, AdversarialConfig, InequalityConfig, recorded_settings


def _evaluate_flags() -> set[str]:
    import typer.main

    from robench.cli import app

    command = typer.main.get_command(app).commands["evaluate"]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts}


@pytest.mark.parametrize("suite", sorted(SUITE_CONFIGS))
def test_every_setting_is_an_evaluate_flag_of_the_same_name(suite: str) -> None:
    flags = _evaluate_flags()
    for f in dataclasses.fields(SUITE_CONFIGS[suite]):
        if f.name != "attribution_options":  # given as --ig-steps, --smoothgrad-samples, ... (per attribution)
            assert flag(f.name) in flags, f"{suite}.{f.name} has no {flag(f.name)}"
            assert f.metadata.get("help"), f"{suite}.{f.name} has no help text"


def test_text_values_parse_like_the_command_line() -> None:
    config = suite_configs("adversarial", {"eps": "2/255,8/255", "pgd_steps": 3})["adversarial"]["config"]
    assert config == AdversarialConfig(eps=(2 / 255, 8 / 255), pgd_steps=3)
    config = suite_configs("inequality", {"occlusion_fill": "", "ina_budgets": [0.01]})["inequality"]["config"]
    assert config.occlusion_fill == () and config.ina_budgets == (0.01,)


def test_a_bad_value_names_the_field_in_python_and_the_flag_on_the_command_line(cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingError) as info:
        InequalityConfig(occlusion_count=0).validate()
    assert info.value.field == "occlusion_count" and str(info.value).startswith("occlusion_count: must be at least 1")
    with pytest.raises(SettingError, match=r"^pgd_restarts: must be at least 1"):
        robench.evaluate("zoo:standard", "sample", suites="adversarial", limit=4, pgd_restarts=0)
    r = cli("evaluate", "--suite", "adversarial", "--limit", "4", "--pgd-restarts", "0")
    assert r.code == 2 and r.err.strip() == "robench: error: --pgd-restarts: must be at least 1, got 0"


def test_runs_recorded_under_earlier_names_read_under_todays() -> None:
    old = {"epsilons": [0.03], "steps": 10, "restarts": 1, "rel_stepsize": 0.25, "sanity_checks": True, "autoattack": False,
           "occlusion_fills": [0.5], "occlusion_max_count": 10, "occlusion_max_radius": None, "occlusion_radius": 3,
           "max_batch": 256, "engine": "torch", "table": "cifar10-c"}
    now = recorded_settings(old)
    assert now == {"eps": [0.03], "pgd_steps": 10, "pgd_restarts": 1, "pgd_rel_stepsize": 0.25, "masking_checks": True,
                   "autoattack": False, "occlusion_fill": [0.5], "occlusion_count": 10, "occlusion_radius": 3,
                   "attack_batch": 256, "corruption_engine": "torch", "corruption_table": "cifar10-c"}
    fields = {f.name for cls in SUITE_CONFIGS.values() for f in dataclasses.fields(cls)}
    assert set(LEGACY_NAMES.values()) <= fields  # every old name maps to a setting that exists
