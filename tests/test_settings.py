"""Each suite setting is declared once (robench.settings): one name in the API, the CLI and meta.json."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import ROOT  # tests/ is on sys.path (no package)

import robench
from robench.api import suite_configs
from robench.errors import SettingError
from robench.settings import LEGACY_NAMES, SUITE_CONFIGS, AdversarialConfig, InequalityConfig, recorded_settings

#: The attribution options, flags of every suite that computes maps (docs/python-api.md, "Suite options").
ATTRIBUTION_OPTION_FLAGS = {"--ig-steps", "--ig-method", "--ig-baseline", "--internal-batch-size",
                            "--smoothgrad-samples", "--smoothgrad-sigma", "--smoothgrad-squared"}
#: The flags of ``robench evaluate`` that set each suite's settings, written out from the README's suite table and
#: docs/python-api.md ("Suite options") rather than derived from the code: renaming or dropping a documented flag,
#: or adding a setting without a flag documented here, fails the tests below.
DOCUMENTED_SUITE_FLAGS = {
    "inequality": {"--attribution", *ATTRIBUTION_OPTION_FLAGS, "--gini-value", "--ina-budgets", "--rn-budgets",
                   "--noise-mode", "--noise", "--trials", "--occlusion-fill", "--occlusion-order", "--occlusion-count",
                   "--occlusion-radius", "--occlusion-search", "--attack-batch", "--reference-model", "--region-block"},
    "adversarial": {"--eps", "--pgd-steps", "--pgd-rel-stepsize", "--pgd-restarts", "--autoattack", "--masking-checks"},
    "corruptions": {"--corruptions", "--severities", "--corruption-table", "--corruption-engine", "--workers"},
    "sanity": {"--attribution", *ATTRIBUTION_OPTION_FLAGS, "--mprt-steps", "--mprt-threshold", "--mprt-verdict-share"},
}


def _evaluate_options() -> dict[str, str]:
    """The options of the real ``robench evaluate`` command: flag → the keyword it passes on."""
    import typer.main

    from robench.cli import app

    command = typer.main.get_command(app).commands["evaluate"]  # type: ignore[attr-defined]
    return {opt: param.name for param in command.params for opt in param.opts}


def _setting_names(suite: str) -> set[str]:
    """The suite's settings by name, the attribution options (one field) by theirs."""
    from robench.settings import AttributionOptions

    names = {f.name for f in dataclasses.fields(SUITE_CONFIGS[suite])}
    if "attribution_options" in names:
        names = names - {"attribution_options"} | {f.name for f in dataclasses.fields(AttributionOptions)}
    return names


def test_the_documented_flags_are_those_of_the_settings() -> None:
    """Against the hand-written list: every documented flag exists, passes the setting of its own name, and no
    setting lacks a documented flag."""
    assert set(DOCUMENTED_SUITE_FLAGS) == set(SUITE_CONFIGS)
    options = _evaluate_options()
    for suite, documented in DOCUMENTED_SUITE_FLAGS.items():
        names = _setting_names(suite)
        assert not documented - set(options), f"robench evaluate lacks {sorted(documented - set(options))}"
        wrong = {f: options[f] for f in documented if options[f] not in names}
        assert not wrong, f"{suite}: these flags do not set a {suite} setting: {wrong}"
        flags_of_settings = {f for f, name in options.items() if name in names and f.startswith("--")}
        assert flags_of_settings == documented, (
            f"{suite}: settings with undocumented flags {sorted(flags_of_settings - documented)}; add them to the "
            f"README's suite table or docs/python-api.md and to DOCUMENTED_SUITE_FLAGS")
        for f in dataclasses.fields(SUITE_CONFIGS[suite]):
            assert f.metadata.get("help") or f.name == "attribution_options", f"{suite}.{f.name} has no help text"


def test_the_readme_suite_table_names_real_flags_of_the_suite() -> None:
    """Every flag in the README's suite table is a documented flag of that suite's row (and so, above, a real one)."""
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \|[^\n]*?\|([^|\n]*)\|$",
                                                        (ROOT / "README.md").read_text(), re.MULTILINE)}
    assert set(DOCUMENTED_SUITE_FLAGS) <= set(rows), f"the README's suite table lacks rows for {set(rows)}"
    for suite, documented in DOCUMENTED_SUITE_FLAGS.items():
        named = set(re.findall(r"--[a-z][a-z-]*", rows[suite]))
        assert named, f"the README's {suite} row names no flag"
        assert named <= documented, f"the README's {suite} row names {sorted(named - documented)}, not its flags"


@pytest.mark.parametrize(("flag", "value"), [("--occlusion-count", "0"), ("--trials", "0"), ("--pgd-steps", "0"),
                                             ("--mprt-steps", "0"), ("--workers", "-1")])
def test_a_documented_flag_reaches_its_setting(cli, flag: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """The flag's value arrives at the suite's check, which names the flag back."""
    suite = next(s for s, flags in DOCUMENTED_SUITE_FLAGS.items() if flag in flags)
    r = cli("evaluate", "--suite", suite, "--limit", "4", flag, value)
    assert r.code == 2 and r.err.startswith(f"robench: error: {flag}"), r.err


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
