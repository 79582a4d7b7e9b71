"""The CSV leaderboard: add/replace/remove, grouping and ranking, corrupt files, locking, the CLI.

Ranking across origins, AutoAttack rows, the checkpoint check and the committed file: test_leaderboard_ranking.py.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import multiprocessing
import shutil
import time
from pathlib import Path

import filelock
import pandas as pd
import pytest
from conftest import committed  # tests/ is on sys.path (no package)

from robench.errors import RobenchError
from robench.io import gzip_bytes
from robench.reports import leaderboard as lb
from robench.reports.runs import (
    ALIGNMENT_COLUMNS,
    ATTRIBUTION_COLUMNS,
    HEADLINE_COLUMNS,
    PER_IMAGE_FILE,
    headline,
    load_run,
)

ZOO = Path(__file__).resolve().parents[1] / "reports" / "zoo"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of the three finished zoo runs (standard, pgd-at, igd)."""
    committed(*(ZOO / n / "meta.json" for n in ("standard", "pgd-at", "igd")))
    base = tmp_path_factory.mktemp("zoo")
    return {n: Path(shutil.copytree(ZOO / n, base / n)) for n in ("standard", "pgd-at", "igd")}


@pytest.fixture
def board(tmp_path: Path, zoo: dict[str, Path]) -> Path:
    """A leaderboard with standard and pgd-at."""
    path = tmp_path / "lb" / "leaderboard.csv"
    lb.add_run(zoo["standard"], path=path)
    lb.add_run(zoo["pgd-at"], path=path)
    return path


def fewer_images(run: Path, dest: Path, n: int) -> Path:
    """A copy of ``run`` claiming ``n`` images (meta.json and per_image.csv.gz agree): other settings."""
    shutil.copytree(run, dest)
    meta = json.loads((dest / "meta.json").read_text())
    meta["n_images"] = n
    (dest / "meta.json").write_text(json.dumps(meta))
    lines = gzip.decompress((dest / PER_IMAGE_FILE).read_bytes()).decode().splitlines(keepends=True)
    (dest / PER_IMAGE_FILE).write_bytes(gzip_bytes("".join(lines[: n + 1]).encode()))
    return dest


def ranks(path: Path, sort: str | None = None) -> dict[str, object]:
    table = pd.read_csv(io.StringIO(lb.show(path, sort=sort, fmt="csv")))
    return {row.name: (None if pd.isna(row.rank) else int(row.rank)) for row in table.itertuples()}


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------- add/show/remove


def test_round_trip(tmp_path: Path, zoo: dict[str, Path]) -> None:
    path = tmp_path / "new" / "dir" / "leaderboard.csv"
    schema = HEADLINE_COLUMNS + lb.PROVENANCE_COLUMNS + ATTRIBUTION_COLUMNS + lb.TRACE_COLUMNS + ALIGNMENT_COLUMNS
    assert lb.read_leaderboard(path).columns.tolist() == schema
    assert len(lb.read_leaderboard(path)) == 0
    assert lb.add_run(zoo["igd"], path=path) == [f"added igd to {path}"]
    assert lb.add_run(zoo["standard"], path=path) == [f"added standard to {path}"]

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == lb.LEADERBOARD_COLUMNS == schema and len(schema) == 44
    assert [r[0] for r in rows[1:]] == ["igd", "standard"]
    assert all(len(r) == len(lb.LEADERBOARD_COLUMNS) for r in rows)

    frame = lb.read_leaderboard(path)
    expected = headline(load_run(zoo["igd"]))
    got = frame.iloc[0].to_dict()
    for column in HEADLINE_COLUMNS:
        want = expected[column]
        if isinstance(want, float):
            assert (math.isnan(want) and math.isnan(got[column])) or got[column] == pytest.approx(want, rel=1e-5), column
        else:
            assert got[column] == want, column
    assert frame["n_images"].tolist() == [1000, 1000]
    assert math.isnan(frame["autoattack_accuracy"][0])  # the zoo runs did not run AutoAttack
    assert frame["autoattack_n_images"].isna().all()
    assert frame["checkpoint"].tolist() == ["zoo:igd", "zoo:standard"]  # the bundled files, wherever the run was

    table = lb.show(path)
    lines = table.splitlines()
    assert lines[0].split()[:8] == ["name", "group", "rank", "method", "origin", "clean_accuracy", "robust_accuracy",
                                    "robust_accuracy_source"]
    assert lines[2].split()[:12] == ["igd", "A", "1", "igd", "robench", "0.722", "0.422", "pgd-10", "(upper", "bound)",
                                     "0.422", "-"]
    assert lines[3].split()[:3] == ["standard", "A", "2"]
    assert "ranked by robust_accuracy (higher is better)" in table
    assert "not ranked against each other" not in table  # one group only

    assert lb.remove("igd", path) == f"removed igd from {path}"
    assert lb.read_leaderboard(path)["name"].tolist() == ["standard"]
    assert lb.remove("standard", path) == f"removed standard from {path}"
    assert path.read_text().splitlines() == [",".join(lb.LEADERBOARD_COLUMNS)]
    assert "has no rows" in lb.show(path)
    assert leftovers(path) == []


