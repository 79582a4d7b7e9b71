"""The leaderboard: one CSV row per evaluated model, ranked only among rows of one evaluation protocol.

The file (default ``reports/leaderboard.csv``) holds :data:`LEADERBOARD_COLUMNS`, one row per
model name, written by :func:`add_run` from a finished run directory (:func:`robench.run.headline`),
optionally a separate AutoAttack run of the same checkpoint, and an optional model card
(:func:`provenance`: origin robench/third-party, source, licence, training and ε as stated, the
source's own accuracies; ``method``: the training as stated). A robench-trained row must name a
checkpoint that exists (:func:`checkpoint_problem`).
Every change happens under a lock file (``FILE.lock``) and replaces the file atomically, so
concurrent ``robench leaderboard add`` calls neither lose rows nor leave a torn file. A file
that is not a valid leaderboard (hand-edited header, wrong field count, non-numbers, duplicate
names, undecodable bytes) raises :class:`RobenchError` naming the file and line, and is never
overwritten. :func:`show` ranks rows of every origin together within groups of one :func:`protocol`,
by AutoAttack accuracy where a row has it and PGD accuracy (an upper bound) otherwise.
docs/leaderboard.md describes the schema and the rules.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from robench.errors import RobenchError
from robench.io import sha256_file, write_atomic
from robench.run import ALIGNMENT_COLUMNS, ATTRIBUTION_COLUMNS, HEADLINE_COLUMNS, METHOD_PARAMS, Run, headline, load_run
from robench.schema import FLOAT_FORMAT
from robench.zoo import zoo_dir

#: Where a row's model comes from, as stated by its source (empty for robench-trained models except ``origin``).
PROVENANCE_COLUMNS = ["origin", "source", "licence", "training_stated", "eps_stated", "stated_clean_accuracy",
                      "stated_robust_accuracy", "stated_meaning"]
#: Where the checkpoint is (``zoo:NAME`` for a bundled model, else the path its run recorded) and the image
#: count of ``autoattack_accuracy`` (the run's own, or a separate AutoAttack run's).
TRACE_COLUMNS = ["checkpoint", "autoattack_n_images"]
#: The CSV schema, in file order: the run's headline, its provenance, the attribution measures beyond the
#: Gini, the trace, then the alignment with a reference model. A file written before the later groups existed
#: (its header a prefix of this ending after :data:`HEADLINE_COLUMNS`, the provenance, the attribution measures
#: or the trace) still reads: robench-trained rows, no extra measures, no checkpoint path, no alignment.
COLUMN_GROUPS = (HEADLINE_COLUMNS, PROVENANCE_COLUMNS, ATTRIBUTION_COLUMNS, TRACE_COLUMNS, ALIGNMENT_COLUMNS)
LEADERBOARD_COLUMNS = [column for group in COLUMN_GROUPS for column in group]
LEGACY_WIDTHS = tuple(sum(map(len, COLUMN_GROUPS[:end])) for end in range(1, len(COLUMN_GROUPS)))
ORIGINS = ("robench", "third-party")
#: Training methods a model card may state for a checkpoint that records none: robench's own, and the
#: kinds of the third-party manifest (experiments/third_party/manifest.csv).
STATED_METHODS = (*METHOD_PARAMS, "adversarial", "mixed", "certified", "robust-unstated", "unstated")
DEFAULT_PATH = Path("reports/leaderboard.csv")
#: Seconds to wait for another process's lock before giving up.
LOCK_TIMEOUT = 60.0

INT_COLUMNS = ["n_images"]
#: Whole numbers that may be missing (empty field, read as <NA>).
OPTIONAL_INT_COLUMNS = ["autoattack_n_images"]
FLOAT_COLUMNS = [
    "clean_accuracy", "pgd_accuracy", "pgd_eps", "autoattack_accuracy", "gini_pixel", "gini_region",
    "ina_error", "ina_budget", "rn_error", "rn_budget", "ioa_error", "ioa_fill",
    "corruption_error", "noise_corruption_error", "stated_clean_accuracy", "stated_robust_accuracy",
    *ATTRIBUTION_COLUMNS, "attribution_cosine", "attribution_spearman",
]
#: Score columns where a larger value ranks higher (``robust_accuracy``: computed by :func:`ranked`).
HIGHER_IS_BETTER = ["robust_accuracy", "clean_accuracy", "pgd_accuracy", "autoattack_accuracy"]
#: Score columns where a smaller value ranks higher (attribution inequality and attack/corruption error rates).
LOWER_IS_BETTER = ["gini_pixel", "gini_region", "ina_error", "rn_error", "ioa_error",
                   "corruption_error", "noise_corruption_error"]
SORT_COLUMNS = HIGHER_IS_BETTER + LOWER_IS_BETTER
DEFAULT_SORT = "robust_accuracy"
#: Columns :func:`ranked` adds after the schema: the protocol group, the rank in it, the protocol's key, the
#: robust accuracy ranked by (AutoAttack's, else PGD's) and where it comes from.
RANKING_COLUMNS = ["group", "rank", "protocol_key", "robust_accuracy", "robust_accuracy_source"]
TABLE_COLUMNS = ["name", "group", "rank", "method", "origin", "clean_accuracy", "robust_accuracy",
                 "robust_accuracy_source", "pgd_accuracy", "autoattack_accuracy", "gini_pixel", "gini_region",
                 "ina_error", "rn_error", "ioa_error", "corruption_error"]
#: Columns of the markdown and html output (csv has the full schema; table the compact TABLE_COLUMNS).
REPORT_COLUMNS = ["name", "group", "rank", "arch", "method", "dataset", "n_images", "clean_accuracy",
                  "robust_accuracy", "robust_accuracy_source", "pgd_accuracy", "pgd_eps", "autoattack_accuracy",
                  "autoattack_n_images", "gini_pixel", "gini_region", "ina_error", "rn_error", "ioa_error",
                  "corruption_error", "noise_corruption_error", "protocol_key", "settings_key", "checkpoint", "origin",
                  "source", "licence", "training_stated", "eps_stated", "stated_clean_accuracy",
                  "stated_robust_accuracy", *ATTRIBUTION_COLUMNS, *ALIGNMENT_COLUMNS]
FORMATS = ("table", "csv", "markdown", "html")
GROUPS_NOTE = ("rows in different groups were evaluated under different protocols (dataset, image set, seed, "
               "attack settings, ε) and are not ranked against each other")
#: The PGD settings a protocol compares, with their older names (runs recorded before the suite renamed them).
PGD_SETTINGS = {"pgd_steps": "steps", "pgd_restarts": "restarts", "pgd_rel_stepsize": "rel_stepsize"}

assert set(INT_COLUMNS + OPTIONAL_INT_COLUMNS + FLOAT_COLUMNS) <= set(LEADERBOARD_COLUMNS)


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
        fields = _complete(fields)
        row = dict(zip(LEADERBOARD_COLUMNS, fields))
        for column in INT_COLUMNS + OPTIONAL_INT_COLUMNS:
            if column in INT_COLUMNS or row[column].strip():
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
        if bool(row["autoattack_accuracy"].strip()) != bool(row["autoattack_n_images"].strip()):
            raise RobenchError(f"{path} line {line}: autoattack_accuracy and autoattack_n_images must be both "
                               "given or both empty")
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
LEGACY_DEFAULTS = ["robench"] + [""] * (len(LEADERBOARD_COLUMNS) - len(HEADLINE_COLUMNS) - 1)


def _complete(fields: list[str]) -> list[str]:
    """A legacy row's fields completed to the full schema; in a row without the trace columns the AutoAttack
    accuracy, if any, came from the run itself, so on all ``n_images``."""
    if len(fields) == len(LEADERBOARD_COLUMNS):
        return fields
    out = fields + LEGACY_DEFAULTS[len(fields) - len(HEADLINE_COLUMNS):]
    n_at = LEADERBOARD_COLUMNS.index("autoattack_n_images")
    if len(fields) <= n_at and fields[LEADERBOARD_COLUMNS.index("autoattack_accuracy")].strip():
        out[n_at] = fields[LEADERBOARD_COLUMNS.index("n_images")]
    return out


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
        elif column in OPTIONAL_INT_COLUMNS:
            columns[column] = pd.Series([int(v) if v.strip() else pd.NA for v in values], dtype="Int64")
        elif column in FLOAT_COLUMNS:
            columns[column] = pd.Series([float(v) if v.strip() else math.nan for v in values], dtype="float64")
        else:
            columns[column] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, columns=LEADERBOARD_COLUMNS)


# ---------------------------------------------------------------------------------------------- writing


def _format(column: str, value: Any) -> str:
    if column in INT_COLUMNS:
        return str(int(value))
    if column in OPTIONAL_INT_COLUMNS:
        return "" if value is None or pd.isna(value) else str(int(value))
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
    """The :data:`PROVENANCE_COLUMNS` of a row from a model card (a mapping with some of those keys, and
    optionally ``method``, which :func:`card_method` reads).

    ``origin`` defaults to ``robench``; the stated accuracies are fractions in [0, 1] (missing: NaN);
    the other fields are one-line strings. Unknown keys or bad values raise :class:`RobenchError`.
    """
    card = {k: v for k, v in (card or {}).items() if k != "method"}
    if unknown := sorted(set(card) - set(PROVENANCE_COLUMNS)):
        raise RobenchError(f"model card key(s) {', '.join(unknown)} unknown; use {', '.join(PROVENANCE_COLUMNS)}, "
                           "method")
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


def card_method(card: Mapping[str, Any] | None, recorded: str) -> str:
    """The row's ``method``: the checkpoint's ``recorded`` training method, or, where it records none
    (``unknown``), the card's ``method`` (one of :data:`STATED_METHODS`); a card contradicting a recorded
    method is an error."""
    stated = str((card or {}).get("method") or "").strip()
    if not stated:
        return recorded
    if stated not in STATED_METHODS:
        raise RobenchError(f"model card method is {stated!r}; choose from {', '.join(STATED_METHODS)}")
    if recorded not in ("unknown", stated):
        raise RobenchError(f"model card method {stated!r} contradicts the checkpoint's recorded training "
                           f"method {recorded!r}; leave method out of the card")
    return stated


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, cached while its size and modification time stay the same."""
    return sha256_file(path)


