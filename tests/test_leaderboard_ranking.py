"""The leaderboard's trust rules: one ranking per protocol across origins, AutoAttack first with PGD marked as an
upper bound, robench-trained rows only for checkpoints that exist, third-party methods from the manifest, and the
committed reports/leaderboard.csv built from the committed runs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from robench.errors import RobenchError
from robench.io import sha256_file
from robench.reports import leaderboard as lb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import build_leaderboard  # noqa: E402
from build_leaderboard import stated_method  # noqa: E402
from panel import read_manifest  # noqa: E402  (build_leaderboard puts experiments/third_party on sys.path)

COMMITTED = ROOT / "reports" / "leaderboard.csv"
ZOO = ROOT / "reports" / "zoo"
FAST = ROOT / "reports" / "reproduction" / "cifar10-fast" / "runs"
RECIPE = ROOT / "reports" / "benchmarks" / "fast-recipe" / "runs"
PANEL = ROOT / "reports" / "third-party" / "runs"
IGD_AUTOATTACK = RECIPE / "airbench_s-igd-15ep-autoattack"  # the source file of zoo:igd, 500 images
THIRD_PARTY = {"origin": "third-party", "source": "lab/repo@abc weights/", "licence": "MIT"}


@pytest.fixture(autouse=True)
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs record their checkpoints relative to the repository root, where the leaderboard is built."""
    monkeypatch.chdir(ROOT)


def ranked(path: Path, sort: str | None = None, origin: str | None = None) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(lb.show(path, sort=sort, fmt="csv", origin=origin)), keep_default_na=False,
                       na_values=[""])


def edited_run(run: Path, dest: Path, **model: object) -> Path:
    """A copy of ``run`` whose meta.json records other ``model`` fields (sha256, path)."""
    shutil.copytree(run, dest)
    meta = json.loads((dest / "meta.json").read_text())
    meta["model"].update(model)
    (dest / "meta.json").write_text(json.dumps(meta))
    return dest


# ---------------------------------------------------------------------------------------------- ranking


def test_one_ranking_across_origins_per_protocol(tmp_path: Path) -> None:
    board = tmp_path / "lb.csv"
    lb.add_run(ZOO / "standard", name="zoo:standard", path=board)
    lb.add_run(FAST / "trades", name="study/trades", path=board)  # another suite list, the same protocol
    lb.add_run(PANEL / "oval-cifar_wide_kw", name="lab/wide", path=board, card=THIRD_PARTY)
    lb.add_run(PANEL / "trades-mnist-smallcnn", name="lab/mnist", path=board, card=THIRD_PARTY)
    frame = lb.read_leaderboard(board)
    assert frame["settings_key"].nunique() == 4  # every row's settings differ somewhere ...
    table = ranked(board)
    # ... but the three CIFAR-10 sample rows share the protocol (images, seed, PGD settings at ε = 8/255)
    assert table[["name", "group", "rank", "origin"]].values.tolist() == [
        ["study/trades", "A", 1, "robench"], ["lab/wide", "A", 2, "third-party"], ["zoo:standard", "A", 3, "robench"],
        ["lab/mnist", "B", 1, "third-party"]]
    assert table.groupby("group")["protocol_key"].nunique().tolist() == [1, 1]
    assert lb.protocol(frame.iloc[0].to_dict())["attack"] == {
        "library": "foolbox LinfPGD / FGSM", "eps": "0.0313725", "pgd_steps": 10, "pgd_restarts": 1,
        "pgd_rel_stepsize": 0.25}
    # origin is a column and a filter: the filtered rows are ranked among themselves
    assert ranked(board, origin="third-party")[["name", "group", "rank"]].values.tolist() == [
        ["lab/wide", "A", 1], ["lab/mnist", "B", 1]]
    assert "robench rows only (--origin)" in lb.show(board, origin="robench")
    assert "all origins together" in lb.show(board)