def test_name_option_and_replace(board: Path, zoo: dict[str, Path]) -> None:
    before = lb.read_leaderboard(board)
    assert before.set_index("name").loc["pgd-at", "method"] == "pgd-at"
    # same name, different run: the row is replaced in place, not appended
    messages = lb.add_run(zoo["igd"], name="pgd-at", path=board)
    assert messages == [f"replaced the existing row pgd-at in {board}"]
    after = lb.read_leaderboard(board)
    assert after["name"].tolist() == ["standard", "pgd-at"]
    assert after.set_index("name").loc["pgd-at", "method"] == "igd"
    assert after.set_index("name").loc["pgd-at", "checkpoint_sha256"] == headline(load_run(zoo["igd"]))[
        "checkpoint_sha256"]


def test_same_checkpoint_and_settings_warns(board: Path, zoo: dict[str, Path]) -> None:
    messages = lb.add_run(zoo["standard"], name="standard-again", path=board)
    assert messages == [f"added standard-again to {board}",
                        "warning: the same checkpoint and settings are already on the leaderboard as standard"]
    assert lb.read_leaderboard(board)["name"].tolist() == ["standard", "pgd-at", "standard-again"]
    # a different checkpoint under a new name does not warn
    assert lb.add_run(zoo["igd"], name="igd-x", path=board) == [f"added igd-x to {board}"]
    # equal values share the better rank; the next rank skips
    assert ranks(board, "clean_accuracy") == {"standard": 1, "standard-again": 1, "igd-x": 3, "pgd-at": 4}


def test_same_checkpoint_other_settings_does_not_warn(board: Path, zoo: dict[str, Path], tmp_path: Path) -> None:
    other = fewer_images(zoo["standard"], tmp_path / "std500", 500)
    assert lb.add_run(other, name="standard-500", path=board) == [f"added standard-500 to {board}"]


def test_different_settings_are_separate_groups(board: Path, zoo: dict[str, Path], tmp_path: Path) -> None:
    small_std = fewer_images(zoo["standard"], tmp_path / "std500", 500)
    small_igd = fewer_images(zoo["igd"], tmp_path / "igd500", 500)
    assert headline(load_run(small_std))["settings_key"] != headline(load_run(zoo["standard"]))["settings_key"]
    lb.add_run(small_std, name="standard-500", path=board)
    lb.add_run(zoo["igd"], path=board)
    lb.add_run(small_igd, name="igd-500", path=board)

    table = pd.read_csv(io.StringIO(lb.show(board, fmt="csv")))
    assert table.columns.tolist() == lb.LEADERBOARD_COLUMNS + lb.RANKING_COLUMNS
    # groups in order of first appearance, ranks restart in each group
    assert list(zip(table["name"], table["group"], table["rank"])) == [
        ("pgd-at", "A", 1), ("igd", "A", 2), ("standard", "A", 3),
        ("igd-500", "B", 1), ("standard-500", "B", 2),
    ]
    assert table.groupby("group")["settings_key"].nunique().tolist() == [1, 1]
    assert table.groupby("group")["n_images"].first().tolist() == [1000, 500]

    for fmt in ("table", "markdown", "html"):
        text = lb.show(board, fmt=fmt)
        assert "different protocols (dataset, image set, seed, attack settings, ε) and are not ranked against " \
               "each other" in text, fmt
    # csv stays parseable: the note is not in the data, but show_parts returns it
    assert "not ranked against" not in lb.show(board, fmt="csv")
    assert lb.GROUPS_NOTE in lb.show_parts(board, fmt="csv")[1]