def file_sha256(path: Path) -> str | None:
    """``path``'s sha256, or None when it is not a file."""
    if not path.is_file():
        return None
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def bundled_checkpoints() -> dict[str, str]:
    """sha256 → ``zoo:NAME`` for every bundled model file (robench/assets/zoo)."""
    return {file_sha256(p): f"zoo:{p.stem}" for p in sorted(zoo_dir().glob("*.pt"))}  # type: ignore[misc]


def checkpoint_location(run: Run) -> str:
    """Where a run's checkpoint is: ``zoo:NAME`` when its sha256 is a bundled model's, else the path the run
    recorded (relative to the current directory when inside it)."""
    model = run.meta["model"]
    if (bundled := bundled_checkpoints().get(model.get("sha256", ""))) is not None:
        return bundled
    recorded = Path(str(model.get("path") or ""))
    if not recorded.parts:
        return ""
    if recorded.is_absolute() and recorded.is_relative_to(Path.cwd()):
        return str(recorded.relative_to(Path.cwd()))
    return str(recorded)


def checkpoint_problem(row: Mapping[str, Any], root: str | Path = ".") -> str | None:
    """Why a robench-trained row cannot be traced to its checkpoint (None when it can, and for third-party rows).

    The row's ``checkpoint`` must be a bundled model (``zoo:NAME``) or a file (relative paths from ``root``)
    whose sha256 is the row's ``checkpoint_sha256``.
    """
    if row["origin"] != "robench":
        return None
    sha, where = str(row["checkpoint_sha256"]), str(row["checkpoint"])
    if where.startswith("zoo:"):
        if bundled_checkpoints().get(sha) == where:
            return None
    elif where and file_sha256(Path(root) / where) == sha:
        return None
    return (f"row {row['name']!r}: its robench-trained checkpoint {where or '(no path recorded)'} (sha256 "
            f"{sha[:12] or 'none'}) is neither a bundled zoo model nor a file with that sha256")


