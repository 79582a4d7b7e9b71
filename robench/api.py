"""robench's Python API: every capability of the command line as a function (docs/python-api.md).

    import robench
    run = robench.evaluate("zoo:standard", "sample", suites="inequality", limit=64)
    run.results, run.per_image, run.headline()

The CLI is a thin layer over these functions: ``robench evaluate`` turns its command line into the
arguments of :func:`evaluate` and calls it, so every check, the loading, the clean-up and the warnings
are the same from Python; a run made here writes (``run.save(dir)``) and reloads (:func:`load_run`)
exactly like ``robench evaluate --out DIR``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robench.data.imageset import ImageSet
from robench.errors import RobenchError, SettingError
from robench.models.wrapper import ModelInfo, RobenchModel
from robench.options import config_from_values, parse_size
from robench.run import Run, load_run
from robench.settings import ATTRIBUTION_OPTIONS, DEFAULT_SUITE, AttributionOptions, LoadOptions, load_options

ModelLike = str | Path | nn.Module
DataLike = str | Path | ImageSet | torch.Tensor | np.ndarray | torch.utils.data.Dataset
log = logging.getLogger(__name__)  # warnings as one "robench: warning:" line on stderr (robench.runner explains)


def wrap(module: nn.Module, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
         num_classes: int | None = None, input_size: tuple[int, int, int] | None = None, name: str | None = None,
         classes: list[str] | None = None, test_time_flip: bool = False) -> RobenchModel:
    """Wrap any ``nn.Module`` mapping normalised N×C×H×W images to N×K logits as a robench model.

    ``mean``/``std`` are per-channel values in [0, 1] units applied inside the wrapper (default: 0 and 1,
    one value that broadcasts to any channel count); robench feeds images in [0, 1]. ``test_time_flip``
    averages the logits of each image and its left-right mirror.
    """
    if isinstance(module, RobenchModel):
        return module
    if not isinstance(module, nn.Module):
        raise RobenchError(f"robench.wrap takes a torch.nn.Module, got {type(module).__name__}")
    mean_t, std_t = tuple(mean) if mean is not None else (0.0,), tuple(std) if std is not None else (1.0,)
    if len(mean_t) != len(std_t) or any(s <= 0 for s in std_t):
        raise RobenchError(f"mean and std need the same length and positive std; got {list(mean_t)}, {list(std_t)}")
    info = ModelInfo(name=name or type(module).__name__, arch=None, num_classes=num_classes,
                     input_size=tuple(input_size) if input_size else None,  # type: ignore[arg-type]
                     mean=mean_t, std=std_t, classes=classes, source="python", test_time_flip=test_time_flip)
    return RobenchModel(module.eval(), info)


def load_model(spec: ModelLike, options: LoadOptions | Mapping[str, Any] | None = None, /,
               **values: Any) -> RobenchModel:
    """A model from any ``--model`` form (path, ``timm:NAME``, ``zoo:NAME``) or an ``nn.Module`` (see :func:`wrap`).

    The options are :class:`robench.settings.LoadOptions`, the flags of ``robench evaluate`` under the same names:
    ``arch`` (``"pkg.module:callable"``), ``arch_path``, ``weights``, ``mean`` and ``std`` (``(0.485, 0.456, 0.406)``
    or ``"0.485,0.456,0.406"``), ``num_classes``, ``input_size`` (C, H, W), ``trust_checkpoint``,
    ``test_time_flip``; as keywords, as a ``LoadOptions`` or mapping (a run's ``meta["model_loading"]``), or
    both (keywords win). An ``nn.Module`` takes the normalisation, size, class count and flip.
    """
    opts = load_options(options, **values)
    if isinstance(spec, nn.Module):
        opts.validate()
        return wrap(spec, mean=opts.mean, std=opts.std, num_classes=opts.num_classes, input_size=opts.input_size,
                    test_time_flip=opts.test_time_flip)
    from robench.models.loading import load_model as load

    return load(str(spec), opts)


def load_data(spec: DataLike, labels: Sequence[int] | np.ndarray | torch.Tensor | None = None, *, split: str = "test",
              data_dir: str | None = None, limit: int | None = None, seed: int = 0,
              image_size: int | Sequence[int] | str | None = None, classes: list[str] | None = None,
              crop_pct: float | None = None) -> ImageSet:
    """Images from any ``--data`` form, or from memory.

    - a spec (``"sample"``, ``"cifar10"``, ``"npz:PATH"``, ``"imagefolder:PATH"``, ``"imagenet:PATH"``,
      ``"mnist:DIR"``);
    - a torch tensor N×C×H×W (float in [0, 1], or uint8) or a NumPy array N×H×W×C / N×H×W (uint8, or
      float in [0, 1]) with ``labels`` (N ints); floats are rounded to the 256 levels robench stores;
    - a torch ``Dataset`` of (image, label) pairs, images as C×H×W tensors in [0, 1] or PIL images.

    ``limit`` keeps a seeded random subset of that many images, in order (as ``--limit``).
    ``image_size`` (H, W; one size for a square, also as text: ``"224"``, ``"240,240"``) resizes the images of
    folder and archive specs: shorter side (bicubic) to max(H, W)/``crop_pct`` px, then a centre crop;
    ``crop_pct`` in (0, 1] is timm's pretrained_cfg value (default 0.875, most ImageNet models; 0.882 for
    EfficientNet-Lite1).
    """
    if isinstance(spec, (str, Path)):
        from robench.data import load_dataset

        return load_dataset(str(spec), split, data_dir, limit, seed, image_size=_image_size(image_size),
                            crop_pct=0.875 if crop_pct is None else crop_pct)
    if isinstance(spec, ImageSet):
        data = spec
    elif isinstance(spec, torch.utils.data.Dataset) and not isinstance(spec, torch.Tensor):
        data = _from_dataset(spec, classes)
    else:
        if labels is None:
            raise RobenchError("images given as an array need labels: robench.load_data(images, labels)")
        data = _from_arrays(spec, labels, classes)
    from robench.data.specs import limited

    return limited(data, limit, seed)


def _from_arrays(images: torch.Tensor | np.ndarray, labels: Any, classes: list[str] | None) -> ImageSet:
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise RobenchError(f"image tensors must be N×C×H×W, got shape {tuple(images.shape)}")
        images = images.detach().cpu().permute(0, 2, 3, 1).numpy()
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise RobenchError(f"image arrays must be N×H×W×C or N×H×W, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise RobenchError("float images must lie in [0, 1] (and hold no NaN)")
        array = np.rint(array * 255).astype(np.uint8)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64).reshape(-1)
    if len(y) != len(array):
        raise RobenchError(f"{len(array)} images but {len(y)} labels")
    if len(y) and y.min() < 0:
        raise RobenchError("labels must be non-negative class indices")
    names = classes or [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    identity = {"name": "in-memory", "description": f"{len(y)} in-memory images"}
    return ImageSet(np.ascontiguousarray(array), y, names, np.arange(len(y)), identity)


def _from_dataset(dataset: torch.utils.data.Dataset, classes: list[str] | None) -> ImageSet:
    images, labels = [], []
    for item in dataset:  # type: ignore[attr-defined]
        image, label = item[0], item[1]
        if not isinstance(image, torch.Tensor):  # a PIL image: H×W(×C) uint8 → C×H×W
            pixels = np.array(image, dtype=np.uint8)
            image = torch.from_numpy(pixels.reshape(*pixels.shape[:2], -1)).permute(2, 0, 1)
        images.append(image)
        labels.append(int(label))
    if not images:
        raise RobenchError("the dataset is empty")
    stacked = torch.stack([i if i.dtype == torch.uint8 else i.float() for i in images])
    return _from_arrays(stacked, labels, classes or list(getattr(dataset, "classes", []) or []) or None)


def _image_size(value: int | Sequence[int] | str | None) -> tuple[int, int] | None:
    """(H, W) from one size, (H, W) or their text; a SettingError for anything else (C,H,W included)."""
    if value is None:
        return None
    size = parse_size(value, "image_size") if isinstance(value, str) else (value,) if isinstance(value, int) \
        else tuple(int(v) for v in value)
    if len(size) not in (1, 2) or min(size) < 1:  # type: ignore[arg-type]
        raise SettingError("image_size", "takes H,W or one size, e.g. 224", sep=" ")
    return (size[0], size[-1])  # type: ignore[index]


def suite_configs(suites: str | Iterable[str], options: dict[str, Any],
                  label: Callable[[str], str] = str) -> dict[str, dict[str, Any]]:
    """``make_suites`` options for the named suites from config field values (e.g. ``attribution="smoothgrad"``,
    ``eps="2/255,8/255"`` or ``(2/255, 8/255)``, ``ig_steps=8``); a RobenchError names an unknown setting, a
    SettingError one of a suite that does not run. A setting several suites share (``attribution`` and the
    attribution options, ``ig_steps``, ... of inequality and sanity) goes to each selected one.
    ``attribution_options`` (an :class:`AttributionOptions`, or a mapping by name or by the methods' keywords,
    ``{"steps": 8}``, as robench took them before) joins the named options. ``label`` names the setting in parse
    errors (default: its name)."""
    from robench.settings import SUITE_CONFIGS, setting_owners
    from robench.suites import suite_names

    names = suites if isinstance(suites, str) else ",".join(suites)
    wanted = suite_names(names)
    owners = setting_owners()
    given: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if key not in owners:
            raise RobenchError(f"unknown evaluation option {key!r}; options: {', '.join(sorted(owners))}")
        selected = [suite for suite in owners[key] if suite in wanted]
        if not selected:
            raise SettingError(key, f"is an option of the {' and '.join(owners[key])} suite, which the suites run "
                                    f"({', '.join(wanted)}) do not include; add {owners[key][0]} to the suites or "
                                    "leave the option out", sep=" ")
        for suite in selected:
            fields = given.setdefault(suite, {})
            if key in ATTRIBUTION_OPTIONS:
                fields.setdefault("attribution_options", {})[key] = value
            elif key == "attribution_options":
                fields["attribution_options"] = {**AttributionOptions.of(value).record(),
                                                 **fields.get("attribution_options", {})}
            else:
                fields[key] = value
    return {suite: {"config": config_from_values(SUITE_CONFIGS[suite], fields, label)}
            for suite, fields in given.items()}


def evaluate(model: ModelLike, data: DataLike = "sample", suites: str | Iterable[str] = DEFAULT_SUITE, *,
             out: str | Path | None = None, seed: int = 0, batch_size: int | None = None, device: str = "auto",
             limit: int | None = None, overwrite: bool = False,
             model_options: LoadOptions | Mapping[str, Any] | None = None, data_options: dict[str, Any] | None = None,
             **suite_options: Any) -> Run:
    """Evaluate ``model`` on ``data`` with ``suites``; returns the :class:`Run` (results, per-image table, meta).

    ``model`` and ``data`` take every form of :func:`load_model` / :func:`load_data`, their options through
    ``model_options`` (:class:`robench.settings.LoadOptions`) / ``data_options`` (``split``, ``data_dir``,
    ``image_size``, ``crop_pct``; folder images are decoded at the model's size and crop unless these say
    otherwise). ``suite_options`` are the suites' settings (``attribution``, ``ig_steps``, ``ina_budgets``,
    ``eps``, ``autoattack``, ``corruptions``, ...; see ``robench.settings``). ``suites`` defaults to ``"clean"``
    (:data:`robench.settings.DEFAULT_SUITE`), as ``robench evaluate``'s ``--suite``: clean accuracy, the cheap
    check that a model and its data fit; name ``"inequality"`` (or more) for the rest. ``batch_size=None`` takes
    128 images up to 64×64 px and fewer above (16 at 224 px, :func:`robench.runner.default_batch_size`). With
    ``out`` the run is written there (and resumed there when interrupted).

    This is the one orchestrator: ``robench evaluate`` turns its command line into these arguments and calls
    it. In order: ``out`` is checked to be writable; the suites are built (an unknown setting, one of a suite
    that does not run, or a value out of range is an error naming it); the distributed context is read (under
    ``torchrun``: this rank and its device); the model and the data are loaded and the run starts. A user error
    before any batch has finished removes the ``out`` directories this call created. ``meta.json`` records how
    the model was loaded (``model_loading``: every LoadOptions field), which reports and ``robench.gini_check``
    use to rebuild the same model. Warnings (clean accuracy near chance, all-zero attribution maps) are logged
    (logger ``robench.api``; one ``robench: warning:`` line on stderr where logging is not configured, as in
    the CLI). Under ``torchrun``, ranks other than 0 return an empty Run.
    """
    from robench.distributed import DistContext
    from robench.io import check_writable
    from robench.runner import evaluate as run_evaluation
    from robench.suites import make_suites

    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        check_writable(out_dir)  # a read-only or full out fails now, not after loading the model and data
    names = suites if isinstance(suites, str) else ",".join(suites)
    built = make_suites(names, seed=seed, suite_options=suite_configs(names, suite_options))
    dist = DistContext.from_env(device)  # under torchrun: this rank, its device, the process group
    loading = load_options(model_options)
    net = load_model(model, loading)
    data_options = net.info.image_options(data_options) if isinstance(data, (str, Path)) else data_options
    dataset = load_data(data, limit=limit, seed=seed, **(data_options or {}))
    # as reports re-read them: the model and images given by their specs, the data and suite options as text
    options = {"model": str(model) if isinstance(model, (str, Path)) else None,
               "data": str(data) if isinstance(data, (str, Path)) else None, "suite": names, "seed": seed,
               "limit": limit, "batch_size": batch_size, "device": device, "out": str(out) if out else None,
               **{k: _as_text(v) for k, v in (data_options or {}).items()},
               **{k: _recorded(v) for k, v in suite_options.items()}}
    created = _first_missing(out_dir) if out_dir is not None else None
    try:
        run = run_evaluation(net, dataset, built, out_dir=out_dir, seed=seed, batch_size=batch_size,
                             device=dist.device, options=options, overwrite=overwrite, dist_ctx=dist,
                             model_loading=loading.record())
    except RobenchError:
        # a mistake found in the first batch leaves no output directory; finished batches stay for a resume
        if created is not None and dist.is_main and all(p.name == "signature" for p in created.rglob("*") if p.is_file()):
            shutil.rmtree(created, ignore_errors=True)
        raise
    if dist.is_main:
        for warning in _warnings(run, model, data, loading, len(dataset.classes)):
            log.warning(f"robench: warning: {warning}")
    return run


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (what a run would create)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def _warnings(run: Run, model: ModelLike, data: DataLike, loading: LoadOptions, classes: int) -> list[str]:
    """What a finished run should tell its user: clean accuracy near chance (with the command that probes the
    normalisation), most attribution maps all zero."""
    from robench.models.probe import near_chance

    warnings = []
    rows = run.results.query("suite == 'clean' and metric == 'accuracy' and variant == 'all'")["value"]
    if len(rows) and near_chance(float(rows.iloc[0]), classes):
        if isinstance(model, (str, Path)) and isinstance(data, (str, Path)):
            given = "".join(f" {flag} {value}" for flag, value in (("--arch", loading.arch),
                                                                    ("--arch-path", loading.arch_path)) if value)
            probe = f"try robench probe-normalization --model {model}{given} --data {data}"
        else:
            probe = "robench.models.probe.probe_normalization tries the usual ones"
        warnings.append(f"clean accuracy {float(rows.iloc[0]):.3f} is near chance ({1 / classes:.3f}); the input "
                        f"normalisation may be wrong: {probe}")
    if (zero_maps := run.all_zero_warning()) is not None:
        warnings.append(zero_maps)
    return warnings


def _as_text(value: Any) -> Any:
    """A sequence option in its command-line form (``(0.5, 0.5)`` → ``"0.5,0.5"``), as reports re-read it."""
    return ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else value


def _recorded(value: Any) -> Any:
    """A suite option as meta.json's ``options`` holds it (tuples as lists, attribution options by name)."""
    if isinstance(value, AttributionOptions):
        return value.record()
    return list(value) if isinstance(value, tuple) else value


