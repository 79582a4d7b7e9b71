"""A run: one evaluated model's results, the three files that hold them, and its headline numbers.

A run directory (written by ``robench evaluate --out DIR``, :func:`robench.evaluate` with ``out`` or
:meth:`Run.save`) holds ``results.csv``, ``per_image.csv.gz`` (:data:`PER_IMAGE_FILE`) and ``meta.json``;
:func:`write_results` writes the three all-or-nothing, ``meta.json`` last, so that it marks the run complete.
:func:`load_run` checks all three and raises a one-line :class:`RobenchError` naming the file for anything
missing, unfinished, unparsable or hand-edited beyond recognition; a run written before the per-image table
was compressed (a plain ``per_image.csv``) still loads. :func:`headline` reduces a run to the leaderboard's
one row (:data:`HEADLINE_COLUMNS`).

This module sits below the runner (:mod:`robench.runner`, which writes runs) and the reports
(:mod:`robench.reports`, which read them): it imports neither (tests/test_layers.py keeps it so).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robench.errors import OtherRunError, RobenchError
from robench.io import atomic_path, gzip_bytes, json_text, write_atomic
from robench.schema import (
    FLOAT_FORMAT,
    RESULT_COLUMNS,
    mprt_step_parts,
    occlusion_column,
    per_image_columns,
    top_mass_measure,
)
from robench.settings import recorded_settings

#: The per-image table's file in a run directory: its CSV text gzip-compressed by :func:`robench.io.gzip_bytes`
#: (no time stamp, no file name), so equal tables give byte-identical files. pandas reads it as it is.
PER_IMAGE_FILE = "per_image.csv.gz"
#: The uncompressed table that runs written before :data:`PER_IMAGE_FILE` hold; still read (:func:`per_image_path`).
LEGACY_PER_IMAGE_FILE = "per_image.csv"
PER_IMAGE_REQUIRED = ["index", "label", "prediction", "correct"]
META_REQUIRED = ["model", "dataset", "n_images", "seed", "suites", "options", "environment", "finished"]
PREFERRED_FILL = 0.5  # the occlusion fill the headline reports when the run has it (IGD's grey)
ALL_ZERO_WARNING = 0.01  # warn when more than this share of the attribution maps is all zero


def recorded_signature(path: Path) -> str | None:
    """The ``signature`` in ``path/meta.json`` (what determines a run's results), None when it cannot be read."""
    try:
        return json.loads((path / "meta.json").read_text()).get("signature")
    except (ValueError, OSError):
        return None


@dataclass
class Run:
    """One evaluated model: its results (long format, :data:`RESULT_COLUMNS`), per-image table and metadata.

    What :func:`robench.evaluate` returns and :func:`load_run` reads back; ``path`` is the run
    directory, None for a run not written anywhere (see :meth:`save`).
    """

    path: Path | None
    meta: dict[str, Any]
    results: pd.DataFrame
    per_image: pd.DataFrame

    @classmethod
    def empty(cls, meta: dict[str, Any]) -> Run:
        """What a non-zero rank of a distributed evaluation returns: no rows (rank 0 holds and writes the results)."""
        return cls(None, meta, pd.DataFrame(columns=RESULT_COLUMNS), pd.DataFrame())

    @property
    def name(self) -> str:
        """The model's name as recorded by the evaluation (else the directory's name)."""
        return str(self.meta["model"].get("name") or (self.path.name if self.path else "model"))

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write results.csv, per_image.csv.gz and meta.json into directory ``path`` (atomically, meta last).

        A directory holding another run's results (a different ``signature`` in its meta.json: another model,
        data, seed or setting) is refused unless ``overwrite``, as ``robench evaluate --out`` refuses it.
        """
        path = Path(path)
        if (path / "meta.json").exists() and not overwrite:
            other = recorded_signature(path)
            if other is None or other != self.meta.get("signature"):
                raise OtherRunError(f"{path} already holds results of a different run; save to another directory "
                                   "or pass overwrite=True")
        path.mkdir(parents=True, exist_ok=True)
        write_results(path, self.results, self.per_image, self.meta)
        self.path = path
        return path

    @property
    def attributions(self) -> tuple[str, ...]:
        """The inequality suite's attribution methods in order (the first: the plain per-image columns, the
        headline Gini and the attacks' map); empty without that suite."""
        recorded = self.meta["suites"].get("inequality", {}).get("attribution", "")
        return tuple(recorded.split(",")) if recorded else ()

    def headline(self) -> dict[str, Any]:
        """The run as one leaderboard row (:func:`headline`)."""
        return headline(self)

    def all_zero_warning(self) -> str | None:
        """A warning line when more than :data:`ALL_ZERO_WARNING` of the attribution maps are all zero."""
        share = self.value("gini", "all_zero_share", "pixel", "all")
        if not share > ALL_ZERO_WARNING:
            return None
        with_zero = self.value("gini", "mean", "pixel", "correct")
        without = self.value("gini", "mean", "pixel", "correct_nonzero")
        return (f"{100 * share:.1f}% of {self.name}'s attribution maps are all zero (scored Gini 0 by convention): "
                f"pixel Gini mean {with_zero:.3f} with them, {without:.3f} without them (correct images)")

    def mprt_verdict(self) -> tuple[float, str] | None:
        """The sanity suite's verdict (1 flagged, 0 passed, NaN undecided) and a line saying it; None without one."""
        rows = self.rows("mprt", "flagged")
        if not len(rows):
            return None
        flag, attribution, step = float(rows["value"].iloc[0]), rows["variant"].iloc[0], rows["param"].iloc[0]
        spearman = self.value("mprt", "spearman", attribution, step)
        threshold = self.meta["suites"]["sanity"]["mprt_threshold"]
        done, total, deepest = mprt_step_parts(step)
        where = f"after randomising {done}/{total} layers (down to {deepest})"
        if flag == 1:
            return flag, (f"attribution {attribution} of {self.name} FAILS the model-randomisation sanity check: its maps "
                          f"keep a mean Spearman correlation of {spearman:.3f} > {threshold:g} with the original {where}")
        verdict = "passes" if flag == 0 else "is undecided by (no defined correlation)"
        return flag, (f"attribution {attribution} of {self.name} {verdict} the model-randomisation sanity check: mean "
                      f"Spearman correlation {spearman:.3f} (threshold {threshold:g}) {where}")

    def rows(self, test: str, metric: str, variant: str | None = None, param: str | None = None) -> pd.DataFrame:
        """Rows of ``results.csv`` for ``test`` and ``metric``; ``variant`` matches a prefix, ``param`` exactly."""
        r = self.results
        keep = (r["test"] == test) & (r["metric"] == metric)
        if variant is not None:
            keep &= r["variant"].str.startswith(variant)
        if param is not None:
            keep &= r["param"] == param
        return r[keep]

    def value(self, test: str, metric: str, variant: str | None = None, param: str | None = None) -> float:
        """The first matching value, NaN when the run has none."""
        rows = self.rows(test, metric, variant, param)
        return float(rows["value"].iloc[0]) if len(rows) else math.nan


