"""Comparison tables of several runs: whole-set numbers and numbers on the common-correct set.

Both papers compare models on the images every compared model classifies correctly; a model's
own results (``results.csv``) use its own correctly classified images. :func:`comparison_table`
gives both, side by side, one column per model:

- scope ``own``: read from each run's ``results.csv`` (attacks on the images *that* model gets right);
- scope ``common``: recomputed from ``per_image.csv.gz`` on :func:`common_correct` (the images all of
  them get right), so that differences between models are not differences between image sets.

:func:`paired_errors` tests two models against each other on their common-correct images, measure by measure:
McNemar's exact test on the images fooled in one model and not the other, and a paired bootstrap interval of the
difference in error rate.

:func:`ranking_table` ranks the models by every attribution measure of every attribution method on the
common-correct images (1 = the most unequal maps) and gives Kendall's τ of each ranking against the
headline one, the pixel Gini of the first attribution method; :func:`ranking_notes` says in words where
rankings disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from robench.errors import RobenchError
from robench.metrics import bootstrap_ci
from robench.metrics.paired import binary_flags, mcnemar
from robench.run import Run
from robench.schema import PerImageColumn, per_image_columns, top_mass_fraction

SCOPES = ("own", "common")


def check_comparable(runs: Sequence[Run]) -> None:
    """Refuse runs on different images: same dataset content fingerprint, split and image indices."""
    if not runs:
        raise RobenchError("nothing to compare: give at least one run directory")
    first = runs[0]
    for run in runs[1:]:
        a, b = first.meta["dataset"], run.meta["dataset"]
        if (a.get("fingerprint"), a.get("split")) != (b.get("fingerprint"), b.get("split")):
            raise RobenchError(f"{run.path} was evaluated on different images ({b.get('name')}/{b.get('split')}, "
                               f"{run.meta['n_images']} images) than {first.path} ({a.get('name')}/{a.get('split')}, "
                               f"{first.meta['n_images']} images); compare runs on the same --data, --split, --limit "
                               "and --seed")
        if not np.array_equal(first.per_image["index"].to_numpy(), run.per_image["index"].to_numpy()):
            raise RobenchError(f"{run.path} and {first.path} list different image indices in per_image.csv.gz")


def model_labels(runs: Sequence[Run]) -> list[str]:
    """One unique column label per run: the model's name, made unique with the directory name."""
    names = [run.name for run in runs]
    labels = []
    for run, name in zip(runs, names):
        labels.append(name if names.count(name) == 1 else f"{name} ({run.path.name if run.path else 'unsaved'})")
    if len(set(labels)) != len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


def common_correct(runs: Sequence[Run]) -> np.ndarray:
    """Boolean mask over the (shared) per-image rows: images every run classifies correctly."""
    mask = np.ones(len(runs[0].per_image), dtype=bool)
    for run in runs:
        mask &= run.per_image["correct"].astype(bool).to_numpy()
    return mask


#: The per-image parts that are per-image error flags, or become them (:meth:`PerImageColumn.errors`).
ERROR_PARTS = ("fooled", "robust", "correct")
#: The per-image parts averaged on the common-correct images (Lorenz points are plotted, not tabled).
COMMON_PARTS = ("value", *ERROR_PARTS)


def common_values(run: Run, mask: np.ndarray) -> pd.DataFrame:
    """Per-measure means of one run on the images selected by ``mask``: columns test, param, metric, value, n,
    attribution (a further method's measure) and family (:data:`robench.schema.FAMILIES`).

    ``param`` is the column's :attr:`~robench.schema.PerImageColumn.setting`. Fooled flags average to an error
    rate; robustness flags (PGD, AutoAttack) to a robust accuracy; corruption columns hold "still correct" flags
    and become an error rate.
    """
    rows = []
    sub = run.per_image[mask]
    for column in per_image_columns(run.per_image.columns):
        if column.part not in COMMON_PARTS:
            continue
        values = pd.to_numeric(sub[column.name], errors="coerce").astype(float)
        part = column.part
        if part == "correct":  # corruptions: reported as an error rate
            values = column.errors(values)
        metric = {"value": "mean", "fooled": "error_rate", "robust": "robust_accuracy", "correct": "error_rate"}[part]
        rows.append({"test": column.test, "param": column.setting, "metric": metric, "value": float(values.mean()),
                     "n": int(values.notna().sum()), "attribution": column.attribution, "family": column.family})
    return pd.DataFrame(rows, columns=["test", "param", "metric", "value", "n", "attribution", "family"])


