"""The ``robench`` command line: evaluate, compare, report, leaderboard, train, list.

User mistakes raise :class:`RobenchError`; :func:`main` prints them as one line on stderr and
exits with status 2, without a traceback.
"""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from robench.cli_options import dataclass_options, with_options
from robench.errors import RobenchError, SettingError
from robench.io import check_writable
from robench.options import flag, parse_floats
from robench.settings import (
    DEFAULT_SUITE,
    LOAD_OPTIONS,
    SUITE_CONFIGS,
    AdversarialConfig,
    AttributionOptions,
    CorruptionsConfig,
    InequalityConfig,
    LoadOptions,
    SanityConfig,
    setting_owners,
)
from robench.train.config import TrainConfig

# typer ≥ 0.20 ships its own copy of click: catch the exceptions of whichever one parses the command line.
_CLICK_MODULES = {click, getattr(typer, "_click", click)}
USAGE_ERRORS = tuple({m.ClickException for m in _CLICK_MODULES})
ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Measure how image classifiers fail when a few important pixels are perturbed or hidden.")
console = Console(width=None if sys.stdout.isatty() else 140)
ZOO_DEFAULT = "zoo:standard"
#: The suites, named without importing them (torch): the default (clean accuracy) and every configurable one.
SUITE_HELP = (f"Suite name(s), comma-separated: {', '.join(dict.fromkeys((DEFAULT_SUITE, *SUITE_CONFIGS)))} or full "
              "(all but sanity; robench list suites describes them).")


#: Options that several commands take, declared once (the model-loading options are LoadOptions' fields).
DATA_DIR = typer.Option(None, help="Where to look for datasets (default $ROBENCH_DATA).")
SPLIT = typer.Option("test", help="Dataset split: test, train or val.")