def test_autoattack_first_then_pgd_marked_as_upper_bound(tmp_path: Path) -> None:
    board = tmp_path / "lb.csv"
    lb.add_run(ZOO / "pgd-at", name="zoo:pgd-at", path=board)  # no AutoAttack: PGD-10 0.426
    assert lb.add_run(ZOO / "igd", name="zoo:igd", path=board, autoattack=IGD_AUTOATTACK) == [
        f"added zoo:igd to {board}"]  # PGD-10 0.422, AutoAttack 0.366 on 500 images
    lb.add_run(FAST / "trades-autoattack", name="trades-500", path=board)  # a run with its own AutoAttack
    frame = lb.read_leaderboard(board).set_index("name")
    assert frame.loc["zoo:igd", "autoattack_accuracy"] == pytest.approx(0.366)
    assert frame.loc["zoo:igd", "autoattack_n_images"] == 500 and frame.loc["zoo:igd", "n_images"] == 1000
    assert frame.loc["trades-500", "autoattack_n_images"] == 500 == frame.loc["trades-500", "n_images"]
    assert pd.isna(frame.loc["zoo:pgd-at", "autoattack_n_images"])
    table = ranked(board)
    assert table[["name", "group", "rank", "robust_accuracy", "robust_accuracy_source"]].values.tolist() == [
        ["zoo:pgd-at", "A", 1, pytest.approx(0.426), "pgd-10 (upper bound)"],
        ["zoo:igd", "A", 2, pytest.approx(0.366), "autoattack (n=500)"],
        # evaluated on 500 images: another protocol, not ranked against the 1,000-image rows
        ["trades-500", "B", 1, pytest.approx(0.37), "autoattack (n=500)"]]
    text = lb.show(board)
    assert "AutoAttack's where the row has it (2 row(s)" in text and "an upper bound (1 row(s))" in text
    assert ranked(board, sort="autoattack_accuracy")["name"].tolist() == ["zoo:igd", "zoo:pgd-at", "trades-500"]


def test_separate_autoattack_run_must_match_the_row(tmp_path: Path) -> None:
    board = tmp_path / "lb.csv"
    with pytest.raises(RobenchError, match=r"AutoAttack run .*trades-autoattack evaluated another checkpoint "
                                           r"\(sha256 1ea79b40394f\) than .*zoo/igd \(b20b78c874fe\)$"):
        lb.add_run(ZOO / "igd", path=board, autoattack=FAST / "trades-autoattack")
    with pytest.raises(RobenchError, match=r"has its own AutoAttack result; --autoattack is for a run without one"):
        lb.add_run(FAST / "trades-autoattack", path=board, autoattack=FAST / "trades-autoattack")
    with pytest.raises(RobenchError, match=r"trades-mnist-smallcnn-autoattack: its images are not among the 1000 "
                                           r"images of .*trades-mnist-smallcnn$"):
        lb.add_run(PANEL / "trades-mnist-smallcnn", path=board, card=THIRD_PARTY,
                   autoattack=PANEL / "trades-mnist-smallcnn-autoattack")
    assert not board.exists()


