"""Comparison reports: Markdown, HTML, the comparison CSV and the plots.

:func:`build_report` reads the run directories, checks they were evaluated on the same images,
and writes into ``out_dir``::

    report.md         the tables and links to the plots
    report.html       the same as a web page; its images are the files in plots/ (relative links, so the
                      page opens from disk; share the directory, not the page alone)
    comparison.csv    the comparison table (scope, measure, test, param, one column per model)
    inputs.json       the runs, title and examples setting: rebuild_report(out_dir) writes the report again
    rankings.csv      several runs: the models ranked by each attribution measure, Kendall's τ per ranking
    plots/NAME.png    each plot once (robench.reports.plots.PLOT_FORMATS)

Every file is written atomically; a failure leaves the previous report in place.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from robench._version import __version__
from robench.errors import RobenchError
from robench.io import check_writable, write_atomic, write_text_atomic
from robench.reports.compare import common_correct, comparison_table, model_labels, ranking_notes, ranking_table
from robench.reports.plots import corruption_heatmaps, gini_and_lorenz, noise_curves, occlusion_curves, save_figure
from robench.run import Run, headline, load_run
from robench.schema import FLOAT_FORMAT, gini_column, occlusion_column

PLOT_CAPTIONS = {
    "noise": "Inductive noise vs random noise: error rate against budget on the common-correct images.",
    "occlusion": "Inductive occlusion: cumulative success against the search's outer axis, per fill value.",
    "gini": "Pixel Gini distribution and mean Lorenz curve of |attribution|.",
    "corruptions": "Corruption error rate per corruption and severity.",
    "examples": "Example images, attribution maps with the inductive-noise entries, and the occlusion that fooled.",
}


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: Path
    markdown: Path
    html: Path
    table: Path
    plots: dict[str, list[Path]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rankings: Path | None = None  # rankings.csv, when several runs are compared
    inputs: Path = Path("inputs.json")  # the runs, title and examples setting (rebuild_report), set by build_report
    agreement: list[str] = field(default_factory=list)  # where the rankings by attribution measure disagree
    summary: tuple[pd.DataFrame, str] = (pd.DataFrame(), "")  # the headline table and sentence (_summary)
    key_plot: str | None = None  # the plot shown under the summary: inductive vs random noise, else the Gini


def build_report(run_dirs: Sequence[Run | str | Path], out_dir: str | Path, title: str | None = None,
                 examples: bool = True) -> Report:
    """Compare the runs in ``run_dirs`` (one run: a single-model report) and write the report into ``out_dir``;
    a :class:`Run` already loaded (:func:`robench.compare`) is taken as it is, a directory is loaded."""
    runs = [p if isinstance(p, Run) else load_run(p) for p in run_dirs]
    table = comparison_table(runs)
    labels = model_labels(runs)
    mask = common_correct(runs)
    out = Path(out_dir)
    check_writable(out, "the report")  # before plotting: an --out that cannot become a directory, or a read-only one
    plots_dir = out / "plots"
    report = Report(out, out / "report.md", out / "report.html", out / "comparison.csv", inputs=out / "inputs.json")
    report.notes += [f"warning: {w}" for w in (r.all_zero_warning() for r in runs) if w]
    sanity = _sanity(runs, labels)
    report.notes += [f"warning: {line}" for flag, line in sanity[1] if flag == 1]
    figures = {"noise": noise_curves(runs, labels, mask), "occlusion": occlusion_curves(runs, labels, mask),
               "gini": gini_and_lorenz(runs, labels, mask), "corruptions": corruption_heatmaps(runs, labels)}
    if examples:
        from robench.reports.examples import example_grid

        figures["examples"], note = example_grid(runs, labels, mask)
        report.notes.append(note)
    for name, fig in figures.items():
        if fig is not None:
            report.plots[name] = save_figure(fig, plots_dir, name)
    write_atomic(report.table, lambda tmp: table.to_csv(tmp, index=False, float_format=FLOAT_FORMAT))
    rankings = ranking_table(runs) if len(runs) > 1 else None
    if rankings is not None:
        report.rankings = out / "rankings.csv"
        report.agreement = ranking_notes(rankings, labels)
        write_atomic(report.rankings, lambda tmp: rankings.to_csv(tmp, index=False, float_format=FLOAT_FORMAT))
    report.summary = _summary(runs, labels, table, mask)
    report.key_plot = next((name for name in KEY_PLOTS if name in report.plots), None)
    title = title or ("robench comparison: " + ", ".join(labels) if len(runs) > 1 else f"robench report: {labels[0]}")
    overview = _overview(runs, labels)
    write_text_atomic(report.markdown, _markdown(title, runs, overview, table, rankings, mask, report, sanity))
    write_text_atomic(report.html, _html(title, runs, overview, table, rankings, mask, report, sanity))
    inputs = {"runs": [str(r.path) if r.path is not None else None for r in runs], "title": title,
              "examples": examples}  # what rebuild_report needs to write this report again
    write_text_atomic(report.inputs, json.dumps(inputs, indent=1) + "\n")
    return report


def rebuild_report(out_dir: str | Path) -> Report:
    """Write the report in ``out_dir`` again from the runs, title and examples setting it recorded (``inputs.json``):
    after a change of robench's report format. A RobenchError when it has no record or a run was never saved."""
    out = Path(out_dir)
    try:
        inputs = json.loads((out / "inputs.json").read_text())
    except (OSError, ValueError) as e:
        raise RobenchError(f"{out} has no readable inputs.json (written by reports since robench 0.1): {e}") from None
    if None in inputs["runs"]:
        raise RobenchError(f"{out} compares a run that was never saved; it cannot be rebuilt")
    return build_report(inputs["runs"], out, title=inputs["title"], examples=inputs["examples"])