def compare(runs: Sequence[Run | str | Path], out: str | Path | None = None, *, title: str | None = None,
            examples: bool = True) -> Any:
    """Compare evaluated runs (Run objects or run directories): the comparison table as a DataFrame, and with
    ``out`` the full report there (report.md, report.html, comparison.csv, rankings.csv, plots), as
    ``robench compare``; the rankings table alone is :func:`rankings`."""
    from robench.reports.compare import comparison_table
    from robench.reports.report import build_report

    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    if out is not None:
        build_report(loaded, out, title=title, examples=examples)  # the runs loaded once, here
    return comparison_table(loaded)


def rankings(runs: Sequence[Run | str | Path]) -> Any:
    """The models ranked by each attribution measure of each attribution method on the common-correct images,
    with Kendall's τ against the headline ranking (pixel Gini of the first method): the report's rankings.csv."""
    from robench.reports.compare import ranking_table

    return ranking_table([r if isinstance(r, Run) else load_run(r) for r in runs])


def paired(a: Run | str | Path, b: Run | str | Path, columns: Sequence[str] | None = None, seed: int = 0) -> Any:
    """Model ``a`` against model ``b`` on the images both classify correctly, one row per error column (INA, RN,
    occlusion, PGD, AutoAttack, corruptions): both error rates, their difference with a 95% paired-bootstrap
    interval, the discordant images and McNemar's exact p (:func:`robench.reports.compare.paired_errors`)."""
    from robench.reports.compare import paired_errors

    run_a, run_b = (r if isinstance(r, Run) else load_run(r) for r in (a, b))
    return paired_errors(run_a, run_b, columns=columns, seed=seed)