def test_sort_directions(tmp_path: Path, zoo: dict[str, Path]) -> None:
    path = tmp_path / "lb.csv"
    for run in ("standard", "pgd-at", "igd"):
        lb.add_run(zoo[run], path=path)
    # pgd accuracy: standard 0.000, igd 0.422, pgd-at 0.426 → descending by default
    assert ranks(path) == {"pgd-at": 1, "igd": 2, "standard": 3}
    assert ranks(path, "pgd_accuracy") == ranks(path)
    # clean accuracy: higher is better
    assert ranks(path, "clean_accuracy") == {"standard": 1, "igd": 2, "pgd-at": 3}
    # Gini: lower is better (standard 0.534 < igd 0.603 < pgd-at 0.618)
    assert ranks(path, "gini_pixel") == {"standard": 1, "igd": 2, "pgd-at": 3}
    # error rates: lower is better (ina: pgd-at 0.050 < igd 0.053 < standard 0.410)
    assert ranks(path, "ina_error") == {"pgd-at": 1, "igd": 2, "standard": 3}
    text = lb.show(path, sort="gini_pixel")
    assert "ranked by gini_pixel (lower is better)" in text
    assert [line.split()[0] for line in text.splitlines()[2:5]] == ["standard", "igd", "pgd-at"]
    # a column no row has: nobody is ranked, and show says why
    assert ranks(path, "autoattack_accuracy") == {"standard": None, "pgd-at": None, "igd": None}
    assert "3 row(s) have no autoattack_accuracy and are not ranked" in lb.show(path, sort="autoattack_accuracy")


def test_unknown_sort_column_and_format(board: Path) -> None:
    with pytest.raises(RobenchError, match=r"cannot sort by 'accuracy'; choose from robust_accuracy, clean_accuracy, "
                                           r"pgd_accuracy, autoattack_accuracy, gini_pixel, .*noise_corruption_error$"):
        lb.show(board, sort="accuracy")
    with pytest.raises(RobenchError, match="unknown format 'json'; choose from table, csv, markdown, html"):
        lb.show(board, fmt="json")


def test_remove_unknown_name_lists_names(board: Path, tmp_path: Path) -> None:
    before = board.read_bytes()
    with pytest.raises(RobenchError, match=r"no row called 'nope' in .*leaderboard.csv; it has standard, pgd-at$"):
        lb.remove("nope", board)
    assert board.read_bytes() == before
    with pytest.raises(RobenchError, match="no leaderboard at"):
        lb.remove("x", tmp_path / "missing.csv")
    with pytest.raises(RobenchError, match="no leaderboard at .*missing.csv; add a run with"):
        lb.show(tmp_path / "missing.csv")


def test_markdown_and_html(board: Path) -> None:
    md = lb.show(board, fmt="markdown").splitlines()
    assert md[0].replace(" ", "").startswith("|name|group|rank|arch|method|dataset|n_images|clean_accuracy|")
    assert md[2].replace(" ", "").startswith("|pgd-at|A|1|airbench_s|pgd-at|cifar10-sample/test|1000|0.707|0.426|")
    html = lb.show(board, fmt="html")
    assert html.startswith("<table") and "<td>pgd-at</td>" in html and "<td>0.426</td>" in html


# ---------------------------------------------------------------------------------------------- corrupt files


def _corrupt_header(lines: list[bytes]) -> tuple[list[bytes], str]:
    lines[0] = lines[0].replace(b"gini_pixel", b"gini")
    return lines, r"line 1: header does not match the leaderboard schema \(column 11 is 'gini', expected 'gini_pixel'\)"


def _short_row(lines: list[bytes]) -> tuple[list[bytes], str]:
    lines[2] = lines[2].rstrip(b"\n").rsplit(b",", 1)[0] + b"\n"
    width = len(lb.LEADERBOARD_COLUMNS)
    return lines, f"line 3: expected {width} fields, found {width - 1}$"


def _not_a_number(lines: list[bytes]) -> tuple[list[bytes], str]:
    lines[2] = lines[2].replace(b",0.707,0.426,", b",0.707,high,")
    return lines, "line 3: column 'pgd_accuracy' is 'high', not a number"