def test_cli_autoattack_option(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    board = tmp_path / "lb.csv"
    r = cli("leaderboard", "add", ZOO / "igd", "--name", "zoo:igd", "--autoattack", IGD_AUTOATTACK, "--file", board)
    assert (r.code, r.out.strip(), r.err) == (0, f"added zoo:igd to {board}", "")
    r = cli("leaderboard", "show", "--file", board)
    assert r.out.splitlines()[2].split()[:9] == ["zoo:igd", "A", "1", "igd", "robench", "0.722", "0.366",
                                                 "autoattack", "(n=500)"]


def test_protocol_reads_the_older_pgd_setting_names() -> None:
    row = lb.read_leaderboard(COMMITTED).iloc[0].to_dict()
    settings = json.loads(row["settings"])
    adversarial = settings["suites"]["adversarial"]
    for new, old in lb.PGD_SETTINGS.items():
        adversarial[old] = adversarial.pop(new)
    older = {**row, "settings": json.dumps(settings)}
    assert lb.protocol(older) == lb.protocol(row) and lb.protocol_key(older) == lb.protocol_key(row)
    assert lb.protocol_key({**row, "pgd_eps": 2 / 255}) != lb.protocol_key(row)


def legacy_board(tmp_path: Path, first_missing: str) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """(the full row, the row read from a file written without the columns from ``first_missing`` on, its path)."""
    board, legacy = tmp_path / "lb.csv", tmp_path / "legacy.csv"
    lb.add_run(FAST / "trades-autoattack", name="trades-500", path=board)
    width = lb.LEADERBOARD_COLUMNS.index(first_missing)
    legacy.write_text(lb.read_leaderboard(board).iloc[:, :width].to_csv(index=False, lineterminator="\n"))
    old = lb.read_leaderboard(legacy)
    assert old.columns.tolist() == lb.LEADERBOARD_COLUMNS
    assert old["autoattack_n_images"].tolist() == [500]  # a legacy row's AutoAttack ran on the run's images
    assert old["reference_model"].tolist() == [""] and old["attribution_cosine"].isna().all()
    return lb.read_leaderboard(board), old, legacy


def test_file_from_before_the_trace_columns_still_reads(tmp_path: Path) -> None:
    _, old, legacy = legacy_board(tmp_path, lb.TRACE_COLUMNS[0])
    assert old["checkpoint"].tolist() == [""]
    assert ranked(legacy)["robust_accuracy_source"].tolist() == ["autoattack (n=500)"]
    assert lb.stale_rows(old) == ["row 'trades-500': its robench-trained checkpoint (no path recorded) (sha256 "
                                  "1ea79b40394f) is neither a bundled zoo model nor a file with that sha256"]


def test_file_from_before_the_alignment_columns_still_reads(tmp_path: Path) -> None:
    full, old, _ = legacy_board(tmp_path, lb.ALIGNMENT_COLUMNS[0])
    assert old["checkpoint"].tolist() == full["checkpoint"].tolist() != [""]


def test_autoattack_accuracy_needs_its_image_count(tmp_path: Path) -> None:
    board = tmp_path / "lb.csv"
    lb.add_run(FAST / "trades-autoattack", name="trades-500", path=board)
    header, row = list(csv.reader(board.read_text().splitlines()))
    assert row[header.index("autoattack_n_images")] == "500"
    row[header.index("autoattack_n_images")] = ""
    with open(board, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, row])
    with pytest.raises(RobenchError, match=r"line 2: autoattack_accuracy and autoattack_n_images must be both "
                                           r"given or both empty$"):
        lb.read_leaderboard(board)


# ---------------------------------------------------------------------------------------------- checkpoints


def test_robench_row_needs_a_checkpoint_that_exists(tmp_path: Path) -> None:
    board = tmp_path / "lb.csv"
    gone = edited_run(ZOO / "igd", tmp_path / "gone", sha256="0" * 64, path=str(tmp_path / "deleted.pt"))
    with pytest.raises(RobenchError, match=r"^row 'igd': its robench-trained checkpoint .*deleted.pt \(sha256 "
                                           r"000000000000\) is neither a bundled zoo model nor a file with that "
                                           r"sha256; add runs of checkpoints that exist"):
        lb.add_run(gone, path=board)
    assert not board.exists()
    assert lb.add_run(gone, name="lab/igd", path=board, card=THIRD_PARTY) == [f"added lab/igd to {board}"]
    # a file with the recorded sha256 is enough; an edited file is not
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    kept = edited_run(ZOO / "igd", tmp_path / "kept", sha256=sha256_file(weights), path=str(weights))
    assert lb.add_run(kept, name="kept", path=board) == [f"added kept to {board}"]
    assert lb.read_leaderboard(board).set_index("name").loc["kept", "checkpoint"] == str(weights)
    weights.write_bytes(b"retrained")
    with pytest.raises(RobenchError, match="neither a bundled zoo model nor a file with that sha256"):
        lb.add_run(kept, name="kept-again", path=board)
    recorded = json.loads((kept / "meta.json").read_text())["model"]["sha256"]
    assert lb.stale_rows(lb.read_leaderboard(board)) == [
        f"row 'kept': its robench-trained checkpoint {weights} (sha256 {recorded[:12]}) is neither a bundled zoo "
        "model nor a file with that sha256"]