PAIRED_COLUMNS = ["column", "test", "param", "images", "error_a", "error_b", "difference", "ci_low", "ci_high",
                  "fooled_a_only", "fooled_b_only", "p_mcnemar"]


def paired_errors(a: Run, b: Run, columns: Sequence[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """Model ``a`` against model ``b`` on the images both classify correctly (and both attacked), one row per error
    column (:data:`PAIRED_COLUMNS`).

    ``error_a`` / ``error_b``: error rates (fooled, or wrong under PGD/AutoAttack/a corruption) on those images;
    ``difference`` = error_a − error_b with its 95% paired-bootstrap interval (``ci_low``, ``ci_high``: images
    resampled, each keeping both models' values); ``fooled_a_only`` / ``fooled_b_only``: the discordant images and
    ``p_mcnemar`` the exact two-sided McNemar p (NaN where a column holds shares of several trials, not 0/1).

    Args:
        a, b: runs on the same images (:func:`check_comparable`).
        columns: per-image column names (default: every error column both runs have, in ``a``'s order).
        seed: the bootstrap's seed.
    """
    check_comparable([a, b])
    mask = common_correct([a, b])
    names = [c.name for c in per_image_columns(a.per_image.columns) if c.part in ERROR_PARTS
             and c.name in b.per_image.columns] if columns is None else list(columns)
    rows = []
    for name in names:
        column = next(iter(per_image_columns([name])), None)
        if column is None or column.part not in ERROR_PARTS:
            raise RobenchError(f"{name!r} is not a per-image error column (fooled, robust or corruption flags)")
        if name not in a.per_image.columns or name not in b.per_image.columns:
            raise RobenchError(f"{name!r} is not in both runs' per-image tables")
        pair = [column.errors(pd.to_numeric(r.per_image.loc[mask, name], errors="coerce").to_numpy(dtype=float))
                for r in (a, b)]
        both = ~np.isnan(pair[0]) & ~np.isnan(pair[1])
        ea, eb = pair[0][both], pair[1][both]
        row = {"column": name, "test": column.test, "param": column.setting, "images": int(both.sum())}
        if not both.any():
            rows.append(row)
            continue
        low, high = bootstrap_ci(ea - eb, seed=seed)
        only_a, only_b, p = mcnemar(ea, eb) if binary_flags(ea, eb) else (None, None, float("nan"))
        rows.append({**row, "error_a": float(ea.mean()), "error_b": float(eb.mean()),
                     "difference": float(ea.mean() - eb.mean()), "ci_low": low, "ci_high": high,
                     "fooled_a_only": only_a, "fooled_b_only": only_b, "p_mcnemar": p})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


#: (label, test, variant prefix, param, metric) of the ``own``-scope rows, in reading order.
OWN_MEASURES = [
    ("clean accuracy", "accuracy", "all", "", "accuracy"),
    ("pixel Gini (correct)", "gini", "pixel", "correct", "mean"),
    ("regional Gini, sum (correct)", "gini", "region_sum", "correct", "mean"),
    ("regional Gini, avgpool (correct)", "gini", "region_avgpool", "correct", "mean"),
]


def comparison_table(runs: Sequence[Run]) -> pd.DataFrame:
    """The comparison, one row per measure and scope, one column per model.

    Columns: ``scope`` (own / common), ``measure`` (a readable label), ``test``, ``param``,
    then one column per model (:func:`model_labels`). Error rates and accuracies are fractions.
    """
    check_comparable(runs)
    labels = model_labels(runs)
    mask = common_correct(runs)
    table: dict[tuple[str, str, str, str], dict[str, float]] = {}

    def put(scope: str, measure: str, test: str, param: str, label: str, value: float) -> None:
        table.setdefault((scope, measure, test, param), {})[label] = value

    for run, label in zip(runs, labels):
        put("own", "images (correctly classified)", "images", "correct", label, float(run.per_image["correct"].sum()))
        put("common", "images (all models correct)", "images", "common", label, float(mask.sum()))
        for measure, test, variant, param, metric in OWN_MEASURES:
            put("own", measure, test, param, label, run.value(test, metric, variant, param))
        for test, metric, name in (("pgd", "robust_accuracy", "PGD accuracy"), ("fgsm", "robust_accuracy", "FGSM accuracy"),
                                   ("autoattack", "robust_accuracy", "AutoAttack accuracy"),
                                   ("inductive_noise", "error_rate", "inductive noise error"),
                                   ("random_noise", "error_rate", "random noise error")):
            for _, row in run.rows(test, metric).iterrows():
                put("own", f"{name} @ {_fmt_param(test, row['param'])}", test, row["param"], label, row["value"])
        for column in per_image_columns(run.per_image.columns, "inductive_occlusion", "fooled"):
            assert column.row is not None  # fooled columns feed the error-rate rows
            for _, row in column.row.select(run.results).iterrows():
                put("own", f"occlusion error, {column.setting} ({row['param']})", "inductive_occlusion", column.setting,
                    label, row["value"])
        for param in ("cosine", "spearman"):  # with a reference model only
            value = run.value("alignment", "mean", param, "correct")
            if not np.isnan(value):
                put("own", f"{_common_label('alignment', param)} (correct)", "alignment", param, label, value)
        for test, name in (("noise_family", "noise family"), ("all", "all")):
            value = run.value(test, "error_rate", param="mean")
            if not np.isnan(value):
                put("own", f"corruption error, {name} (mean)", f"corruption_{test}", "mean", label, value)
        common = common_values(run, mask)
        for _, row in common.iterrows():
            if row["family"] == "corruption":
                continue  # per corruption and severity: the heatmap shows them; the mean follows
            method = f" [{row['attribution']}]" if row["attribution"] else ""  # a further attribution method's measure
            put("common", f"{_common_label(row['test'], row['param'])}{method}", row["test"], row["param"], label,
                row["value"])
        corr = common[common["family"] == "corruption"]
        if len(corr):
            put("common", "corruption error, all (mean)", "corruption_all", "mean", label, float(corr["value"].mean()))
    frame = pd.DataFrame([{"scope": k[0], "measure": k[1], "test": k[2], "param": k[3], **v} for k, v in table.items()])
    return frame[["scope", "measure", "test", "param", *labels]]


def _fmt_param(test: str, param: str) -> str:
    if test in ("pgd", "fgsm", "autoattack"):
        return f"ε = {float(param) * 255:.3g}/255"
    value = float(param)
    return f"{value * 100:.3g}% of entries" if value < 1 else f"{value:g} entries"


def _common_label(test: str, param: str) -> str:
    names = {"gini": "Gini", "inductive_noise": "inductive noise error", "random_noise": "random noise error",
             "inductive_occlusion": "occlusion error", "pgd": "PGD accuracy", "fgsm": "FGSM accuracy",
             "autoattack": "AutoAttack accuracy"}
    if test == "gini":
        return f"{param.replace('_', ' ')} Gini"
    if test == "concentration":
        fraction = top_mass_fraction(param)
        if fraction is not None:
            return f"mass in the top {100 * fraction:g}% of entries"
        return {"entropy": "normalised entropy", "participation": "participation ratio"}[param]
    if test == "inductive_occlusion":
        return f"occlusion error, {param}"
    if test == "alignment":
        return {"cosine": "attribution cosine with the reference", "spearman": "|attribution| Spearman with the reference"}[param]
    return f"{names[test]} @ {_fmt_param(test, param)}"


# ---------------------------------------------------------------------------------------------- rankings

#: The tests whose per-image values measure how unequal an attribution map is.
ATTRIBUTION_TESTS = ("gini", "concentration")
MIN_MODELS_FOR_TAU = 3


def attribution_means(run: Run, mask: np.ndarray) -> dict[tuple[str, str, str], tuple[PerImageColumn, float]]:
    """Each attribution measure's mean over the images ``mask`` selects (NaN maps left out), keyed by
    (method, test, param) in the run's column order: the first method's measures first."""
    found = {}
    for column in per_image_columns(run.per_image.columns, part="value"):
        if column.test in ATTRIBUTION_TESTS:
            method = column.attribution or run.attributions[0]
            values = pd.to_numeric(run.per_image.loc[mask, column.name], errors="coerce").astype(float)
            found[(method, column.test, column.param)] = (column, float(values.mean()))
    return found


def ranking_table(runs: Sequence[Run]) -> pd.DataFrame:
    """The models ranked by each attribution measure of each attribution method all runs have, on the
    common-correct images; Kendall's τ of each ranking against the headline ranking.

    Columns: ``attribution``, ``measure``, ``test``, ``param``, ``more_unequal`` (``higher`` or
    ``lower``: entropy and participation fall as maps concentrate), one column per model holding its
    rank (1 = the most unequal maps; ties share the best rank), ``kendall_tau``. The first row is the
    headline ranking (pixel Gini of the first run's first attribution method that every run has);
    τ is τ-b of the inequality-aligned means (a ranking's τ against itself is 1), NaN with fewer than
    :data:`MIN_MODELS_FOR_TAU` models or when a model has no value.
    """
    check_comparable(runs)
    labels = model_labels(runs)
    mask = common_correct(runs)
    means = [attribution_means(run, mask) for run in runs]
    keys = [k for k in means[0] if all(k in m for m in means[1:])]
    columns = ["attribution", "measure", "test", "param", "more_unequal", *labels, "kendall_tau"]
    first = next((k for k in keys if k[1:] == ("gini", "pixel")), None)  # the headline: first method's pixel Gini
    if first is None:
        return pd.DataFrame(columns=columns)
    keys = [first, *(k for k in keys if k != first)]
    scores = {k: np.array([m[k][0].inequality_sign * m[k][1] for m in means]) for k in keys}
    headline = scores[keys[0]]
    rows = []
    for key in keys:
        method, test, param = key
        score = scores[key]
        ranks = pd.Series(-score).rank(method="min").to_numpy()
        defined = len(runs) >= MIN_MODELS_FOR_TAU and not np.isnan(score).any() and not np.isnan(headline).any()
        tau = float(kendalltau(score, headline).statistic) if defined else np.nan
        rows.append({"attribution": method, "measure": _common_label(test, param), "test": test, "param": param,
                     "more_unequal": "higher" if means[0][key][0].inequality_sign > 0 else "lower",
                     **dict(zip(labels, ranks)), "kendall_tau": tau})
    return pd.DataFrame(rows, columns=columns)


def ranking_notes(table: pd.DataFrame, labels: Sequence[str], max_pairs: int = 3) -> list[str]:
    """Plain sentences on :func:`ranking_table`: which rankings disagree with the headline one, and how."""
    if table.empty:
        return ["no attribution measure is common to every run: nothing to rank"]
    head = table.iloc[0]
    head_name = f"{head['measure']} ({head['attribution']})"
    if len(labels) < MIN_MODELS_FOR_TAU:
        return [f"with fewer than {MIN_MODELS_FOR_TAU} models Kendall's τ is uninformative: the rankings are shown "
                "without it"]
    notes = []
    for _, row in table.iloc[1:].iterrows():
        name = f"{row['measure']} ({row['attribution']})"
        if np.isnan(row["kendall_tau"]):
            notes.append(f"no τ for {name}: a model has no value, or every model ties in one of the rankings")
        elif row["kendall_tau"] < 1:
            pairs = _differing_pairs([row[m] for m in labels], [head[m] for m in labels], labels)
            more = f", and {len(pairs) - max_pairs} more pair(s)" if len(pairs) > max_pairs else ""
            notes.append(f"rankings by {name} and {head_name} disagree: τ = {row['kendall_tau']:.2f}; "
                         f"{'; '.join(pairs[:max_pairs])}{more}")
    return notes or [f"every ranking agrees with the one by {head_name} (τ = 1)"]


def _differing_pairs(ranks: Sequence[float], head: Sequence[float], labels: Sequence[str]) -> list[str]:
    """The model pairs two rankings order differently: swapped, or tied in one of them only."""
    pairs = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            a, b = np.sign(ranks[i] - ranks[j]), np.sign(head[i] - head[j])
            if a * b < 0:
                pairs.append(f"models {labels[i]} and {labels[j]} swap")
            elif a != b:
                pairs.append(f"models {labels[i]} and {labels[j]} tie in one ranking only")
    return pairs