def evaluate(
    ctx: typer.Context,
    model: str = typer.Option(ZOO_DEFAULT, "--model", "-m", help="Checkpoint path, timm:NAME, or zoo:NAME (bundled)."),
    data: str = typer.Option("sample", "--data", "-d", help="cifar10, imagefolder:PATH, imagenet:PATH, mnist:DIR, npz:PATH or sample (bundled)."),
    suite: str = typer.Option(DEFAULT_SUITE, "--suite", "-s", help=SUITE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for results.csv, per_image.csv.gz, meta.json."),
    data_dir: Optional[str] = DATA_DIR,
    split: str = SPLIT,
    limit: Optional[int] = typer.Option(None, help="Evaluate a seeded random subset of this many images."),
    image_size: Optional[str] = typer.Option(None, help="Resize image-folder images to H,W (shorter side/crop, centre "
                                             "crop; default: the model's input size)."),
    crop_pct: Optional[float] = typer.Option(None, help="Centre-crop fraction for resized images (default: the model's, "
                                             "else 0.875)."),
    seed: int = typer.Option(0, min=0, help="Seed for subsets and every random draw."),
    batch_size: Optional[int] = typer.Option(None, help="Images per batch (default 128 up to 64×64 px, 16 at 224 px)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    overwrite: bool = typer.Option(False, help="Replace results of a different run in --out."),
    **settings: object,
) -> None:
    """Evaluate a model with one or more suites and print the results table.

    The same as robench.evaluate(...) in Python, option for option. After the model and data options come
    each suite's settings, marked with the suite(s) they belong to; docs/metrics.md and docs/attacks.md
    define them.
    """
    from robench.api import evaluate as run_evaluation

    loading = {k: settings[k] for k in LOAD_OPTIONS}
    typed = {k: settings[k] for k in settings if k not in LOAD_OPTIONS and _given(ctx, k)}  # suite settings typed
    result = run_evaluation(model, data, suite, out=out, seed=seed, batch_size=batch_size, device=device, limit=limit,
                            overwrite=overwrite, model_options=loading,
                            data_options={"split": split, "data_dir": data_dir, "image_size": image_size,
                                          "crop_pct": crop_pct}, **typed)
    if result.per_image.empty:  # a rank other than 0 of a distributed run: rank 0 prints
        return
    description = result.meta["dataset"].get("description", data)
    print_results(result.results, title=f"{result.name} on {description} ({len(result.per_image)} images)")
    if out:
        console.print(f"results written to {out}/")


# Each option is declared once: the model-loading options in LoadOptions, the suites' in their settings
# dataclasses, the attribution options in AttributionOptions (robench.settings).
def _owners(name: str) -> str:
    return ", ".join(setting_owners()[name])


app.command("evaluate")(with_options(evaluate, settings=[
    *dataclass_options(LoadOptions),
    *dataclass_options(AttributionOptions, tag=_owners),
    *dataclass_options(InequalityConfig, skip=("attribution_options",), tag=_owners),
    *dataclass_options(AdversarialConfig, tag=_owners),
    *dataclass_options(CorruptionsConfig, tag=_owners),
    *dataclass_options(SanityConfig, skip=("attribution", "attribution_options"), tag=_owners)]))


def probe_normalization_command(
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint path, timm:NAME, or zoo:NAME."),
    data: str = typer.Option("sample", "--data", "-d", help="Labelled images the model should classify."),
    mean: Optional[str] = typer.Option(None, help="Also try this mean (with --std)."),
    std: Optional[str] = typer.Option(None, help="Also try this std (with --mean)."),
    data_dir: Optional[str] = DATA_DIR,
    split: str = SPLIT,
    limit: int = typer.Option(300, help="Probe on the first N images."),
    **loading: object,
) -> None:
    """Clean accuracy under candidate input normalisations, to find a checkpoint's undocumented mean/std."""
    from robench.api import load_model
    from robench.data import load_dataset
    from robench.models.probe import CANDIDATES, probe_normalization

    candidates = dict(CANDIDATES)
    given_mean, given_std = parse_floats(mean, "mean"), parse_floats(std, "std")
    if (given_mean is None) != (given_std is None):
        raise RobenchError("--mean and --std go together: pass both to add a candidate")
    if given_mean is not None and given_std is not None:
        candidates["given"] = (given_mean, given_std)
    net = load_model(model, **loading)
    dataset = load_dataset(data, split, data_dir)
    table = probe_normalization(net, dataset, candidates, limit=limit)
    view = Table(title=f"{net.info.name}: clean accuracy on the first {table['n'].iloc[0]} images of {data}")
    for col in ("candidate", "mean", "std", "accuracy", "loss"):
        view.add_column(col, justify="right" if col in ("accuracy", "loss") else "left")
    for row in table.itertuples(index=False):
        view.add_row(row.candidate, row.mean, row.std, f"{row.accuracy:.3f}", f"{row.loss:.3f}")
    console.print(view)
    best = table.iloc[0]
    console.print(f"best: {best['candidate']} (pass --mean {best['mean']} --std {best['std']}); a setting only "
                  "a few images ahead of the next is not established: compare the loss, or probe more images")


# --mean/--std here add candidates; the other model-loading options are LoadOptions', as for evaluate.
app.command("probe-normalization")(with_options(probe_normalization_command,
                                                settings=dataclass_options(LoadOptions, skip=("mean", "std"))))


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def print_results(results, title: str) -> None:  # type: ignore[no-untyped-def]
    """Print the headline rows of a results table; results.csv holds every row.

    Hidden here: Lorenz points, budget counts (k), standard deviations, Gini over all images, and per-class
    accuracy beyond 20 classes (ImageNet's 1,000 would bury the rest).
    """
    per_class = results["test"].eq("accuracy") & results["variant"].eq("class")
    shown = results[~results["test"].eq("lorenz") & ~results["metric"].isin(["k", "std", "all_zero_maps"])
                     & ~(results["test"].eq("gini") & results["param"].eq("all"))
                     & ~(per_class & (per_class.sum() > 20))]
    table = Table(title=title)
    for col in ("suite", "test", "variant", "param", "metric", "value", "95% CI", "n"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left", overflow="fold")
    for row in shown.itertuples(index=False):
        ci = "" if row.ci_low != row.ci_low else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        table.add_row(row.suite, row.test, row.variant, str(row.param), row.metric, f"{row.value:.4f}", ci, str(row.n))
    console.print(table)


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Run directories written by robench evaluate (same images)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for report.md, report.html, comparison.csv, plots/."),
    title: Optional[str] = typer.Option(None, help="Report title (default: the models' names)."),
    examples: bool = typer.Option(True, help="Recompute a few attribution maps from the checkpoints for the example grid."),
) -> None:
    """Compare evaluated models on the images all of them classify correctly; write Markdown, HTML, CSV and plots."""
    _write_report(runs, out, title, examples)


@app.command()
def paired(
    run_a: Path = typer.Argument(..., help="A run directory (model A)."),
    run_b: Path = typer.Argument(..., help="A run directory of the same images (model B)."),
    column: Optional[list[str]] = typer.Option(None, "--column", help="A per-image error column (repeatable; default all)."),
    seed: int = typer.Option(0, help="The bootstrap's seed."),
) -> None:
    """Model A against model B on the images both classify correctly: error rates, the difference with a 95% paired
    bootstrap interval, and McNemar's exact p, one row per error column."""
    from robench.api import paired as paired_table

    table = paired_table(run_a, run_b, columns=column or None, seed=seed)
    out = Table(title=f"{run_a} (A) against {run_b} (B), on the images both classify correctly")
    for col in ("column", "images", "error A", "error B", "A − B [95% CI]", "A only", "B only", "McNemar p"):
        out.add_column(col, justify="left" if col == "column" else "right")
    for row in table.itertuples(index=False):
        if row.images == 0:
            out.add_row(row.column, "0", *["–"] * 6)
            continue
        counts = ["–", "–", "–"] if row.p_mcnemar != row.p_mcnemar else [str(row.fooled_a_only), str(row.fooled_b_only),
                                                                          f"{row.p_mcnemar:.3g}"]
        out.add_row(row.column, str(row.images), f"{row.error_a:.3f}", f"{row.error_b:.3f}",
                    f"{row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]", *counts)
    console.print(out)


@app.command()
def resummarize(runs: list[Path] = typer.Argument(..., help="Finished run directories.")) -> None:
    """Rewrite each run's results.csv from its per-image table and recorded settings with this robench (rows and
    intervals added since the run was made); no model or images needed."""
    from robench.api import resummarize as resummarize_run

    for run in runs:
        again = resummarize_run(run)
        console.print(f"{run}/results.csv rewritten: {len(again.results)} rows")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by robench evaluate."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report directory (default RUN_DIR/report)."),
    title: Optional[str] = typer.Option(None, help="Report title (default: the model's name)."),
    examples: bool = typer.Option(True, help="Recompute a few attribution maps from the checkpoint for the example grid."),
) -> None:
    """Report on one evaluated model: Markdown, HTML, CSV and plots."""
    _write_report([run_dir], out or run_dir / "report", title, examples)