# ---------------------------------------------------------------------------------------------- the headline

#: (test of the comparison table's common-correct rows, its param or None for the largest budget, column name)
SUMMARY_MEASURES = (("gini", gini_column("pixel").setting, "pixel Gini"), ("inductive_noise", None, "inductive noise error"),
                    ("inductive_occlusion", occlusion_column(0.5, "fooled").setting, "occlusion error (grey)"),
                    ("random_noise", None, "random noise error"))
#: The plot shown under the summary, the first of these the report has.
KEY_PLOTS = ("noise", "gini", "occlusion")
#: The sentence's superlatives: the model with the largest value of each column.
SUPERLATIVES = (("pixel Gini", "most unequal"), ("robust accuracy", "most robust"),
                ("inductive noise error", "most fooled by inductive noise"))


def _summary(runs: Sequence[Run], labels: Sequence[str], table: pd.DataFrame,
             mask: np.ndarray) -> tuple[pd.DataFrame, str]:
    """The report's headline: a row per model (accuracies on all images; Gini and attack errors on the
    common-correct images, budgets the largest run) and one sentence naming the most unequal, the most robust and
    the most fooled model, with the denominators spelled out."""
    heads = [headline(r) for r in runs]
    columns: dict[str, list[float]] = {"clean accuracy": [h["clean_accuracy"] for h in heads]}
    aa = [h["autoattack_accuracy"] for h in heads]
    if any(not np.isnan(h["pgd_accuracy"]) for h in heads):
        columns["robust accuracy"] = [a if not np.isnan(a) else h["pgd_accuracy"] for a, h in zip(aa, heads)]
    common = table[table["scope"] == "common"]
    units = [f"accuracies on all {runs[0].meta['n_images']} images"]
    if "robust accuracy" in columns:
        eps = max(h["pgd_eps"] for h in heads if not np.isnan(h["pgd_eps"]))
        attack = "AutoAttack" if all(not np.isnan(a) for a in aa) else \
            "PGD" if all(np.isnan(a) for a in aa) else "AutoAttack where run, else PGD"
        units[0] += f" (robust: {attack} at ε = {eps * 255:.3g}/255)"
    units.append(f"the rest on the {int(mask.sum())} common-correct images")
    for test, param, name in SUMMARY_MEASURES:
        rows = common[common["test"] == test]
        rows = rows[rows["param"].astype(str) == param] if param else rows
        if len(rows):
            row = rows.iloc[0] if param else rows.loc[rows["param"].astype(float).idxmax()]
            columns[name] = [float(row[label]) for label in labels]
            if param is None:
                units.append(f"{name.removesuffix(' error')} on {float(row['param']) * 100:.3g}% of the entries")
    frame = pd.DataFrame(columns, index=pd.Index(list(labels), name="model"))
    said = [f"{phrase}: **{frame[name].idxmax()}** ({name} {frame[name].max():.3f})"
            for name, phrase in SUPERLATIVES if len(runs) > 1 and name in frame and frame[name].notna().any()]
    sentence = "; ".join(said)
    sentence = sentence[:1].upper() + sentence[1:] + ". " if said else ""
    return frame, sentence + "Columns: " + "; ".join(units) + "."