def stale_rows(frame: pd.DataFrame, root: str | Path = ".") -> list[str]:
    """:func:`checkpoint_problem` of every row that has one."""
    return [problem for row in _rows(frame) if (problem := checkpoint_problem(row, root))]


def _weights_sha256s(sha: str) -> set[str]:
    """The sha256s of files holding the same weights as checkpoint ``sha``: itself and, for a bundled model, the
    source file it was packed from (``zoo.json`` ``source_sha256``; experiments/pack_zoo.py copies the weights)."""
    name = bundled_checkpoints().get(sha, "").removeprefix("zoo:")
    record_path = zoo_dir() / "zoo.json"
    records = json.loads(record_path.read_text()) if name and record_path.is_file() else {}
    return {sha} | ({records[name]["source_sha256"]} if name in records else set())


def _autoattack_at(run: Run, eps: float) -> tuple[float, int | None]:
    """A run's AutoAttack robust accuracy at ``eps`` and its image count; (NaN, None) when it has none."""
    rows = run.rows("autoattack", "robust_accuracy")
    at = rows[[not math.isnan(eps) and math.isclose(float(p), eps, rel_tol=1e-5) for p in rows["param"]]]
    return (float(at["value"].iloc[0]), int(at["n"].iloc[0])) if len(at) else (math.nan, None)


