"""The leaderboard: one CSV row per evaluated model, ranked only among comparable rows.

The file (default ``reports/leaderboard.csv``) holds :data:`LEADERBOARD_COLUMNS`, one row per
model name, written by :func:`add_run` from a finished run directory (:func:`robench.reports.runs.headline`)
and an optional model card (:func:`provenance`: origin robench/third-party, source, licence, training
and ε as stated, the source's own accuracies).
Every change happens under a lock file (``FILE.lock``) and replaces the file atomically, so
concurrent ``robench leaderboard add`` calls neither lose rows nor leave a torn file. A file
that is not a valid leaderboard (hand-edited header, wrong field count, non-numbers, duplicate
names, undecodable bytes) raises :class:`RobenchError` naming the file and line, and is never
overwritten. :func:`show` ranks rows only within groups of equal ``origin`` and ``settings_key``.
docs/leaderboard.md describes the schema and the rules.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robench.errors import RobenchError
from robench.io import write_atomic
from robench.reports.runs import ATTRIBUTION_COLUMNS, HEADLINE_COLUMNS

#: Where a row's model comes from, as stated by its source (empty for robench-trained models except ``origin``).
PROVENANCE_COLUMNS = ["origin", "source", "licence", "training_stated", "eps_stated", "stated_clean_accuracy",
                      "stated_robust_accuracy", "stated_meaning"]
#: The CSV schema, in file order: the run's headline, its provenance, then the attribution measures beyond
#: the Gini. A file written before the later groups existed (its header a prefix of this ending after
#: :data:`HEADLINE_COLUMNS` or after the provenance) still reads: robench-trained rows, no extra measures.
LEADERBOARD_COLUMNS = [*HEADLINE_COLUMNS, *PROVENANCE_COLUMNS, *ATTRIBUTION_COLUMNS]
LEGACY_WIDTHS = (len(HEADLINE_COLUMNS), len(HEADLINE_COLUMNS) + len(PROVENANCE_COLUMNS))
ORIGINS = ("robench", "third-party")
DEFAULT_PATH = Path("reports/leaderboard.csv")
#: Seconds to wait for another process's lock before giving up.
LOCK_TIMEOUT = 60.0
FLOAT_FORMAT = "%.6g"

INT_COLUMNS = ["n_images"]
FLOAT_COLUMNS = [
    "clean_accuracy", "pgd_accuracy", "pgd_eps", "autoattack_accuracy", "gini_pixel", "gini_region",
    "ina_error", "ina_budget", "rn_error", "rn_budget", "ioa_error", "ioa_fill",
    "corruption_error", "noise_corruption_error", "stated_clean_accuracy", "stated_robust_accuracy",
    *ATTRIBUTION_COLUMNS,
]
#: Score columns where a larger value ranks higher.
HIGHER_IS_BETTER = ["clean_accuracy", "pgd_accuracy", "autoattack_accuracy"]
#: Score columns where a smaller value ranks higher (attribution inequality and attack/corruption error rates).
LOWER_IS_BETTER = ["gini_pixel", "gini_region", "ina_error", "rn_error", "ioa_error",
                   "corruption_error", "noise_corruption_error"]
SORT_COLUMNS = HIGHER_IS_BETTER + LOWER_IS_BETTER
DEFAULT_SORT = "pgd_accuracy"
TABLE_COLUMNS = ["name", "group", "rank", "method", "clean_accuracy", "pgd_accuracy", "autoattack_accuracy",
                 "gini_pixel", "gini_region", "ina_error", "rn_error", "ioa_error", "corruption_error", "origin"]
#: Columns of the markdown and html output (csv has the full schema; table the compact TABLE_COLUMNS).
REPORT_COLUMNS = ["name", "group", "rank", "arch", "method", "dataset", "n_images", "clean_accuracy", "pgd_accuracy",
                  "pgd_eps", "autoattack_accuracy", "gini_pixel", "gini_region", "ina_error", "rn_error", "ioa_error",
                  "corruption_error", "noise_corruption_error", "settings_key", "origin", "source", "licence",
                  "training_stated", "eps_stated", "stated_clean_accuracy", "stated_robust_accuracy",
                  *ATTRIBUTION_COLUMNS]
FORMATS = ("table", "csv", "markdown", "html")
GROUPS_NOTE = ("rows in different groups were evaluated under different settings (dataset, image count, "
               "seed, attack parameters) and are not ranked against each other")
ORIGINS_NOTE = ("robench-trained and third-party rows (column origin) are grouped apart, robench first, and not "
                "ranked against each other; --origin shows one of them")

assert set(INT_COLUMNS + FLOAT_COLUMNS) <= set(LEADERBOARD_COLUMNS)


# ---------------------------------------------------------------------------------------------- reading


def read_leaderboard(path: str | Path = DEFAULT_PATH) -> pd.DataFrame:
    """The leaderboard as a frame (columns :data:`LEADERBOARD_COLUMNS`); empty when the file does not exist.

    Raises a one-line :class:`RobenchError` naming the file and line for anything that is not
    a leaderboard written by robench. Empty numeric fields read as NaN.
    """
    path = Path(path)
    if not path.exists():
        return _frame([])
    if path.is_dir():
        raise RobenchError(f"{path} is a directory, not a leaderboard CSV file; pass --file DIR/leaderboard.csv")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RobenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _frame(_parse(path, data))


def _parse(path: Path, data: bytes) -> list[list[str]]:
    """Validated records of a leaderboard file's bytes (header excluded)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RobenchError(f"{path} line {line}: bytes that are not UTF-8 text; not a leaderboard CSV") from None
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise RobenchError(f"{path} line {line}: NUL bytes; not a leaderboard CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records: list[list[str]] = []
    seen: dict[str, int] = {}
    width = len(LEADERBOARD_COLUMNS)
    name_at = LEADERBOARD_COLUMNS.index("name")
    while True:
        line = reader.line_num + 1  # the record's first line (a quoted field may span lines)
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise RobenchError(f"{path} line {line}: not valid CSV ({e})") from None
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank lines are harmless
        if header is None:
            header = fields
            if len(header) in LEGACY_WIDTHS and header == LEADERBOARD_COLUMNS[:len(header)]:
                width = len(header)  # written before the later column groups existed
            elif header != LEADERBOARD_COLUMNS:
                raise RobenchError(f"{path} line {line}: header does not match the leaderboard schema "
                                   f"({_header_difference(header)}); not a robench leaderboard file")
            continue
        if len(fields) != width:
            raise RobenchError(f"{path} line {line}: expected {width} fields, found {len(fields)}")
        fields = fields + LEGACY_DEFAULTS[len(fields) - len(HEADLINE_COLUMNS):]  # complete a legacy row
        row = dict(zip(LEADERBOARD_COLUMNS, fields))
        for column in INT_COLUMNS:
            try:
                int(row[column])
            except ValueError:
                raise RobenchError(f"{path} line {line}: column {column!r} is {row[column]!r}, "
                                   "not a whole number") from None
        for column in FLOAT_COLUMNS:
            if row[column].strip():
                try:
                    float(row[column])
                except ValueError:
                    raise RobenchError(f"{path} line {line}: column {column!r} is {row[column]!r}, "
                                       "not a number") from None
        if row["origin"] not in ORIGINS:
            raise RobenchError(f"{path} line {line}: column 'origin' is {row['origin']!r}, "
                               f"not one of {', '.join(ORIGINS)}")
        name = fields[name_at]
        if not name.strip():
            raise RobenchError(f"{path} line {line}: empty name")
        if name in seen:
            raise RobenchError(f"{path} line {line}: duplicate name {name!r} (also on line {seen[name]})")
        seen[name] = line
        records.append(fields)
    if header is None:
        raise RobenchError(f"{path} line 1: empty file, expected the header {LEADERBOARD_COLUMNS[0]},"
                           f"{LEADERBOARD_COLUMNS[1]},...; delete it to start a new leaderboard")
    return records


#: The columns after the headline of a row read from a legacy file: a robench-trained model, no extra measures.
LEGACY_DEFAULTS = ["robench"] + [""] * (len(PROVENANCE_COLUMNS) - 1 + len(ATTRIBUTION_COLUMNS))


def _header_difference(header: list[str]) -> str:
    for i, (got, want) in enumerate(zip(header, LEADERBOARD_COLUMNS), start=1):
        if got != want:
            return f"column {i} is {got!r}, expected {want!r}"
    return f"{len(header)} columns, expected {len(LEADERBOARD_COLUMNS)}"


def _frame(records: list[list[str]]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for i, column in enumerate(LEADERBOARD_COLUMNS):
        values = [r[i] for r in records]
        if column in INT_COLUMNS:
            columns[column] = pd.Series([int(v) for v in values], dtype="int64")
        elif column in FLOAT_COLUMNS:
            columns[column] = pd.Series([float(v) if v.strip() else math.nan for v in values], dtype="float64")
        else:
            columns[column] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, columns=LEADERBOARD_COLUMNS)


# ---------------------------------------------------------------------------------------------- writing


def _format(column: str, value: Any) -> str:
    if column in INT_COLUMNS:
        return str(int(value))
    if column in FLOAT_COLUMNS:
        value = float(value)
        return "" if math.isnan(value) else FLOAT_FORMAT % value
    return "" if value is None else str(value)


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with ``rows`` (dicts keyed by column)."""

    def writer(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(LEADERBOARD_COLUMNS)
            for row in rows:
                out.writerow([_format(c, row[c]) for c in LEADERBOARD_COLUMNS])

    write_atomic(path, writer)


class _Locked:
    """The leaderboard's lock file held; a clear RobenchError when another process keeps it too long."""

    def __init__(self, path: Path):
        import filelock

        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = f"{path}.lock"
        self.lock = filelock.FileLock(self.lock_path, timeout=LOCK_TIMEOUT)
        self.timeout_error = filelock.Timeout

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except self.timeout_error:
            raise RobenchError(f"could not lock {self.lock_path} within {LOCK_TIMEOUT:g} s: another process is "
                               "changing the leaderboard; try again when it has finished") from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def provenance(card: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The :data:`PROVENANCE_COLUMNS` of a row from a model card (a mapping with some of those keys).

    ``origin`` defaults to ``robench``; the stated accuracies are fractions in [0, 1] (missing: NaN);
    the other fields are one-line strings. Unknown keys or bad values raise :class:`RobenchError`.
    """
    card = dict(card or {})
    if unknown := sorted(set(card) - set(PROVENANCE_COLUMNS)):
        raise RobenchError(f"model card key(s) {', '.join(unknown)} unknown; use {', '.join(PROVENANCE_COLUMNS)}")
    out: dict[str, Any] = {"origin": "robench",
                           **{c: math.nan if c in FLOAT_COLUMNS else "" for c in PROVENANCE_COLUMNS[1:]}}
    for key, value in card.items():
        if key in FLOAT_COLUMNS:
            try:
                number = math.nan if value in (None, "") else float(value)
            except (TypeError, ValueError):
                raise RobenchError(f"model card {key} is {value!r}, not a number") from None
            if not math.isnan(number) and not 0 <= number <= 1:
                raise RobenchError(f"model card {key} is {number:g}; accuracies are fractions in [0, 1]")
            out[key] = number
        else:
            out[key] = "" if value is None else str(value).strip()
            if any(c in out[key] for c in "\r\n"):
                raise RobenchError(f"model card {key} must be on one line")
    if out["origin"] not in ORIGINS:
        raise RobenchError(f"model card origin is {out['origin']!r}; choose from {', '.join(ORIGINS)}")
    return out


def add_run(run_dir: str | Path, name: str | None = None, path: str | Path = DEFAULT_PATH,
            card: Mapping[str, Any] | None = None) -> list[str]:
    """Add (or replace, by name) the headline row of a finished run; returns one-line messages.

    ``card`` gives the row's provenance (:func:`provenance`; default: a robench-trained model).
    Messages starting with ``warning:`` flag a likely mistake: the same checkpoint evaluated with the
    same settings is already on the leaderboard under another name (the row is added anyway).
    """
    from robench.reports.runs import headline, load_run

    path = Path(path)
    row = {**headline(load_run(run_dir)), **provenance(card)}
    if name is not None:
        row["name"] = name
    row["name"] = str(row["name"]).strip()
    if not row["name"] or any(c in row["name"] for c in "\r\n"):
        raise RobenchError(f"leaderboard name {row['name']!r} must be non-empty and on one line; pass --name")
    read_leaderboard(path)  # validated before locking: a corrupt file leaves no FILE.lock behind
    with _Locked(path):
        rows = _rows(read_leaderboard(path))
        messages = []
        at = next((i for i, r in enumerate(rows) if r["name"] == row["name"]), None)
        if at is None:
            rows.append(row)
            messages.append(f"added {row['name']} to {path}")
        else:
            rows[at] = row
            messages.append(f"replaced the existing row {row['name']} in {path}")
        if row["checkpoint_sha256"]:
            twins = [r["name"] for r in rows if r["name"] != row["name"]
                     and r["checkpoint_sha256"] == row["checkpoint_sha256"] and r["settings_key"] == row["settings_key"]]
            if twins:
                messages.append(f"warning: the same checkpoint and settings are already on the leaderboard as "
                                f"{', '.join(twins[:3])}{f' and {len(twins) - 3} more' if len(twins) > 3 else ''}")
        _write(path, rows)
    return messages


def remove(name: str, path: str | Path = DEFAULT_PATH) -> str:
    """Remove the row called ``name``; returns a one-line message."""
    path = Path(path)
    if not path.exists():
        raise RobenchError(f"no leaderboard at {path}")
    names = list(read_leaderboard(path)["name"])  # checked before locking: a mistake leaves no FILE.lock behind
    if name not in names:
        raise _no_row(name, path, names)
    with _Locked(path):
        rows = _rows(read_leaderboard(path))
        keep = [r for r in rows if r["name"] != name]
        if len(keep) == len(rows):  # another process removed it meanwhile
            raise _no_row(name, path, [r["name"] for r in rows])
        _write(path, keep)
    return f"removed {name} from {path}"


def _no_row(name: str, path: Path, names: list[str]) -> RobenchError:
    listed = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
    return RobenchError(f"no row called {name!r} in {path}; " + (f"it has {listed}" if names else "it is empty"))


# ---------------------------------------------------------------------------------------------- ranking


def _letters(i: int) -> str:
    """0 → A, 25 → Z, 26 → AA, ..."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("A") + r) + out
    return out


def ranked(frame: pd.DataFrame, sort: str | None = None) -> pd.DataFrame:
    """``frame`` with ``group`` and ``rank`` columns, ordered by group (first appearance) then rank.

    Groups are rows with equal ``origin`` and ``settings_key``, robench-trained groups first; ``rank`` is
    1-based within the group by ``sort``
    (default ``pgd_accuracy``; descending for :data:`HIGHER_IS_BETTER`, ascending for
    :data:`LOWER_IS_BETTER`). Ties share the better rank; rows lacking the value get no rank (<NA>) and come last.
    """
    sort = sort or DEFAULT_SORT
    if sort not in SORT_COLUMNS:
        raise RobenchError(f"cannot sort by {sort!r}; choose from {', '.join(SORT_COLUMNS)}")
    ascending = sort in LOWER_IS_BETTER
    frame = frame.reset_index(drop=True).copy()
    key = frame["origin"].map(ORIGINS.index).astype(str) + "/" + frame["settings_key"]
    keys = sorted(dict.fromkeys(key), key=lambda k: k.split("/")[0])  # by origin, then first appearance
    frame["group"] = key.map({k: _letters(i) for i, k in enumerate(keys)})
    frame["rank"] = frame.groupby(key, sort=False)[sort].rank(method="min", ascending=ascending)
    frame["rank"] = frame["rank"].astype("Int64")
    frame["_group_order"] = key.map({k: i for i, k in enumerate(keys)})
    frame = frame.sort_values(["_group_order", sort], ascending=[True, ascending], na_position="last", kind="stable")
    return frame.drop(columns="_group_order").reset_index(drop=True)


def show_parts(path: str | Path = DEFAULT_PATH, sort: str | None = None, fmt: str = "table",
               origin: str | None = None) -> tuple[str, list[str]]:
    """The rendered leaderboard (only rows of ``origin`` when given) and its notes (one line each), kept
    apart so CSV output stays parseable."""
    path = Path(path)
    if fmt not in FORMATS:
        raise RobenchError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if origin is not None and origin not in ORIGINS:
        raise RobenchError(f"unknown origin {origin!r}; choose from {', '.join(ORIGINS)}")
    if not path.exists():
        raise RobenchError(f"no leaderboard at {path}; add a run with: robench leaderboard add RUN_DIR --file {path}")
    frame = read_leaderboard(path)
    table = ranked(frame if origin is None else frame[frame["origin"] == origin], sort)
    sort = sort or DEFAULT_SORT
    notes = []
    if len(table):
        order = "lower" if sort in LOWER_IS_BETTER else "higher"
        notes.append(f"ranked by {sort} ({order} is better) within each group of identical evaluation settings")
    if table["group"].nunique() > 1:
        notes.append(GROUPS_NOTE)
    if table["origin"].nunique() > 1:
        notes.append(ORIGINS_NOTE)
    if (missing := int(table["rank"].isna().sum())):
        notes.append(f"{missing} row(s) have no {sort} and are not ranked")
    if fmt == "csv":
        text = table.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    elif fmt == "markdown":
        text = _report_frame(table).to_markdown(
            index=False, disable_numparse=True, colalign=[_align(c) for c in REPORT_COLUMNS]) + "\n"
    elif fmt == "html":
        text = _report_frame(table).to_html(index=False)
    elif not len(table):
        text = f"the leaderboard {path} has no rows"
    else:
        text = _text_table(table[TABLE_COLUMNS])
    return text, notes


def show(path: str | Path = DEFAULT_PATH, sort: str | None = None, fmt: str = "table",
         origin: str | None = None) -> str:
    """The ranked leaderboard as ``table`` (compact text), ``csv`` (full schema), ``markdown`` or ``html``.

    ``origin`` (``robench`` or ``third-party``) keeps only those rows. Table, markdown and html end with
    the notes (ranking rule, different-settings warning); csv is the data alone (the ``group`` column
    tells the groups apart).
    """
    return with_notes(*show_parts(path, sort, fmt, origin), fmt)


def with_notes(text: str, notes: list[str], fmt: str) -> str:
    """``text`` followed by the notes as the format allows (csv: none, so it stays parseable)."""
    if fmt == "csv" or not notes:
        return text
    if fmt == "html":
        return text + "\n" + "\n".join(f"<p>{n}</p>" for n in notes) + "\n"
    return text.rstrip("\n") + "\n\n" + "\n".join(notes) + "\n"


def _text_table(table: pd.DataFrame) -> str:
    from tabulate import tabulate

    cells = []
    for row in table.itertuples(index=False):
        cells.append([_cell(v) for v in row])
    return tabulate(cells, headers=list(table.columns), tablefmt="simple", disable_numparse=True,
                    colalign=[_align(c) for c in table.columns])


def _align(column: str) -> str:
    return "right" if column in FLOAT_COLUMNS or column in INT_COLUMNS or column == "rank" else "left"


def _report_frame(table: pd.DataFrame) -> pd.DataFrame:
    """REPORT_COLUMNS as strings: floats to 3 decimals (pgd_eps to 4 significant digits), missing values empty."""
    out = pd.DataFrame(index=table.index)
    for column in REPORT_COLUMNS:
        if column == "pgd_eps":
            out[column] = [("" if math.isnan(v) else f"{v:.4g}") for v in table[column]]
        else:
            out[column] = [_cell(v, missing="") for v in table[column]]
    return out


def _cell(value: Any, missing: str = "-") -> str:
    if value is None or value is pd.NA:
        return missing
    if isinstance(value, float):
        return missing if math.isnan(value) else f"{value:.3f}"
    return str(value)