def test_cli_refuses_a_stale_robench_row(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gone = edited_run(ZOO / "standard", tmp_path / "gone", sha256="c5e5e6b6ae48" + "0" * 52, path="")
    r = cli("leaderboard", "add", gone, "--file", tmp_path / "lb.csv")
    assert r.code == 2 and r.err.count("\n") == 1
    assert r.err.startswith("robench: error: row 'standard': its robench-trained checkpoint (no path recorded) "
                            "(sha256 c5e5e6b6ae48) is neither a bundled zoo model")


def test_stale_row_in_a_file_is_found() -> None:
    frame = lb.read_leaderboard(COMMITTED)
    stale = frame[frame["name"] == "zoo:standard"].copy()
    stale[["name", "checkpoint_sha256", "checkpoint"]] = ["zoo-standard", "c5e5e6b6ae48" + "0" * 52, ""]
    assert lb.stale_rows(pd.concat([frame, stale]), ROOT) == [
        "row 'zoo-standard': its robench-trained checkpoint (no path recorded) (sha256 c5e5e6b6ae48) is neither a "
        "bundled zoo model nor a file with that sha256"]
    renamed = frame[frame["name"] == "zoo:igd"].copy()
    renamed["checkpoint"] = "zoo:pgd-at"  # a bundled name whose file has another sha256
    assert len(lb.stale_rows(renamed, ROOT)) == 1


# ---------------------------------------------------------------------------------------------- methods


def test_card_method_for_checkpoints_that_record_none(tmp_path: Path) -> None:
    board = tmp_path / "lb.csv"
    lb.add_run(PANEL / "oval-cifar_wide_kw", name="lab/wide", path=board, card={**THIRD_PARTY, "method": "certified"})
    lb.add_run(PANEL / "oval-cifar_sgd_8px", name="lab/sgd", path=board, card=THIRD_PARTY)
    assert lb.read_leaderboard(board)["method"].tolist() == ["certified", "unknown"]
    with pytest.raises(RobenchError, match=r"model card method is 'magic'; choose from standard, pgd-at, trades, igd, "
                                           r"trades-igd, adversarial, mixed, certified, robust-unstated, unstated$"):
        lb.add_run(PANEL / "oval-cifar_wide_kw", path=board, card={**THIRD_PARTY, "method": "magic"})
    with pytest.raises(RobenchError, match="model card method 'pgd-at' contradicts the checkpoint's recorded training "
                                           "method 'igd'"):
        lb.add_run(ZOO / "igd", path=board, card={"method": "pgd-at"})


def test_stated_method_from_the_manifest() -> None:
    methods = {row["file"].split("/")[-1].rsplit(".", 1)[0]: stated_method(row) for row in read_manifest()}
    assert methods["ehanw-resnet20-pgd"] == methods["oval-cifar_madry_8px"] == "pgd-at"
    assert methods["salman-cifar_cnn_small_ADV"] == methods["abcrown-cifar_conv_small_pgd"] == "pgd-at"
    assert methods["trades-mnist-smallcnn"] == "trades"
    assert methods["abcrown-cifar_cnn_a_adv_alt"] == "adversarial"  # adversarial, attack not stated
    assert methods["oval-cifar_base_kw"] == methods["salman-cifar_cnn_wide_2_LPD"] == "certified"
    assert methods["abcrown-cifar_cnn_a_mix4"] == "mixed" and methods["abcrown-resnet2b"] == "robust-unstated"
    assert methods["abcrown-cifar_marabou_small"] == "unstated" and methods["resnet32-d509ac18"] == "standard"
    assert set(methods.values()) <= set(lb.STATED_METHODS)


# ---------------------------------------------------------------------------------------------- the committed file


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    assert COMMITTED.is_file(), (f"{COMMITTED} is missing; rebuild it with "
                                 ".venv/bin/python experiments/build_leaderboard.py")
    return lb.read_leaderboard(COMMITTED)


def test_committed_rows_name_checkpoints_that_exist(committed: pd.DataFrame) -> None:
    assert lb.stale_rows(committed, ROOT) == []
    robench = committed[committed["origin"] == "robench"]
    assert {"zoo:standard", "zoo:pgd-at", "zoo:igd"} <= set(robench["name"])
    assert not [n for n in committed["name"] if n.startswith("zoo-")]  # the retired cnn_small zoo
    zoo = robench.set_index("name").loc[["zoo:standard", "zoo:pgd-at", "zoo:igd"]]
    assert zoo["clean_accuracy"].tolist() == pytest.approx([0.891, 0.707, 0.722])
    assert zoo["checkpoint"].tolist() == ["zoo:standard", "zoo:pgd-at", "zoo:igd"]
    files = [c for c in robench["checkpoint"] if not c.startswith("zoo:")]
    assert files and all(c.startswith("reports/") for c in files)
    if (ROOT / ".git").exists():  # the study checkpoints are committed, not just present here
        tracked = subprocess.run(["git", "ls-files", "--", *files], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
        assert sorted(tracked) == sorted(files)


def test_committed_third_party_methods_come_from_the_manifest(committed: pd.DataFrame) -> None:
    rows = committed[committed["origin"] == "third-party"].set_index("name")
    manifest = {f"third-party/{Path(r['file']).stem}": stated_method(r) for r in read_manifest()}
    assert rows["method"].to_dict() == manifest
    assert "unknown" not in set(rows["method"])


def test_committed_file_ranks_the_cifar10_sample_protocol_together(committed: pd.DataFrame) -> None:
    table = ranked(COMMITTED)
    cifar = table[table["dataset"] == "cifar10-sample/test"]
    assert cifar["group"].nunique() == 1, "the CIFAR-10 sample rows are split over several protocols"
    names = cifar["name"].tolist()
    assert any(n.startswith("zoo:") for n in names) and any(n.startswith("repro-fast/") for n in names)
    assert set(cifar["origin"]) == {"robench", "third-party"}
    with_autoattack = cifar[cifar["autoattack_accuracy"].notna()]
    assert len(with_autoattack) >= 20
    assert with_autoattack["autoattack_n_images"].notna().all()
    assert (with_autoattack["robust_accuracy_source"] ==
            "autoattack (n=" + with_autoattack["autoattack_n_images"].astype(int).astype(str) + ")").all()
    rest = cifar[cifar["autoattack_accuracy"].isna()]
    assert (rest["robust_accuracy_source"] == "pgd-10 (upper bound)").all()
    assert (rest["robust_accuracy"] == rest["pgd_accuracy"]).all()
    assert cifar["rank"].tolist() == sorted(cifar["rank"].tolist())
    assert cifar.set_index("name").loc["zoo:igd", "robust_accuracy"] == pytest.approx(0.366)


def test_committed_file_is_what_the_committed_runs_give(committed: pd.DataFrame, tmp_path: Path) -> None:
    build_leaderboard.build(tmp_path / "lb.csv")
    rebuilt = lb.read_leaderboard(tmp_path / "lb.csv")
    columns = ["name", "method", "checkpoint_sha256", "checkpoint", "clean_accuracy", "pgd_accuracy",
               "autoattack_accuracy", "autoattack_n_images", "origin"]
    assert committed[columns].equals(rebuilt[columns]), \
        "reports/leaderboard.csv is out of date; rebuild it with .venv/bin/python experiments/build_leaderboard.py"