def _separate_autoattack(run: Run, attack: Run, row: Mapping[str, Any]) -> tuple[float, int]:
    """The AutoAttack result of ``attack``, a separate run of ``run``'s checkpoint on some of its images, at the
    row's PGD ε; one-line errors when it is not one."""
    where = f"AutoAttack run {attack.path}"
    if attack.meta["model"].get("sha256") not in _weights_sha256s(str(row["checkpoint_sha256"])):
        raise RobenchError(f"{where} evaluated another checkpoint (sha256 "
                           f"{str(attack.meta['model'].get('sha256'))[:12]}) than {run.path} "
                           f"({str(row['checkpoint_sha256'])[:12]})")
    ours, theirs = run.meta["dataset"], attack.meta["dataset"]
    if (ours.get("name"), ours.get("split")) != (theirs.get("name"), theirs.get("split")):
        raise RobenchError(f"{where} is on {theirs.get('name')}/{theirs.get('split')}, not {row['dataset']}")
    labels = dict(zip(run.per_image["index"], run.per_image["label"]))
    if any(labels.get(i) != y for i, y in zip(attack.per_image["index"], attack.per_image["label"])):
        raise RobenchError(f"{where}: its images are not among the {row['n_images']} images of {run.path}")
    accuracy, n = _autoattack_at(attack, float(row["pgd_eps"]))
    if n is None:
        raise RobenchError(f"{where} has no AutoAttack robust accuracy at the row's PGD ε "
                           f"({FLOAT_FORMAT % row['pgd_eps']})")
    return accuracy, n


def add_run(run_dir: str | Path, name: str | None = None, path: str | Path = DEFAULT_PATH,
            card: Mapping[str, Any] | None = None, autoattack: str | Path | None = None) -> list[str]:
    """Add (or replace, by name) the headline row of a finished run; returns one-line messages.

    ``card`` gives the row's provenance (:func:`provenance`; default: a robench-trained model) and may
    state its training ``method`` (:func:`card_method`). ``autoattack`` is a separate run of the same
    checkpoint with AutoAttack on some of the run's images: the row takes its robust accuracy at the row's
    PGD ε and its image count (a run with its own AutoAttack result takes that one). A robench-trained row
    whose checkpoint does not exist (:func:`checkpoint_problem`) is refused. Messages starting with
    ``warning:`` flag a likely mistake: the same checkpoint evaluated with the same settings is already on
    the leaderboard under another name (the row is added anyway).
    """
    path = Path(path)
    run = load_run(run_dir)
    row = {**headline(run), **provenance(card), "checkpoint": checkpoint_location(run)}
    row["method"] = card_method(card, row["method"])
    accuracy, n = _autoattack_at(run, row["pgd_eps"])
    if autoattack is not None:
        if n is not None:
            raise RobenchError(f"run {run_dir} has its own AutoAttack result; --autoattack is for a run without one")
        accuracy, n = _separate_autoattack(run, load_run(autoattack), row)
    row["autoattack_accuracy"], row["autoattack_n_images"] = accuracy, pd.NA if n is None else n
    if name is not None:
        row["name"] = name
    row["name"] = str(row["name"]).strip()
    if not row["name"] or any(c in row["name"] for c in "\r\n"):
        raise RobenchError(f"leaderboard name {row['name']!r} must be non-empty and on one line; pass --name")
    if problem := checkpoint_problem(row):
        raise RobenchError(f"{problem}; add runs of checkpoints that exist (run add where the evaluation ran), "
                           "or give a model card with origin third-party")
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