def _bad_count(lines: list[bytes]) -> tuple[list[bytes], str]:
    lines[1] = lines[1].replace(b",1000,", b",1e3x,", 1)
    return lines, "line 2: column 'n_images' is '1e3x', not a whole number"


def _duplicate(lines: list[bytes]) -> tuple[list[bytes], str]:
    return lines + [lines[1]], "line 4: duplicate name 'standard' \\(also on line 2\\)"


def _garbage(lines: list[bytes]) -> tuple[list[bytes], str]:
    return lines + [b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage\n"], "line 4: bytes that are not UTF-8 text"


def _nul(lines: list[bytes]) -> tuple[list[bytes], str]:
    lines[2] = lines[2].replace(b"pgd-at", b"pgd\x00at", 1)
    return lines, "line 3: NUL bytes"


def _empty(lines: list[bytes]) -> tuple[list[bytes], str]:
    return [], "line 1: empty file"


CORRUPTIONS = [_corrupt_header, _short_row, _not_a_number, _bad_count, _duplicate, _garbage, _nul, _empty]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__.strip("_") for c in CORRUPTIONS])
def test_corrupt_file_names_the_line_and_is_left_alone(board: Path, zoo: dict[str, Path], corrupt) -> None:  # type: ignore[no-untyped-def]
    lines, message = corrupt(board.read_bytes().splitlines(keepends=True))
    board.write_bytes(b"".join(lines))
    before = board.read_bytes()
    pattern = f"^{board} {message}"
    with pytest.raises(RobenchError, match=pattern) as info:
        lb.read_leaderboard(board)
    assert "\n" not in str(info.value)
    with pytest.raises(RobenchError, match=pattern):
        lb.add_run(zoo["igd"], path=board)
    with pytest.raises(RobenchError, match=pattern):
        lb.remove("standard", board)
    with pytest.raises(RobenchError, match=pattern):
        lb.show(board)
    assert board.read_bytes() == before
    assert leftovers(board) == []


def test_blank_lines_are_tolerated_and_lines_still_counted(board: Path) -> None:
    lines = board.read_bytes().splitlines(keepends=True)
    board.write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + lines[2].replace(b",0.426,", b",x,"))
    with pytest.raises(RobenchError, match=r"line 5: column 'pgd_accuracy' is 'x'"):
        lb.read_leaderboard(board)
    board.write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + lines[2] + b"\n")
    assert lb.read_leaderboard(board)["name"].tolist() == ["standard", "pgd-at"]


def test_bad_name_is_refused(board: Path, zoo: dict[str, Path]) -> None:
    before = board.read_bytes()
    for bad in ("", "  ", "two\nlines"):
        with pytest.raises(RobenchError, match="must be non-empty and on one line"):
            lb.add_run(zoo["igd"], name=bad, path=board)
    assert board.read_bytes() == before


# ---------------------------------------------------------------------------------------------- locking


def test_lock_timeout_is_a_clear_error(board: Path, zoo: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lb, "LOCK_TIMEOUT", 0.2)
    before = board.read_bytes()
    with filelock.FileLock(f"{board}.lock"):
        start = time.monotonic()
        with pytest.raises(RobenchError, match=r"could not lock .*leaderboard.csv.lock within 0.2 s: another process "
                                               r"is changing the leaderboard"):
            lb.add_run(zoo["igd"], path=board)
        assert time.monotonic() - start < 5
        with pytest.raises(RobenchError, match="could not lock"):
            lb.remove("standard", board)
    assert board.read_bytes() == before
    assert lb.add_run(zoo["igd"], path=board) == [f"added igd to {board}"]  # released: works again


def _add_many(run_dir: str, path: str, worker: int, count: int, barrier) -> None:  # type: ignore[no-untyped-def]
    barrier.wait(timeout=60)
    for j in range(count):
        lb.add_run(run_dir, name=f"w{worker}-{j}", path=path)