def _overview(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    rows = []
    for run, label in zip(runs, labels):
        h = headline(run)
        rows.append({"model": label, "arch": h["arch"], "method": h["method"],
                     "training": _training_text(json.loads(h["method_params"])),
                     "clean accuracy": f"{h['clean_accuracy']:.3f}", "checkpoint sha256": h["checkpoint_sha256"][:12] if h["checkpoint_sha256"] else "none (in memory)",
                     "run": str(run.path) if run.path is not None else "not saved (in memory)"})
    return pd.DataFrame(rows)


def _training_text(params: dict[str, object]) -> str:
    """{"eps": 0.0313, "lam": 1.0, ...} → 'eps=8/255, lam=1, ...' (radii in /255 units)."""
    parts = []
    for key, value in params.items():
        if key in ("eps", "step_size") and isinstance(value, float):
            value = f"{value * 255:.3g}/255"
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


Sanity = tuple[pd.DataFrame | None, list[tuple[float, str]]]


def _sanity(runs: Sequence[Run], labels: Sequence[str]) -> Sanity:
    """The sanity suite's table (mean Spearman and SSIM per randomisation step, two columns per model) and
    each run's verdict (flag, line); (None, []) when no run has the suite."""
    columns: dict[str, dict[str, float]] = {}
    for run, label in zip(runs, labels):
        for metric in ("spearman", "ssim"):
            rows = run.rows("mprt", metric)
            if len(rows):
                columns[f"{label} {metric}"] = dict(zip(rows["param"], rows["value"]))
    verdicts = [v for v in (run.mprt_verdict() for run in runs) if v is not None]
    if not columns:
        return None, verdicts
    steps = list(dict.fromkeys(step for values in columns.values() for step in values))
    table = pd.DataFrame({name: [values.get(step, np.nan) for step in steps] for name, values in columns.items()},
                         index=pd.Index(steps, name="layers randomised"))
    return table.map(lambda v: "–" if pd.isna(v) else f"{v:.3f}"), verdicts


def _display(table: pd.DataFrame, scope: str) -> pd.DataFrame:
    shown = table[table["scope"] == scope].drop(columns=["scope", "test", "param"]).set_index("measure")
    return shown.map(lambda v: "–" if pd.isna(v) else (f"{v:.0f}" if float(v).is_integer() and v > 1 else f"{v:.3f}"))


RANKINGS_INTRO = ("Models ranked by each attribution measure on the common-correct images, 1 = the most unequal "
                  "maps (a higher Gini or top-k mass, a lower entropy or participation ratio); Kendall's τ compares "
                  "each ranking with the first one.")


def _display_rankings(rankings: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    shown = rankings[list(labels)].map(lambda v: "–" if pd.isna(v) else f"{v:.0f}")
    shown["Kendall τ"] = rankings["kendall_tau"].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}")
    return shown.set_axis(rankings["measure"] + " (" + rankings["attribution"] + ")").rename_axis("ranking by")


def _intro(runs: Sequence[Run], mask: np.ndarray) -> str:
    data = runs[0].meta["dataset"]
    return (f"{len(runs)} model(s) evaluated on {runs[0].meta['n_images']} images of "
            f"{data.get('description') or data.get('name')} ({data.get('split')}, seed {runs[0].meta['seed']}); "
            f"{int(mask.sum())} are classified correctly by every model (the **common-correct** set). "
            f"Accuracies and error rates are fractions; attacks run on correctly classified images. "
            f"Written by robench {__version__}.")


OWN_TITLE = "Each model on its own images"
OWN_INTRO = ("Accuracies (clean, PGD, FGSM) on all the images; Gini and attack error rates on the images this model "
             "classifies correctly, which differ from model to model (the common-correct table above compares like "
             "with like).")
SANITY_TITLE = "Attribution sanity check (model-parameter randomisation)"
SANITY_INTRO = ("Mean similarity of each image's |attribution| on the model and on a copy whose layers are re-initialised "
                "from the output down (all images); an attribution that explains the model falls towards 0.")


def _markdown(title: str, runs: Sequence[Run], overview: pd.DataFrame, table: pd.DataFrame,
              rankings: pd.DataFrame | None, mask: np.ndarray, report: Report, sanity: Sanity) -> str:
    summary, sentence = report.summary
    parts = [f"# {title}", "", "## Summary", "", sentence, "", summary.to_markdown(floatfmt=".3f"), ""]
    if report.key_plot:
        parts += [f"![{report.key_plot}](plots/{report.plots[report.key_plot][0].name})", ""]
    parts += [_intro(runs, mask), "", "## Models", "", overview.to_markdown(index=False, disable_numparse=True), "",
             "## On the common-correct images", "", _display(table, "common").to_markdown(disable_numparse=True), ""]
    if rankings is not None:
        parts += ["## Rankings by attribution measure", "", RANKINGS_INTRO, ""]
        if not rankings.empty:
            parts += [_display_rankings(rankings, overview["model"]).to_markdown(disable_numparse=True), ""]
        parts += [f"- {note}" for note in report.agreement] + [""]
    parts += [f"## {OWN_TITLE}", "", OWN_INTRO, "",
              _display(table, "own").to_markdown(disable_numparse=True), ""]
    if sanity[0] is not None:
        parts += [f"## {SANITY_TITLE}", "", SANITY_INTRO, "", sanity[0].to_markdown(disable_numparse=True), ""]
        parts += [f"**{line}**" if flag == 1 else line for flag, line in sanity[1]] + [""]
    parts += ["## Plots", ""]
    for name, paths in report.plots.items():
        if name == report.key_plot:
            continue  # shown under the summary
        others = "".join(f" ([{p.suffix[1:].upper()}](plots/{p.name}))" for p in paths[1:])
        parts += [f"**{PLOT_CAPTIONS[name]}**", "", f"![{name}](plots/{paths[0].name}){others}", ""]
    parts += [f"_{note}_" for note in report.notes] + ["", "Full table: [comparison.csv](comparison.csv)."]
    return "\n".join(parts) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}img{max-width:100%}
