"""The settings of an evaluation, one dataclass each: the configurable suites' (every field a suite option),
the attribution methods' options (:class:`AttributionOptions`) and how the model is loaded (:class:`LoadOptions`).

Each field is declared once (:func:`robench.options.setting`): the Python API takes it by its name
(``robench.evaluate(..., eps="2/255,8/255", ig_steps=8)``, ``robench.load_model(spec, arch=...)``),
``robench evaluate`` generates its flag from it (``--eps``, ``--ig-steps``, ``--arch``), and
``meta.json`` records it under that name (``suites.adversarial.eps``,
``suites.inequality.attribution_options.ig_steps``, ``model_loading.arch``). They live here, apart
from the suites and the loaders, so that the command line can build its options without importing
torch. Settings that a run recorded under earlier names are read through :func:`recorded_settings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, cast

from robench.errors import RobenchError, SettingError
from robench.options import (
    config_from_values,
    parse_budgets,
    parse_floats,
    parse_fractions,
    parse_ints,
    parse_optional_floats,
    parse_size,
    setting,
)

#: The suites ``robench evaluate`` and ``robench.evaluate`` run when none are named: clean accuracy alone, the
#: cheap check that a model and its data fit (``--suite inequality`` or ``suites="inequality"`` for the rest).
DEFAULT_SUITE = "clean"

#: Inductive noise attack (INA) fractions of C·H·W used by IGD: 0.002, 0.004, …, 0.020.
INA_DEFAULT_FRACTIONS: tuple[float, ...] = tuple(round(0.002 * i, 3) for i in range(1, 11))

#: Random noise (RN) fractions of C·H·W used by IGD: 0.02, 0.04, …, 0.20.
RN_DEFAULT_FRACTIONS: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(1, 11))

#: The noise attacks' choices (:mod:`robench.attacks.noise`, which imports them from here: the settings check them
#: without importing torch): how the noise enters the chosen entries (add: INA1, replace: INA2) and its distribution.
NOISE_MODES: tuple[str, ...] = ("add", "replace")
NOISE_KINDS: tuple[str, ...] = ("gaussian", "uniform")

#: The occlusion attack's choices (:mod:`robench.attacks.occlusion`): the order of its (count, radius) steps and
#: its search.
ORDERS: tuple[str, ...] = ("count_first", "radius_first")
SEARCHES: tuple[str, ...] = ("bisect", "sweep")


@dataclass(frozen=True)
class AttributionOptions:
    """Options of the attribution methods; each goes to the methods of a run that accept it, as their keyword
    argument ``metadata["keyword"]`` (``ig_steps`` → ``integrated_gradients(steps=...)``); None keeps the method's
    default. One name everywhere: ``robench.evaluate(..., ig_steps=8)``, ``--ig-steps 8``, and
    ``"attribution_options": {"ig_steps": 8}`` under the suite in meta.json."""

    ig_steps: int | None = setting(None, "Integrated-gradients steps (default 50).", keyword="steps")
    ig_method: str | None = setting(None, "gausslegendre or riemann_{trapezoid,left,right,middle}.", keyword="method")
    ig_baseline: str | None = setting(None, "zero (black) or mean (the model's normalisation mean).", keyword="baseline")
    internal_batch_size: int | None = setting(None, "Max inputs per forward pass inside IG/smoothgrad.",
                                              keyword="internal_batch_size")
    smoothgrad_samples: int | None = setting(None, "Smoothgrad noise samples (default 20).", keyword="samples")
    smoothgrad_sigma: float | None = setting(None, "Smoothgrad noise std in [0,1] units (default 0.2).", keyword="sigma")
    smoothgrad_squared: bool | None = setting(None, "Square each smoothgrad sample gradient (default: yes, Captum's "
                                                    "smoothgrad_sq; no: plain SmoothGrad).", keyword="squared")

    @classmethod
    def of(cls, value: AttributionOptions | Mapping[str, Any] | None) -> AttributionOptions:
        """From options, or a mapping by name (``{"ig_steps": 8}``) or, as robench took and recorded them before
        they had names of their own, by the methods' keywords (``{"steps": 8}``)."""
        if isinstance(value, cls):
            return value
        by_keyword = {f.metadata["keyword"]: f.name for f in fields(cls)}
        names = {f.name for f in fields(cls)}
        given = {}
        for key, item in dict(cast("Mapping[str, Any] | None", value) or {}).items():
            name = key if key in names else by_keyword.get(key)
            if name is None:
                raise RobenchError(f"unknown attribution option {key!r}; options: {', '.join(sorted(names))}")
            given[name] = item
        return cls(**given)

    def record(self) -> dict[str, Any]:
        """The options set (not None), by name: what meta.json records."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def keywords(self) -> dict[str, Any]:
        """The options set, as the methods' keyword arguments (``{"steps": 8}``)."""
        return {f.metadata["keyword"]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def check(self, methods: Sequence[str]) -> None:
        """SettingError naming an option set that none of ``methods`` accepts."""
        from robench.attribution import attribution_options

        accepted = {keyword for method in methods for keyword in attribution_options(method)}
        for f in fields(self):
            if getattr(self, f.name) is not None and f.metadata["keyword"] not in accepted:
                raise SettingError(f.name, f"does not apply to attribution {' or '.join(repr(m) for m in methods)}",
                                   sep=" ")

    def per_method(self, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each method's keyword arguments: the options it accepts."""
        from robench.attribution import options_per_method

        self.check(methods)
        return options_per_method(methods, self.keywords())


@dataclass
class AttributionSettings:
    """The attribution of the suites that compute maps (inequality and sanity), declared once for both: one
    ``attribution`` setting and one set of :class:`AttributionOptions` serve each suite that runs.

    ``attribution`` is text, several methods comma-separated (a list of names is joined); the sanity suite
    checks one method per run. ``attribution_options`` also takes a mapping (:meth:`AttributionOptions.of`).
    """

    # typed as stored, like attribution_options: a sequence of names is also taken, and joined by __post_init__
    attribution: str = setting("saliency", "saliency, integrated_gradients, input_x_gradient or "
                                           "smoothgrad; several comma-separated (the attacks use the "
                                           "first; the sanity suite takes one).")
    attribution_options: AttributionOptions = field(default_factory=AttributionOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.attribution, str):  # recorded as on the command line: "saliency,smoothgrad"
            self.attribution = ",".join(self.attribution)
        self.attribution_options = AttributionOptions.of(self.attribution_options)


def config_record(config: Any) -> dict[str, Any]:
    """A settings dataclass as meta.json records it: its fields, the attribution options by name (only those set)."""
    record = asdict(config)
    if isinstance(config, AttributionSettings):
        record["attribution_options"] = config.attribution_options.record()
    return record


@dataclass
class InequalityConfig(AttributionSettings):
    """Settings of the inequality suite; defaults follow the IGD paper's choices unless noted (docs/metrics.md,
    docs/attacks.md).

    ``attribution`` and ``attribution_options`` (:class:`AttributionSettings`) are shared with the sanity suite.
    ``reference_model``: a model whose attribution maps each image's map is compared with (docs/metrics.md,
    "Alignment with a reference model"); None: no comparison.
    """

    gini_value: str = setting("abs", "Attribution values for Gini: abs or positive.")
    ina_budgets: tuple[float | int, ...] = setting(INA_DEFAULT_FRACTIONS, "Inductive-noise budgets: fractions "
                                                   "(0.002,0.004) or counts (5000).", parse=parse_budgets)
    rn_budgets: tuple[float | int, ...] = setting(RN_DEFAULT_FRACTIONS, "Random-noise budgets (fractions or counts).",
                                                  parse=parse_budgets)
    noise_mode: str = setting("add", "add (INA1) or replace (INA2).")
    noise: str = setting("gaussian", "gaussian N(0,1) (IGD) or uniform U[min x, max x] (Duan).")
    trials: int = setting(1, "Noise draws per image and budget.")
    region_block: int | None = setting(None, "Block size b (px) of the regional Gini (Duan's sum over b×b blocks; "
                                             "default: the finest power-of-two grid of at most 14×14 regions: 4 at "
                                             "32 px, 16 at 224 px, 32 at 240-260 px). Fix it to compare models of "
                                             "different resolutions.")
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

    @property
    def methods(self) -> tuple[str, ...]:
        """The attribution methods in order; the attacks use the first."""
        from robench.attribution import attribution_names

        return attribution_names(self.attribution)

    def validate(self) -> None:
        """One-line errors, naming the setting, for values out of range."""
        self.attribution_options.check(self.methods)
        for name, allowed in (("gini_value", ("abs", "positive")), ("noise_mode", NOISE_MODES), ("noise", NOISE_KINDS),
                              ("occlusion_order", ORDERS), ("occlusion_search", ("auto", *SEARCHES))):
            if getattr(self, name) not in allowed:
                raise SettingError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("trials", "occlusion_count", "attack_batch", "region_block"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SettingError(name, f"must be at least 1, got {getattr(self, name)}")
        if self.occlusion_radius is not None and self.occlusion_radius < 1:
            raise SettingError("occlusion_radius", f"must be at least 1, got {self.occlusion_radius}")
        if any(not 0.0 <= f <= 1.0 for f in self.occlusion_fill):
            raise SettingError("occlusion_fill", f"values must lie in [0, 1], got {list(self.occlusion_fill)}")

    def check_image(self, shape: tuple[int, int, int]) -> None:
        """Counts larger than one image of ``shape`` (C, H, W), named by their setting, before any work."""
        c, h, w = shape
        for name in ("ina_budgets", "rn_budgets"):
            budgets = getattr(self, name)
            if too_big := [b for b in budgets if isinstance(b, int) and not isinstance(b, bool) and b > c * h * w]:
                raise SettingError(name, f"count {too_big[0]} exceeds the {c * h * w} entries (C·H·W) of one image",
                                   sep=" ")
        if self.region_block is not None and self.region_block > min(h, w):
            raise SettingError("region_block", f"{self.region_block} exceeds the {min(h, w)}-pixel side of one image",
                               sep=" ")
        if self.occlusion_count > h * w:
            raise SettingError("occlusion_count", f"{self.occlusion_count} exceeds the {h * w} pixels of one image",
                               sep=" ")


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
class SanityConfig(AttributionSettings):
    """``sanity`` suite settings: the attribution under test (:class:`AttributionSettings`, shared with the
    inequality suite: one ``attribution`` setting serves both), how many randomisation steps, the flagging
    threshold."""

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
        self.attribution_options.check((self.attribution,))
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
    """Each setting's suites: one for most, inequality and sanity for ``attribution``, ``attribution_options`` and
    each attribution option (``ig_steps``, ...)."""
    owners: dict[str, list[str]] = {}
    for suite, cls in SUITE_CONFIGS.items():
        for f in fields(cls):
            owners.setdefault(f.name, []).append(suite)
    for f in fields(AttributionOptions):
        owners[f.name] = owners["attribution_options"]
    return owners


#: The attribution options' names (``ig_steps``, ...): settings of every suite that has ``attribution_options``.
ATTRIBUTION_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(AttributionOptions))


@dataclass(frozen=True)
class LoadOptions:
    """How a model is loaded: everything that overrides or completes what a checkpoint says about itself.

    Declared once: ``robench.load_model(spec, arch=..., mean=...)`` and ``robench.evaluate(model_options=...)``
    take these names (sequences also as text: ``mean="0.485,0.456,0.406"``, ``input_size="3,32,32"``),
    ``robench evaluate`` and ``robench probe-normalization`` generate their flags from them (``--arch``,
    ``--mean``, ``--test-time-flip``, ...), and an evaluation records them in meta.json as ``model_loading``,
    from which reports and ``robench.gini_check`` rebuild the run's model exactly (:func:`load_options`).
    """

    arch: str | None = setting(None, "Architecture for a bare state dict: robench name, timm name or pkg.module:callable.")
    arch_path: str | None = setting(None, "Directory to import --arch pkg.module from.")
    weights: str | None = setting(None, "Local weights file for a timm:NAME model.")
    mean: tuple[float, ...] | None = setting(None, "Per-channel normalisation mean, e.g. 0.485,0.456,0.406.",
                                             parse=parse_floats)
    std: tuple[float, ...] | None = setting(None, "Per-channel normalisation std, e.g. 0.229,0.224,0.225.",
                                            parse=parse_floats)
    num_classes: int | None = setting(None, "Override the model's class count.")
    input_size: tuple[int, int, int] | None = setting(None, "Override the model's input size: C,H,W.", parse=parse_size)
    trust_checkpoint: bool = setting(False, "Allow checkpoints that run pickled code when loaded.")
    test_time_flip: bool = setting(False, "Average each image's logits with its left-right mirror's (airbench's "
                                          "test-time augmentation; attacks and attributions see the average).")
    # a package.module:callable the calling command named itself (train --arch): checkpoint metadata may name it too
    allow_arch: str | None = setting(None, "An arch callable the checkpoint's metadata may name.", internal=True)

    def validate(self) -> None:
        """One-line errors, naming the setting, for values out of range."""
        if self.input_size is not None and len(self.input_size) != 3:
            raise SettingError("input_size", "takes C,H,W, e.g. 3,32,32", sep=" ")
        if self.num_classes is not None and self.num_classes < 1:
            raise SettingError("num_classes", "must be at least 1", sep=" ")

    def record(self) -> dict[str, Any]:
        """The options as meta.json's ``model_loading`` records them (sequences as lists; internal fields left out)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self) if not f.metadata.get("internal")}


#: The model-loading options' names, as keywords, flags (``--arch``) and in meta.json's ``model_loading``.
LOAD_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(LoadOptions) if not f.metadata.get("internal"))


def load_options(options: LoadOptions | Mapping[str, Any] | None = None, **values: Any) -> LoadOptions:
    """:class:`LoadOptions` from options or a mapping of their values (a run's ``model_loading`` record, or
    ``model_options``), with ``values`` on top; text forms are parsed (``mean="0.5,0.5,0.5"``), lists become
    tuples, and a name that is no option is a RobenchError."""
    base = {f.name: getattr(options, f.name) for f in fields(LoadOptions)} if isinstance(options, LoadOptions) \
        else dict(options or {})
    return config_from_values(LoadOptions, {**base, **values})

#: Names under which earlier runs recorded settings (meta.json ``suites``), by their names now.
LEGACY_NAMES: dict[str, str] = {"epsilons": "eps", "steps": "pgd_steps", "rel_stepsize": "pgd_rel_stepsize",
                                "restarts": "pgd_restarts", "sanity_checks": "masking_checks",
                                "engine": "corruption_engine", "table": "corruption_table", "occlusion_fills": "occlusion_fill",
                                "occlusion_max_count": "occlusion_count", "max_batch": "attack_batch"}


def recorded_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """A suite's settings as a run recorded them (``meta["suites"][name]``), under today's names.

    ``occlusion_max_radius`` (the user's value, None for the default) is dropped: older runs recorded the
    resolved radius beside it as ``occlusion_radius``, the name that holds it now. Runs recorded before
    the occlusion search was a setting swept the grid. An unset reference model or regional-Gini block is
    left out, so that runs without one compare equal to those recorded before the setting existed. Attribution
    options recorded by the methods' keywords (``{"steps": 8}``, before they had names) read by name
    (``{"ig_steps": 8}``).
    """
    settings = {LEGACY_NAMES.get(k, k): v for k, v in recorded.items() if k != "occlusion_max_radius"}
    if isinstance(settings.get("attribution_options"), dict):
        by_keyword = {f.metadata["keyword"]: f.name for f in fields(AttributionOptions)}
        names = set(ATTRIBUTION_OPTIONS)
        settings["attribution_options"] = {k if k in names else by_keyword.get(k, k): v
                                           for k, v in settings["attribution_options"].items()}
    if "occlusion_order" in settings:
        settings.setdefault("occlusion_search", "sweep")
    for unset in ("reference_model", "region_block"):  # left unset: as runs recorded before the setting existed
        if settings.get(unset, "") is None:
            del settings[unset]
    return settings