def resummarize(run: Run | str | Path, *, save: bool = True) -> Run:
    """A finished run's results recomputed by this version of robench from its per-image table and recorded
    settings alone (no model, no images): rows and intervals added to the suites since the run was made appear,
    the values already there stay. With ``save`` (and a run on disk) its results.csv is rewritten atomically;
    per_image.csv.gz and meta.json are left as they are."""
    from robench.run import write_results_table
    from robench.suites import restore_suites, summary_table

    loaded = run if isinstance(run, Run) else load_run(run)
    order = list(dict.fromkeys(loaded.results["suite"]))  # as the run ordered them; meta.json sorts them by name
    suites = sorted(restore_suites(loaded.meta), key=lambda s: order.index(s.name) if s.name in order else len(order))
    results = summary_table(suites, loaded.per_image, loaded.meta["dataset"].get("classes") or [])
    if save and loaded.path is not None:
        write_results_table(loaded.path, results)
    return Run(loaded.path, loaded.meta, results, loaded.per_image)


def report(run: Run | str | Path, out: str | Path | None = None, *, title: str | None = None,
           examples: bool = True) -> Any:
    """One model's report (:func:`compare` with one run)."""
    return compare([run], out, title=title, examples=examples)


def train(**config: Any) -> RobenchModel:
    """Train a model (``robench train``): keyword arguments are :class:`robench.train.TrainConfig` fields;
    ``preset="cifar10-fast"`` fills in a preset's settings for the method (given fields win)."""
    from robench.train.config import make_config
    from robench.train.trainer import train as run_training

    return run_training(make_config(config.pop("preset", None), **config))