@pytest.mark.slow
def test_concurrent_adds_lose_nothing(tmp_path: Path, zoo: dict[str, Path]) -> None:
    workers, count = 8, 10
    path = tmp_path / "shared" / "leaderboard.csv"
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_add_many, args=(str(zoo["igd"]), str(path), i, count, barrier))
             for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers
    frame = lb.read_leaderboard(path)
    assert len(frame) == workers * count
    assert sorted(frame["name"]) == sorted(f"w{i}-{j}" for i in range(workers) for j in range(count))
    for i in range(workers):  # each worker's rows in its own order
        mine = [n for n in frame["name"] if n.startswith(f"w{i}-")]
        assert mine == [f"w{i}-{j}" for j in range(count)]
    assert leftovers(path) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["leaderboard.csv", "leaderboard.csv.lock"]


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_add_show_remove(cli, tmp_path: Path, zoo: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "lb.csv"
    r = cli("leaderboard", "add", zoo["standard"], "--file", path)
    assert (r.code, r.out.strip(), r.err) == (0, f"added standard to {path}", "")
    r = cli("leaderboard", "add", zoo["igd"], "--file", path)
    assert (r.code, r.out.strip()) == (0, f"added igd to {path}")
    r = cli("leaderboard", "add", zoo["igd"], "--name", "igd-twin", "--file", path)
    assert r.code == 0
    assert r.out.strip() == f"added igd-twin to {path}"
    assert r.err.strip() == "warning: the same checkpoint and settings are already on the leaderboard as igd"
    r = cli("leaderboard", "add", zoo["pgd-at"], "--name", "igd-twin", "--file", path)
    assert (r.code, r.out.strip(), r.err) == (0, f"replaced the existing row igd-twin in {path}", "")

    r = cli("leaderboard", "show", "--file", path)
    assert r.code == 0
    body = r.out.splitlines()
    assert [line.split()[:3] for line in body[2:5]] == [["igd-twin", "A", "1"], ["igd", "A", "2"],
                                                        ["standard", "A", "3"]]  # igd-twin holds the pgd-at run
    assert "ranked by robust_accuracy (higher is better)" in r.out

    r = cli("leaderboard", "show", "--sort", "gini_region", "--format", "csv", "--file", path)
    assert r.code == 0
    table = pd.read_csv(io.StringIO(r.out))
    assert table["name"].tolist() == ["standard", "igd", "igd-twin"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert "ranked by gini_region (lower is better)" in r.err

    r = cli("leaderboard", "show", "--format", "markdown", "--file", path)
    assert r.code == 0 and r.out.startswith("| name")

    r = cli("leaderboard", "remove", "igd-twin", "--file", path)
    assert (r.code, r.out.strip()) == (0, f"removed igd-twin from {path}")
    assert lb.read_leaderboard(path)["name"].tolist() == ["standard", "igd"]


def test_cli_errors_are_one_line(cli, tmp_path: Path, zoo: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "lb.csv"
    r = cli("leaderboard", "add", tmp_path / "no-such-run", "--file", path)
    assert r.code == 2
    assert r.err.strip() == f"robench: error: run directory {tmp_path / 'no-such-run'} does not exist"
    assert not path.exists()

    unfinished = Path(shutil.copytree(zoo["standard"], tmp_path / "unfinished"))
    (unfinished / "meta.json").unlink()
    (unfinished / ".partial").touch()
    r = cli("leaderboard", "add", unfinished, "--file", path)
    assert r.code == 2
    assert r.err.startswith("robench: error: run ") and "is unfinished" in r.err
    assert r.err.count("\n") == 1 and "Traceback" not in r.err

    lb.add_run(zoo["standard"], path=path)
    r = cli("leaderboard", "show", "--sort", "bogus", "--file", path)
    assert r.code == 2 and r.err.startswith("robench: error: cannot sort by 'bogus'; choose from robust_accuracy")
    assert r.err.count("\n") == 1
    r = cli("leaderboard", "remove", "bogus", "--file", path)
    assert (r.code, r.err.strip()) == (2, f"robench: error: no row called 'bogus' in {path}; it has standard")

    path.write_text(path.read_text().replace(",1000,", ",many,", 1))
    r = cli("leaderboard", "show", "--file", path)
    assert r.code == 2
    assert r.err.strip() == f"robench: error: {path} line 2: column 'n_images' is 'many', not a whole number"


# ---------------------------------------------------------------------------------------------- provenance

CARD = {"origin": "third-party", "source": "someone/repo@abc123 weights/", "licence": "MIT",
        "training_stated": "PGD-AT", "eps_stated": "8/255", "stated_clean_accuracy": "0.84",
        "stated_meaning": "clean: README"}


def test_model_card_columns_origin_filter_and_grouping(board: Path, zoo: dict[str, Path]) -> None:
    assert lb.add_run(zoo["igd"], name="lab/igd", path=board, card=CARD) == [f"added lab/igd to {board}"]
    frame = lb.read_leaderboard(board).set_index("name")
    assert frame.loc["lab/igd", "origin"] == "third-party" and frame.loc["lab/igd", "licence"] == "MIT"
    assert frame.loc["lab/igd", "stated_clean_accuracy"] == pytest.approx(0.84)
    assert math.isnan(frame.loc["lab/igd", "stated_robust_accuracy"])
    assert frame.loc["standard", "origin"] == "robench" and frame.loc["standard", "source"] == ""
    # same protocol as the robench rows, another origin: ranked with them
    table = pd.read_csv(io.StringIO(lb.show(board, fmt="csv")))
    assert table[["name", "group", "rank"]].values.tolist() == [["pgd-at", "A", 1], ["lab/igd", "A", 2],
                                                                 ["standard", "A", 3]]
    only = pd.read_csv(io.StringIO(lb.show(board, fmt="csv", origin="third-party")))
    assert only["name"].tolist() == ["lab/igd"] and only["group"].tolist() == ["A"]
    assert lb.show(board, origin="robench").count("third-party") == 0
    assert "someone/repo@abc123" in lb.show(board, fmt="markdown")
    with pytest.raises(RobenchError, match="unknown origin 'lab'; choose from robench, third-party"):
        lb.show(board, origin="lab")


@pytest.mark.parametrize(("card", "message"), [
    ({"origin": "elsewhere"}, "model card origin is 'elsewhere'; choose from robench, third-party"),
    ({"licence": "MIT", "url": "x"}, "model card key\\(s\\) url unknown"),
    ({"stated_clean_accuracy": "93%"}, "model card stated_clean_accuracy is '93%', not a number"),
    ({"stated_robust_accuracy": 69.7}, "accuracies are fractions in \\[0, 1\\]"),
    ({"source": "a\nb"}, "model card source must be on one line"),
])
def test_bad_model_card_is_refused(board: Path, zoo: dict[str, Path], card: dict, message: str) -> None:
    before = board.read_bytes()
    with pytest.raises(RobenchError, match=message):
        lb.add_run(zoo["igd"], path=board, card=card)
    assert board.read_bytes() == before


def test_legacy_file_without_provenance_still_loads(board: Path) -> None:
    frame = lb.read_leaderboard(board)
    legacy = board.parent / "legacy.csv"
    legacy.write_text(frame[HEADLINE_COLUMNS].to_csv(index=False, lineterminator="\n"))
    old = lb.read_leaderboard(legacy)
    assert old.columns.tolist() == lb.LEADERBOARD_COLUMNS and old["origin"].tolist() == ["robench", "robench"]
    assert old["name"].tolist() == ["standard", "pgd-at"] and (old["source"] == "").all()
    lines = legacy.read_text().splitlines()
    legacy.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0]]) + "\n")
    with pytest.raises(RobenchError, match="line 2: expected 25 fields, found 24"):
        lb.read_leaderboard(legacy)
    committed = Path(__file__).resolve().parents[1] / "reports" / "leaderboard.csv"
    assert set(lb.read_leaderboard(committed)["origin"]) <= set(lb.ORIGINS)


def test_cli_card_and_origin(cli, tmp_path: Path, zoo: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    path, card = tmp_path / "lb.csv", tmp_path / "card.json"
    card.write_text(json.dumps(CARD))
    assert cli("leaderboard", "add", zoo["standard"], "--file", path).code == 0
    r = cli("leaderboard", "add", zoo["igd"], "--name", "lab/igd", "--card", card, "--file", path)
    assert (r.code, r.out.strip()) == (0, f"added lab/igd to {path}")
    r = cli("leaderboard", "show", "--origin", "third-party", "--file", path)
    assert r.code == 0 and "lab/igd" in r.out and "standard " not in r.out
    r = cli("leaderboard", "show", "--file", path)
    assert [line.split()[:3] for line in r.out.splitlines()[2:4]] == [["lab/igd", "A", "1"], ["standard", "A", "2"]]
    card.write_text("[1, 2]")
    r = cli("leaderboard", "add", zoo["igd"], "--card", card, "--file", path)
    assert (r.code, r.err.strip()) == (2, f"robench: error: model card {card} must be a JSON object")
