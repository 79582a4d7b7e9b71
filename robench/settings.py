"""The settings of the configurable suites, one dataclass each: every field is a suite option.

Each field is declared once (:func:`robench.options.setting`): the Python API takes it by its name
(``robench.evaluate(..., eps="2/255,8/255")``), ``robench evaluate`` generates its flag from it
(``--eps``), and ``meta.json`` records it under that name (``suites.adversarial.eps``). They live
here, apart from the suites, so that the command line can build its options without importing
torch. Settings that a run recorded under earlier names are read through :func:`recorded_settings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from robench.errors import SettingError
from robench.options import parse_budgets, parse_fractions, parse_ints, parse_optional_floats, setting

#: Inductive noise attack (INA) fractions of C·H·W used by IGD: 0.002, 0.004, …, 0.020.
INA_DEFAULT_FRACTIONS: tuple[float, ...] = tuple(round(0.002 * i, 3) for i in range(1, 11))

#: Random noise (RN) fractions of C·H·W used by IGD: 0.02, 0.04, …, 0.20.
RN_DEFAULT_FRACTIONS: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(1, 11))


@dataclass
class InequalityConfig:
    """Settings of the inequality suite; defaults follow methods.md (IGD's choices unless noted).

    ``attribution_options`` are keyword arguments of the attribution (``steps`` of integrated
    gradients, ``samples`` of SmoothGrad, ...; the CLI's ``--ig-steps``, ``--smoothgrad-samples``, ...).
    ``reference_model``: a model whose attribution maps each image's map is compared with (docs/metrics.md,
    "Alignment with a reference model"); None: no comparison.
    """

    attribution: str | Sequence[str] = setting("saliency", "saliency, integrated_gradients, input_x_gradient or "
                                                           "smoothgrad; several comma-separated (the attacks use the first).")
    attribution_options: dict[str, Any] = field(default_factory=dict)  # each goes to the listed methods accepting it
    gini_value: str = setting("abs", "Attribution values for Gini: abs or positive.")
    ina_budgets: tuple[float | int, ...] = setting(INA_DEFAULT_FRACTIONS, "Inductive-noise budgets: fractions "
                                                   "(0.002,0.004) or counts (5000).", parse=parse_budgets)
    rn_budgets: tuple[float | int, ...] = setting(RN_DEFAULT_FRACTIONS, "Random-noise budgets (fractions or counts).",
                                                  parse=parse_budgets)
    noise_mode: str = setting("add", "add (INA1) or replace (INA2).")
    noise: str = setting("gaussian", "gaussian N(0,1) (IGD) or uniform U[min x, max x] (Duan).")
    trials: int = setting(1, "Noise draws per image and budget.")
    occlusion_fill: tuple[float, ...] = setting((0.0, 0.5, 1.0), "Occlusion fill values (0 Duan, 0.5/1 IGD); "
                                                "empty: no occlusion.", parse=parse_optional_floats)
    occlusion_order: str = setting("count_first", "count_first (IGD) or radius_first (Duan).")
    occlusion_count: int = setting(10, "Max occluded patches N.")
    occlusion_radius: int | None = setting(None, "Max patch radius R (default max(2, round(20·H/224))).")
    occlusion_search: str = setting("auto", "sweep (every (n, r) step in order, up to N·R queries; the papers' loop), "
                                            "bisect (each count's largest square, then a bisection of the radius: "
                                            "about N + log2 R; can miss a success a larger square undoes) or auto "
                                            "(sweep up to N·R = 50 steps, as at 32 px; bisect above, as at 224 px).")
    attack_batch: int | None = setting(None, "Max images per forward pass of the attacks; half of it per "
                                             "attribution pass (default: from the image size, 256 at 32 px, 20 at "
                                             "224 px; sets the memory).")
    reference_model: str | None = setting(None, "Reference model (a checkpoint or any --model form, same input size "
                                                "and classes): per-image cosine and |·| Spearman correlation of its "
                                                "attribution maps (first method) with the model's.")

    def __post_init__(self) -> None:
        if not isinstance(self.attribution, str):  # recorded as on the command line: "saliency,smoothgrad"
            self.attribution = ",".join(self.attribution)

    @property
    def methods(self) -> tuple[str, ...]:
        """The attribution methods in order; the attacks use the first."""
        from robench.attribution import attribution_names

        return attribution_names(self.attribution)

    def validate(self) -> None:
        """One-line errors, naming the setting, for values out of range."""
        from robench.attacks import NOISE_KINDS, NOISE_MODES, ORDERS, SEARCHES
        from robench.attribution import options_per_method

        options_per_method(self.methods, self.attribution_options)
        for name, allowed in (("gini_value", ("abs", "positive")), ("noise_mode", NOISE_MODES), ("noise", NOISE_KINDS),
                              ("occlusion_order", ORDERS), ("occlusion_search", ("auto", *SEARCHES))):
            if getattr(self, name) not in allowed:
                raise SettingError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("trials", "occlusion_count", "attack_batch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.occlusion_radius is not None and self.occlusion_radius < 1:
            raise SettingError("occlusion_radius", f"must be at least 1, got {self.occlusion_radius}")
        if any(not 0.0 <= f <= 1.0 for f in self.occlusion_fill):
            raise SettingError("occlusion_fill", f"values must lie in [0, 1], got {list(self.occlusion_fill)}")


@dataclass
class AdversarialConfig:
    """``adversarial`` suite settings; ε in [0, 1] units (8/255 = 0.0314); the PGD step size is relative to ε."""

    eps: tuple[float, ...] = setting((8 / 255,), "l∞ radii in [0,1] units, e.g. 2/255,4/255,8/255.",
                                      parse=parse_fractions, shown="8/255")
    pgd_steps: int = setting(10, "PGD steps (step size ε/4: 2/255 at 8/255).")
    pgd_rel_stepsize: float = setting(0.25, "PGD step size as a fraction of ε (0.25: the papers' 2/255 at 8/255).")
    pgd_restarts: int = setting(1, "PGD random restarts.")
    autoattack: bool = setting(False, "Also run AutoAttack (standard); needs robench[autoattack].")
    masking_checks: bool = setting(True, "FGSM and large-ε PGD checks that flag gradient masking.")

    def validate(self) -> None:
        """One-line errors, naming the setting, for values out of range."""
        if not self.eps or any(not 0 < e <= 1 for e in self.eps):
            raise SettingError("eps", f"values must lie in (0, 1], got {list(self.eps)}")
        for name in ("pgd_steps", "pgd_restarts"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.pgd_rel_stepsize <= 0:
            raise SettingError("pgd_rel_stepsize", f"must be positive, got {self.pgd_rel_stepsize}")
        if self.autoattack:
            try:
                import pyautoattack  # noqa: F401
            except ImportError:
                raise SettingError("autoattack", "needs the optional package: pip install 'robench[autoattack]'") from None


@dataclass
class CorruptionsConfig:
    """Which corruptions and severities; engine ``torch`` uses the batched noise family where it exists."""

    corruptions: str = setting("all", "noise, blur, weather, digital, extra, common, all or names.")
    severities: tuple[int, ...] = setting((1, 2, 3, 4, 5), "Severities 1-5.", parse=parse_ints)
    corruption_table: str | None = setting(None, "imagenet-c or cifar10-c (default by resolution).")
    corruption_engine: str = setting("torch", "torch (batched noise family) or library (imagecorruptions only).")
    workers: int = setting(0, "Worker processes generating library corruptions.")

    def validate(self) -> None:
        """One-line errors, naming the setting, for values out of range."""
        from robench.corruptions.names import check_severity, resolve_corruptions

        resolve_corruptions(self.corruptions)
        for s in self.severities:
            check_severity(s)
        if self.corruption_engine not in ("torch", "library"):
            raise SettingError("corruption_engine", f"must be torch or library, got {self.corruption_engine!r}")
        if self.workers < 0:
            raise SettingError("workers", f"must be ≥ 0, got {self.workers}")


@dataclass
class SanityConfig:
    """``sanity`` suite settings: the attribution under test (shared with the inequality suite: one
    ``attribution`` setting serves both), how many randomisation steps, the flagging threshold."""

    attribution: str = setting("saliency", "saliency, integrated_gradients, input_x_gradient or smoothgrad.")
    attribution_options: dict[str, Any] = field(default_factory=dict)
    mprt_steps: int = setting(16, "At most this many randomisation steps: the layers, output first, split into "
                                  "that many consecutive groups.")
    mprt_threshold: float = setting(0.5, "Flag the attribution when the mean Spearman correlation stays above this "
                                         "at the verdict step.")
    mprt_verdict_share: float = setting(1.0, "The verdict step: the first that has randomised at least this share "
                                             "of the layers.")

    def validate(self) -> None:
        """One-line errors, naming the setting, for values out of range."""
        from robench.attribution import get_attribution

        if "," in self.attribution:
            raise SettingError("attribution", f"the sanity suite checks one attribution per run, got {self.attribution!r}")
        get_attribution(self.attribution)
        if self.mprt_steps < 1:
            raise SettingError("mprt_steps", f"must be at least 1, got {self.mprt_steps}")
        if not -1.0 <= self.mprt_threshold <= 1.0:
            raise SettingError("mprt_threshold", f"must lie in [-1, 1], got {self.mprt_threshold}")
        if not 0.0 < self.mprt_verdict_share <= 1.0:
            raise SettingError("mprt_verdict_share", f"must lie in (0, 1], got {self.mprt_verdict_share}")


#: Each configurable suite's settings.
SUITE_CONFIGS: dict[str, type] = {"inequality": InequalityConfig, "adversarial": AdversarialConfig,
                                  "corruptions": CorruptionsConfig, "sanity": SanityConfig}


def setting_owners() -> dict[str, list[str]]:
    """Each setting's suites: one for most, inequality and sanity for ``attribution`` and ``attribution_options``."""
    owners: dict[str, list[str]] = {}
    for suite, cls in SUITE_CONFIGS.items():
        for f in fields(cls):
            owners.setdefault(f.name, []).append(suite)
    return owners

#: Names under which earlier runs recorded settings (meta.json ``suites``), by their names now.
LEGACY_NAMES: dict[str, str] = {"epsilons": "eps", "steps": "pgd_steps", "rel_stepsize": "pgd_rel_stepsize",
                                "restarts": "pgd_restarts", "sanity_checks": "masking_checks",
                                "engine": "corruption_engine", "table": "corruption_table", "occlusion_fills": "occlusion_fill",
                                "occlusion_max_count": "occlusion_count", "max_batch": "attack_batch"}


def recorded_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """A suite's settings as a run recorded them (``meta["suites"][name]``), under today's names.

    ``occlusion_max_radius`` (the user's value, None for the default) is dropped: older runs recorded the
    resolved radius beside it as ``occlusion_radius``, the name that holds it now. Runs recorded before
    the occlusion search was a setting swept the grid. An unset reference model is left out, so that runs
    without one compare equal to those recorded before the setting existed.
    """
    settings = {LEGACY_NAMES.get(k, k): v for k, v in recorded.items() if k != "occlusion_max_radius"}
    if "occlusion_order" in settings:
        settings.setdefault("occlusion_search", "sweep")
    if settings.get("reference_model", "") is None:  # no reference: as runs recorded before the setting existed
        del settings["reference_model"]
    return settings