def _write_report(runs: list[Path], out: Path, title: str | None, examples: bool) -> None:
    from robench.reports.report import build_report

    written = build_report(runs, out, title=title, examples=examples)
    for note in [*written.notes, *written.agreement]:
        console.print(note)
    console.print(f"report written to {written.html} (and report.md, comparison.csv, "
                  f"{sum(len(p) for p in written.plots.values())} plot files)")


def train(ctx: typer.Context, preset: Optional[str], **settings: object) -> None:
    """Train a model and write a robench checkpoint with its training log."""
    from robench.train.config import preset as preset_settings
    from robench.train.trainer import train as run_training

    out = Path(str(settings["out"]))
    check_writable(out.parent)  # a read-only or full output directory fails before any training
    if preset:
        for key, value in preset_settings(preset, str(settings["method"])).items():
            source = ctx.get_parameter_source(key)
            if source is None or source.name != "COMMANDLINE":
                settings[key] = value
    model = run_training(TrainConfig(**settings))  # type: ignore[arg-type]
    log = model.info.training.get("log", [])
    if log:  # the selected checkpoint's log ends at the selected epoch
        robust = f", PGD accuracy {log[-1]['test_pgd_acc']:.4f}" if "test_pgd_acc" in log[-1] else ""
        console.print(f"trained {model.info.name}: selected epoch {model.info.training.get('selected_epoch')} "
                      f"(test accuracy {log[-1]['test_acc']:.4f}{robust}) → {out}; per-epoch log in {out}.log.csv")