def protocol(row: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two rows' robust accuracies comparable: the dataset (content fingerprint, split), the image
    count and seed, and the attack (the adversarial suite's library and PGD settings, at the row's ``pgd_eps``;
    None without one). The other suites' settings do not matter here."""
    settings = json.loads(row["settings"]) if str(row["settings"]).strip() else {}
    adversarial = settings.get("suites", {}).get("adversarial")
    attack = None
    if adversarial is not None and not math.isnan(row["pgd_eps"]):
        attack = {"library": adversarial.get("attack_library"), "eps": FLOAT_FORMAT % row["pgd_eps"],
                  **{k: adversarial.get(k, adversarial.get(old)) for k, old in PGD_SETTINGS.items()}}
    return {"dataset": settings.get("dataset"), "split": settings.get("split"), "n_images": int(row["n_images"]),
            "seed": settings.get("seed"), "attack": attack}


def protocol_key(row: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of :func:`protocol`."""
    return hashlib.sha256(json.dumps(protocol(row), sort_keys=True).encode()).hexdigest()[:12]


def robust_accuracy(row: Mapping[str, Any]) -> tuple[float, str]:
    """The robust accuracy a row is ranked by and its source: AutoAttack's where the row has it
    (``autoattack (n=500)``), else PGD's, an upper bound (``pgd-10 (upper bound)``); (NaN, '') with neither."""
    if not math.isnan(row["autoattack_accuracy"]):
        return row["autoattack_accuracy"], f"autoattack (n={int(row['autoattack_n_images'])})"
    if not math.isnan(row["pgd_accuracy"]):
        steps = (protocol(row)["attack"] or {}).get("pgd_steps")
        return row["pgd_accuracy"], f"pgd{f'-{steps}' if steps else ''} (upper bound)"
    return math.nan, ""


def ranked(frame: pd.DataFrame, sort: str | None = None) -> pd.DataFrame:
    """``frame`` with :data:`RANKING_COLUMNS`, ordered by group (first appearance) then rank.

    Groups are rows of one :func:`protocol`, whatever their origin; ``rank`` is 1-based within the group by
    ``sort`` (default ``robust_accuracy``, :func:`robust_accuracy`; descending for :data:`HIGHER_IS_BETTER`,
    ascending for :data:`LOWER_IS_BETTER`). Ties share the better rank; rows lacking the value get no rank
    (<NA>) and come last.
    """
    sort = sort or DEFAULT_SORT
    if sort not in SORT_COLUMNS:
        raise RobenchError(f"cannot sort by {sort!r}; choose from {', '.join(SORT_COLUMNS)}")
    ascending = sort in LOWER_IS_BETTER
    frame = frame.reset_index(drop=True).copy()
    rows = _rows(frame)
    key = pd.Series([protocol_key(r) for r in rows], dtype=object)
    keys = list(dict.fromkeys(key))
    robust = [robust_accuracy(r) for r in rows]
    frame["group"] = key.map({k: _letters(i) for i, k in enumerate(keys)})
    frame["protocol_key"] = key
    frame["robust_accuracy"] = pd.Series([value for value, _ in robust], dtype="float64")
    frame["robust_accuracy_source"] = pd.Series([source for _, source in robust], dtype=object)
    frame["rank"] = frame.groupby(key, sort=False)[sort].rank(method="min", ascending=ascending).astype("Int64")
    frame["_group_order"] = key.map({k: i for i, k in enumerate(keys)})
    frame = frame.sort_values(["_group_order", sort], ascending=[True, ascending], na_position="last", kind="stable")
    return frame[LEADERBOARD_COLUMNS + RANKING_COLUMNS].reset_index(drop=True)


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
        among = "all origins together (column origin)" if origin is None else f"{origin} rows only (--origin)"
        notes.append(f"ranked by {sort} ({order} is better) within each group of one evaluation protocol, {among}")
    if sort == "robust_accuracy" and len(table):
        autoattack = int(table["robust_accuracy_source"].str.startswith("autoattack").sum())
        pgd = int(table["robust_accuracy_source"].str.startswith("pgd").sum())
        notes.append(f"robust_accuracy is AutoAttack's where the row has it ({autoattack} row(s), on the image count "
                     f"robust_accuracy_source gives), else PGD's, an upper bound ({pgd} row(s))")
    if table["group"].nunique() > 1:
        notes.append(GROUPS_NOTE)
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
    the notes (ranking rule, robust-accuracy sources, different-protocols warning); csv is the data alone
    (the ``group`` column tells the groups apart).
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
    numeric = FLOAT_COLUMNS + INT_COLUMNS + OPTIONAL_INT_COLUMNS + ["rank", "robust_accuracy"]
    return "right" if column in numeric else "left"


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