def load_run(path: str | Path) -> Run:
    """Read a finished run directory; one-line errors for missing, unfinished or corrupt files."""
    path = Path(path)
    if not path.is_dir():
        raise RobenchError(f"run directory {path} does not exist")
    meta_path = path / "meta.json"
    if not meta_path.exists():
        if (path / ".partial").exists():
            raise RobenchError(f"run {path} is unfinished (no meta.json); run the same robench evaluate again to finish it")
        raise RobenchError(f"{path} is not a robench run directory (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RobenchError(f"{meta_path} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or (missing := [k for k in META_REQUIRED if k not in meta]):
        raise RobenchError(f"{meta_path} lacks {', '.join(missing) if isinstance(meta, dict) else 'an object'}; "
                           "not written by robench evaluate")
    results = _read_csv(path / "results.csv", RESULT_COLUMNS, exact=True)
    results["param"] = results["param"].fillna("").astype(str)
    results["variant"] = results["variant"].fillna("").astype(str)
    table = per_image_path(path)
    per_image = _read_csv(table, PER_IMAGE_REQUIRED)
    if len(per_image) != meta["n_images"]:
        raise RobenchError(f"{table} has {len(per_image)} rows but meta.json says "
                           f"{meta['n_images']} images; the run directory was altered")
    return Run(path=path, meta=meta, results=results, per_image=per_image)


def per_image_path(run_dir: str | Path) -> Path:
    """The per-image table of run directory ``run_dir``: its :data:`PER_IMAGE_FILE`, or the plain
    :data:`LEGACY_PER_IMAGE_FILE` of a run written before, when only that one is there."""
    path = Path(run_dir)
    compressed, legacy = path / PER_IMAGE_FILE, path / LEGACY_PER_IMAGE_FILE
    return legacy if legacy.exists() and not compressed.exists() else compressed


def write_results(out_dir: Path, results: pd.DataFrame, per_image: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Write the three result files all-or-nothing; meta.json last, so it marks a complete run.

    All three are written to temporary files first; only when every write succeeded is an older
    meta.json removed and the files renamed into place (results, per-image, meta). A failure while
    writing (a full disk) leaves the previous run's files exactly as they were; a failure between
    the renames leaves no meta.json, so the directory never looks like a finished run of other settings.
    The per-image table is its CSV text gzip-compressed without a time stamp (:func:`robench.io.gzip_bytes`):
    the same table gives the same bytes. A plain per_image.csv left by an older run there is removed.
    """
    with atomic_path(out_dir / "meta.json") as meta_tmp, atomic_path(out_dir / PER_IMAGE_FILE) as image_tmp, \
            atomic_path(out_dir / "results.csv") as results_tmp:
        results.to_csv(results_tmp, index=False, float_format=FLOAT_FORMAT)
        image_tmp.write_bytes(gzip_bytes(per_image.to_csv(index=False, float_format=FLOAT_FORMAT).encode()))
        meta_tmp.write_text(json_text(meta))
        (out_dir / "meta.json").unlink(missing_ok=True)
        (out_dir / LEGACY_PER_IMAGE_FILE).unlink(missing_ok=True)


def write_results_table(out_dir: Path, results: pd.DataFrame) -> None:
    """Rewrite a finished run's results.csv alone, atomically (:func:`robench.api.resummarize`)."""
    write_atomic(out_dir / "results.csv",
                 lambda tmp: results.to_csv(tmp, index=False, float_format=FLOAT_FORMAT))  # called at once


def _read_csv(path: Path, columns: list[str], exact: bool = False) -> pd.DataFrame:
    if not path.exists():
        raise RobenchError(f"{path} is missing; the run directory is incomplete")
    try:
        frame = pd.read_csv(path, dtype={"param": str, "variant": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError,
            gzip.BadGzipFile, EOFError, zlib.error) as e:  # the last three: a damaged per_image.csv.gz
        raise RobenchError(f"{path} cannot be parsed ({str(e).splitlines()[0]})") from None
    if exact and list(frame.columns) != columns:
        raise RobenchError(f"{path} has columns {','.join(map(str, frame.columns))}; expected {','.join(columns)}")
    if missing := [c for c in columns if c not in frame.columns]:
        raise RobenchError(f"{path} lacks column(s) {', '.join(missing)}")
    numeric = [c for c in ("value", "n", "index", "label", "prediction") if c in frame.columns]
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            bad = pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()
            line = int(bad.to_numpy().nonzero()[0][0]) + 2
            raise RobenchError(f"{path} line {line}: column {column!r} is not a number")
    return frame


#: The leaderboard's columns, in order (docs/leaderboard.md describes each).
HEADLINE_COLUMNS = [
    "name", "arch", "dataset", "n_images", "method", "method_params",
    "clean_accuracy", "pgd_accuracy", "pgd_eps", "autoattack_accuracy",
    "gini_pixel", "gini_region", "ina_error", "ina_budget", "rn_error", "rn_budget", "ioa_error", "ioa_fill",
    "corruption_error", "noise_corruption_error",
    "robench_version", "date", "checkpoint_sha256", "settings", "settings_key",
]


#: Attribution measures beyond the headline Gini (docs/metrics.md), on the correctly classified images:
#: the pixel Gini without all-zero maps, the share of all-zero maps, and the concentration measures.
ATTRIBUTION_COLUMNS = ["gini_pixel_nonzero", "all_zero_share", "entropy", "participation", "top_mass_1pct"]


#: The alignment of the attribution maps with a reference model's (docs/metrics.md), on the correctly classified
#: images: the mean cosine of the signed maps and the mean Spearman correlation of their absolute values (NaN for a
#: run without ``reference_model``), then the reference's name and sha256 (empty without one).
ALIGNMENT_COLUMNS = ["attribution_cosine", "attribution_spearman", "reference_model", "reference_sha256"]


#: The training settings recorded in ``method_params`` for each training method.
METHOD_PARAMS = {
    "standard": ("epochs",),
    "pgd-at": ("eps", "inner_attack", "attack_steps", "step_size", "epochs"),
    "trades": ("eps", "inner_attack", "attack_steps", "step_size", "beta", "epochs"),
    "igd": ("eps", "inner_attack", "attack_steps", "step_size", "lam", "teacher", "epochs"),
    "trades-igd": ("eps", "inner_attack", "attack_steps", "step_size", "beta", "lam", "teacher", "epochs"),
}


def headline(run: Run) -> dict[str, Any]:
    """The run as one leaderboard row (keys :data:`HEADLINE_COLUMNS` + :data:`ATTRIBUTION_COLUMNS` +
    :data:`ALIGNMENT_COLUMNS`; NaN for tests it did not run).

    Attack error rates are on the correctly classified images at the run's largest budget
    (``ina_budget``/``rn_budget``, fractions of entries); occlusion at grey fill when run;
    ``pgd_accuracy``/``autoattack_accuracy`` at the largest ε. ``settings_key`` hashes what makes two
    rows comparable: the dataset's content fingerprint, the image count and every suite setting.
    """
    meta, model = run.meta, run.meta["model"]
    reference = meta["suites"].get("inequality", {}).get("reference") or {}
    training = model.get("training") or {}
    config = training.get("config") or {}
    method = training.get("method") or config.get("method") or "unknown"
    params = {k: config[k] for k in METHOD_PARAMS.get(method, ("epochs",)) if k in config}
    pgd = run.rows("pgd", "robust_accuracy")
    pgd_eps = max(pgd["param"], key=float) if len(pgd) else ""
    ina_budget = _largest(run, "inductive_noise")
    rn_budget = _largest(run, "random_noise")
    ioa = {c.param: c.row for c in per_image_columns(run.per_image.columns, "inductive_occlusion", "fooled")
           if c.row is not None and len(c.row.select(run.results))}  # by fill, those with results rows
    preferred = occlusion_column(PREFERRED_FILL, "fooled").param
    fill = preferred if preferred in ioa else next(iter(ioa), "")
    settings = {"dataset": meta["dataset"].get("fingerprint"), "split": meta["dataset"].get("split"),
                "n_images": meta["n_images"], "seed": meta["seed"],
                "suites": {name: recorded_settings(options) for name, options in meta["suites"].items()}}
    return {
        "name": run.name,
        "arch": model.get("arch", ""),
        "dataset": f"{meta['dataset'].get('name', '')}/{meta['dataset'].get('split', '')}",
        "n_images": int(meta["n_images"]),
        "method": method,
        "method_params": json.dumps(params, sort_keys=True),
        "clean_accuracy": run.value("accuracy", "accuracy", "all"),
        "pgd_accuracy": run.value("pgd", "robust_accuracy", param=pgd_eps) if pgd_eps else math.nan,
        "pgd_eps": float(pgd_eps) if pgd_eps else math.nan,
        "autoattack_accuracy": run.value("autoattack", "robust_accuracy", param=pgd_eps) if pgd_eps else math.nan,
        "gini_pixel": run.value("gini", "mean", "pixel", "correct"),
        "gini_region": run.value("gini", "mean", "region_sum", "correct"),
        "ina_error": run.value("inductive_noise", "error_rate", param=ina_budget) if ina_budget else math.nan,
        "ina_budget": float(ina_budget) if ina_budget else math.nan,
        "rn_error": run.value("random_noise", "error_rate", param=rn_budget) if rn_budget else math.nan,
        "rn_budget": float(rn_budget) if rn_budget else math.nan,
        "ioa_error": float(ioa[fill].select(run.results)["value"].iloc[0]) if fill else math.nan,
        "ioa_fill": float(fill) if fill else math.nan,
        "corruption_error": run.value("all", "error_rate", param="mean"),
        "noise_corruption_error": run.value("noise_family", "error_rate", param="mean"),
        "robench_version": meta["environment"].get("robench", ""),
        "date": meta["finished"],
        "checkpoint_sha256": model.get("sha256", ""),
        "settings": json.dumps(settings, sort_keys=True),
        "settings_key": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12],
        "gini_pixel_nonzero": run.value("gini", "mean", "pixel", "correct_nonzero"),
        "all_zero_share": run.value("gini", "all_zero_share", "pixel", "all"),
        "entropy": run.value("concentration", "mean", "entropy", "correct"),
        "participation": run.value("concentration", "mean", "participation", "correct"),
        "top_mass_1pct": run.value("concentration", "mean", top_mass_measure(0.01), "correct"),
        "attribution_cosine": run.value("alignment", "mean", "cosine", "correct"),
        "attribution_spearman": run.value("alignment", "mean", "spearman", "correct"),
        "reference_model": reference.get("name", ""),
        "reference_sha256": reference.get("sha256", ""),
    }


def _largest(run: Run, test: str) -> str:
    """The largest budget (as written in ``param``) of ``test``, or '' when the run has none."""
    params = run.rows(test, "error_rate")["param"]
    return max(params, key=float) if len(params) else ""