# Every option of `robench train` is a TrainConfig field, declared once there (robench.cli_options).
app.command("train")(with_options(
    train,
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str], default=typer.Option(
        None, help="Named settings (cifar10-fast, cifar10-reference, cifar10-cpu); explicit options win.")),
    settings=dataclass_options(TrainConfig)))


leaderboard_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="A CSV leaderboard of finished runs (docs/leaderboard.md).")
app.add_typer(leaderboard_app, name="leaderboard",
              help="Add finished runs to a CSV leaderboard, show it ranked per evaluation protocol, remove rows.")
LEADERBOARD_FILE_HELP = "Leaderboard CSV (default reports/leaderboard.csv)."


@leaderboard_app.command("add")
def leaderboard_add(
    run_dir: Path = typer.Argument(..., help="A finished run directory (robench evaluate --out DIR)."),
    name: Optional[str] = typer.Option(None, help="Row name (default: the model's name); an existing row of this name is replaced."),
    file: Optional[Path] = typer.Option(None, "--file", help=LEADERBOARD_FILE_HELP),
    card: Optional[Path] = typer.Option(None, help="JSON model card: origin (robench or third-party), source, licence, "
                                                   "training_stated, eps_stated, stated_clean_accuracy, "
                                                   "stated_robust_accuracy, stated_meaning, method."),
    autoattack: Optional[Path] = typer.Option(None, help="A separate run of the same checkpoint with AutoAttack on "
                                                         "some of RUN_DIR's images: the row takes its accuracy."),
) -> None:
    """Add a run's headline numbers as one row (replacing a row of the same name); a robench-trained row's
    checkpoint must exist."""
    from robench.reports import leaderboard

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for message in leaderboard.add_run(run_dir, name=name, path=file or leaderboard.DEFAULT_PATH,
                                       card=_read_card(card) if card else None, autoattack=autoattack):
        (err if message.startswith("warning:") else console).print(message, markup=False, highlight=False,
                                                                     soft_wrap=True)