figcaption{font-weight:600;margin-bottom:0.4em}"""


def _html(title: str, runs: Sequence[Run], overview: pd.DataFrame, table: pd.DataFrame,
          rankings: pd.DataFrame | None, mask: np.ndarray, report: Report, sanity: Sanity) -> str:
    figures, key = [], ""
    for name, paths in report.plots.items():  # linked, not embedded: each plot is in the report once, in plots/
        source = html.escape(f"plots/{paths[0].name}", quote=True)
        figure = (f'<figure id="plot-{name}"><figcaption>{html.escape(PLOT_CAPTIONS[name])}</figcaption>'
                  f'<a href="{source}"><img alt="{name} plot" src="{source}"></a></figure>')
        if name == report.key_plot:
            key = figure  # above the fold, under the summary
        else:
            figures.append(figure)
    summary, sentence = report.summary
    said = html.escape(sentence)
    while "**" in said:  # the sentence's bold model names
        said = said.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
    notes = "".join(f"<p><em>{html.escape(n)}</em></p>" for n in report.notes)
    intro = html.escape(_intro(runs, mask)).replace("**common-correct**", "<strong>common-correct</strong>")
    checks = ""
    if sanity[0] is not None:
        lines = "".join(f"<p><strong>{html.escape(line)}</strong></p>" if flag == 1 else f"<p>{html.escape(line)}</p>"
                        for flag, line in sanity[1])
        checks = (f"<h2>{SANITY_TITLE}</h2><p>{html.escape(SANITY_INTRO)}</p>"
                  f"{sanity[0].to_html(table_id='sanity')}{lines}")
    ranked = ""
    if rankings is not None:
        shown = "" if rankings.empty else _display_rankings(rankings, overview["model"]).to_html(table_id="rankings")
        agreement = "".join(f"<li>{html.escape(note)}</li>" for note in report.agreement)
        ranked = f"<h2>Rankings by attribution measure</h2><p>{html.escape(RANKINGS_INTRO)}</p>{shown}<ul>{agreement}</ul>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<section id="summary"><h2>Summary</h2><p>{said}</p>{summary.to_html(table_id="summary-table", float_format="{:.3f}".format)}
{key}</section><p>{intro}</p>
<h2>Models</h2>{overview.to_html(index=False, table_id="models")}
<h2>On the common-correct images</h2>{_display(table, "common").to_html(table_id="common")}{ranked}
<h2>{OWN_TITLE}</h2><p>{html.escape(OWN_INTRO)}</p>{_display(table, "own").to_html(table_id="own")}
{checks}<h2>Plots</h2>{"".join(figures)}{notes}
</body></html>
"""