def _read_card(path: Path) -> dict[str, object]:
    """A ``--card`` JSON file as a mapping; one-line errors for a missing or malformed file."""
    import json

    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RobenchError(f"cannot read model card {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RobenchError(f"model card {path} is not valid JSON ({exc})") from None
    if not isinstance(card, dict):
        raise RobenchError(f"model card {path} must be a JSON object")
    return card


@leaderboard_app.command("show")
def leaderboard_show(
    sort: Optional[str] = typer.Option(None, help="Rank by this column (default robust_accuracy: AutoAttack's, else "
                                                  "PGD's; gini_* and *_error rank ascending)."),
    fmt: str = typer.Option("table", "--format", help="table, csv, markdown or html."),
    file: Optional[Path] = typer.Option(None, "--file", help=LEADERBOARD_FILE_HELP),
    origin: Optional[str] = typer.Option(None, help="Only rows of this origin: robench or third-party."),
) -> None:
    """Print the leaderboard, ranked within each evaluation protocol (dataset, images, attack), all origins together."""
    from robench.reports import leaderboard

    text, notes = leaderboard.show_parts(file or leaderboard.DEFAULT_PATH, sort=sort, fmt=fmt, origin=origin)
    if fmt == "csv":  # stdout stays parseable CSV; the notes go to stderr
        sys.stdout.write(text)
        sys.stderr.write("".join(note + "\n" for note in notes))
    else:
        sys.stdout.write(leaderboard.with_notes(text, notes, fmt))


@leaderboard_app.command("html")
def leaderboard_html(
    out: Path = typer.Option(..., help="Directory for index.html and models/*.html (created)."),
    file: Optional[Path] = typer.Option(None, "--file", help=LEADERBOARD_FILE_HELP),
) -> None:
    """Write a static web leaderboard (sortable, filterable tables, a card per model) that opens from file://."""
    from robench.reports import leaderboard
    from robench.reports.leaderboard_site import write_site

    index = write_site(file or leaderboard.DEFAULT_PATH, out)
    console.print(f"wrote {index}", markup=False, highlight=False, soft_wrap=True)


@leaderboard_app.command("remove")
def leaderboard_remove(
    name: str = typer.Argument(..., help="Name of the row to remove."),
    file: Optional[Path] = typer.Option(None, "--file", help=LEADERBOARD_FILE_HELP),
) -> None:
    """Remove one row by name."""
    from robench.reports import leaderboard

    console.print(leaderboard.remove(name, file or leaderboard.DEFAULT_PATH), markup=False, highlight=False,
                  soft_wrap=True)


@app.command("list")
def list_things(what: str = typer.Argument("all", help="archs, attributions, suites, datasets, methods, zoo or all.")) -> None:
    """List robench's architectures, attributions, suites, dataset kinds, training methods and bundled models."""
    from robench.attribution import ATTRIBUTIONS
    from robench.data import dataset_usages
    from robench.models.architecture_spec import list_models
    from robench.suites import SUITES
    from robench.train.methods import METHODS
    from robench.zoo import zoo_names

    groups = {"archs": list_models(), "attributions": list(ATTRIBUTIONS), "suites": [*SUITES, "full"],
              "datasets": dataset_usages(), "methods": list(METHODS), "zoo": [f"zoo:{n}" for n in zoo_names()]}
    if what != "all" and what not in groups:
        raise RobenchError(f"nothing called {what!r} to list; choose from {', '.join(groups)} or all")
    for key, names in groups.items():
        if what in ("all", key):
            console.print(f"[bold]{key}[/bold]: {', '.join(names)}")


class _WarningLines(logging.Handler):
    """The library's logged warnings (``robench: warning: ...`` from robench.api, robench.runner, ...) as lines on
    the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        Console(stderr=True, highlight=False, soft_wrap=True).print(record.getMessage(), markup=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; user errors become one line on stderr and exit status 2."""
    logger, handler = logging.getLogger("robench"), _WarningLines(logging.WARNING)
    logger.addHandler(handler)
    try:
        return _main(argv)
    finally:
        logger.removeHandler(handler)


def _main(argv: list[str] | None) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    interrupted = "robench: interrupted; run the same command again to resume"
    try:
        code = app(args=argv, standalone_mode=False)  # typer returns 130 for Ctrl-C in this mode
    except SettingError as exc:  # named by its field in the library, by its flag here
        err.print(f"robench: error: {exc.named(flag(exc.field))}", markup=False)
        return 2
    except RobenchError as exc:
        err.print(f"robench: error: {exc}", markup=False)
        return 2
    except ABORTS:
        code = 130
    except USAGE_ERRORS as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and getattr(exc, "ctx", None) is not None:
            console.print(exc.ctx.get_help())  # a bare `robench` or `robench CMD`: show the help
            return 2
        err.print(f"robench: error: {exc.format_message()} (see --help)", markup=False)
        return 2
    if code == 130:
        err.print(interrupted, markup=False)
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
