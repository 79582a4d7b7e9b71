"""The bad-input matrix: every row of docs/errors.md is a user mistake that must give one error line.

The doc's table is the single source of truth: this module parses it and runs each row through
``robench.cli.main`` in-process. For every row: exit status 2, stderr exactly one line starting
``robench: error:`` and containing the documented text, no traceback, ``{out}`` absent afterwards,
and no file under the prepared artefacts or the row's temporary directory created or changed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_model  # tests/ is on sys.path (no package), under pytest and python -m pytest
from PIL import Image

from robench.cli import main
from robench.io import gzip_bytes
from robench.models.checkpoint import save_checkpoint
from robench.reports.runs import PER_IMAGE_FILE

DOC = ROOT / "docs" / "errors.md"
COMMANDS = ("evaluate", "train", "compare", "report", "leaderboard add", "leaderboard show", "leaderboard remove", "list",
            "probe-normalization")
ROW = re.compile(r"^\|\s*`(?P<id>[\w-]+)`\s*\|\s*`robench (?P<command>[^`]+)`\s*\|\s*`(?P<error>[^`]+)`\s*\|\s*$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def doc_rows() -> list[tuple[str, str, str]]:
    """(id, command without the leading 'robench', error text) of every row of the matrix."""
    rows = [(m["id"], m["command"], m["error"]) for line in DOC.read_text(encoding="utf-8").splitlines()
            if (m := ROW.match(line))]
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate ids in {DOC}"
    return rows


def documented_placeholders() -> set[str]:
    """Placeholders listed in the doc's placeholder table."""
    return set(re.findall(r"^\|\s*`\{(\w+)\}`\s*\|", DOC.read_text(encoding="utf-8"), flags=re.M))


ROWS = doc_rows()


def _run(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"preparing artefacts: robench {' '.join(args)} exited {code}"


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every prepared file of the placeholder table, built once per module (one tiny evaluation per run)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    a: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROBENCH_CACHE", str(root / "cache"))
        mp.setenv("ROBENCH_PROGRESS", "0")
        from robench.data import load_dataset

        data = load_dataset("sample", limit=96)
        a["npz"] = root / "small.npz"
        np.savez(a["npz"], x=np.asarray(data.images), y=data.labels, classes=np.array(data.classes))
        a["ckpt"] = save_checkpoint(tiny_model(), root / "tiny.pt")
        a["sd"] = root / "sd.pt"
        torch.save(tiny_model().net.state_dict(), a["sd"])
        a["sdlist"] = root / "sdlist.pt"
        torch.save({"state_dict": [tiny_model().net.state_dict()] * 2}, a["sdlist"])
        a["whole"] = root / "whole.pt"
        torch.save(tiny_model().net, a["whole"])
        a["random"] = root / "random.pt"
        a["random"].write_bytes(np.random.default_rng(0).bytes(2048))
        a["trunc"] = root / "trunc.pt"
        a["trunc"].write_bytes(a["ckpt"].read_bytes()[:3000])
        a["five"] = save_checkpoint(tiny_model(num_classes=5), root / "five.pt")
        big = tiny_model()
        big.info.input_size = (3, 64, 64)
        a["big"] = save_checkpoint(big, root / "big.pt")
        a["gray_ckpt"] = save_checkpoint(tiny_model(in_chans=1), root / "gray-model.pt")
        classes = np.array(list("abcdefghij"))
        a["gray"] = root / "gray.npz"
        np.savez(a["gray"], x=np.zeros((8, 32, 32), np.uint8), y=np.arange(8) % 10, classes=classes)
        a["noy"] = root / "noy.npz"
        np.savez(a["noy"], x=np.zeros((4, 32, 32, 3), np.uint8))
        a["floatx"] = root / "floatx.npz"
        np.savez(a["floatx"], x=np.zeros((4, 32, 32, 3), np.float32), y=np.zeros(4, np.int64))
        a["flat"] = root / "flat.npz"
        np.savez(a["flat"], x=np.zeros((4, 3072), np.uint8), y=np.zeros(4, np.int64))
        a["empty"] = root / "empty.npz"
        np.savez(a["empty"], x=np.zeros((0, 32, 32, 3), np.uint8), y=np.zeros(0, np.int64))
        a["trunc_npz"] = root / "trunc.npz"
        a["trunc_npz"].write_bytes(a["npz"].read_bytes()[: a["npz"].stat().st_size // 2])
        a["npy"] = root / "images.npy"
        np.save(a["npy"], np.zeros((4, 32, 32, 3), np.uint8))
        a["noimages"] = root / "noimages"
        for c in ("cat", "dog"):
            (a["noimages"] / c).mkdir(parents=True)
            (a["noimages"] / c / "readme.txt").write_text("not an image\n")
        a["mixed"] = root / "mixed"
        for c, size in (("cat", 32), ("dog", 40)):
            (a["mixed"] / c).mkdir(parents=True)
            Image.new("RGB", (size, size), (120, 30, 200)).save(a["mixed"] / c / "0.png")
        a["afile"] = root / "notes.txt"
        a["afile"].write_text("an ordinary file\n")
        base = ["evaluate", "--model", str(a["ckpt"]), "--data", f"npz:{a['npz']}", "--limit", "8", "--suite", "clean"]
        a["run"] = root / "run"
        _run(*base, "--out", str(a["run"]))
        a["run_other"] = root / "run-other"
        _run(*base, "--seed", "1", "--out", str(a["run_other"]))
        a["run_nometa"] = root / "run-nometa"
        shutil.copytree(a["run"], a["run_nometa"])
        (a["run_nometa"] / "meta.json").unlink()
        a["run_partial"] = root / "run-partial"
        (a["run_partial"] / ".partial").mkdir(parents=True)
        (a["run_partial"] / ".partial" / "signature").write_text("0" * 64)
        a["run_edited"] = root / "run-edited"
        shutil.copytree(a["run"], a["run_edited"])
        lines = (a["run_edited"] / "results.csv").read_text().splitlines(keepends=True)
        cells = lines[1].split(",")
        cells[5] = "abc"  # the value column
        lines[1] = ",".join(cells)
        (a["run_edited"] / "results.csv").write_text("".join(lines))
        a["run_short"] = root / "run-short"
        shutil.copytree(a["run"], a["run_short"])
        table = a["run_short"] / PER_IMAGE_FILE
        lines = gzip.decompress(table.read_bytes()).decode().splitlines(keepends=True)
        table.write_bytes(gzip_bytes("".join(lines[:-1]).encode()))
        a["board"] = root / "board.csv"
        _run("leaderboard", "add", str(a["run"]), "--name", "tiny", "--file", str(a["board"]))
        Path(f"{a['board']}.lock").unlink()  # so that a row that takes the lock shows up as a change
        a["badboard"] = root / "badboard.csv"
        a["badboard"].write_bytes(a["board"].read_bytes() + b"broken,row\n")
    return a


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under ``roots``: (size, sha256) of files, (-1, '') of directories."""
    seen: dict[str, tuple[int, str]] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            if Path(dirpath).name == "cache" and Path(dirpath).parent == root:
                dirnames.clear()  # decoded-data cache: not an output
                continue
            for d in dirnames:
                seen[os.path.join(dirpath, d)] = (-1, "")
            for f in filenames:
                data = Path(dirpath, f).read_bytes()
                seen[os.path.join(dirpath, f)] = (len(data), hashlib.sha256(data).hexdigest())
    return seen


@pytest.mark.parametrize("row_id,command,error", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(cli, artefacts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                   row_id: str, command: str, error: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ROBENCH_DATA", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same matrix on GPU machines
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.chdir(work)  # a default path such as reports/leaderboard.csv would land here
    values = {**{k: str(v) for k, v in artefacts.items()}, "tmp": str(work), "out": str(work / "out")}

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: values[m[1]], text)

    args = [fill(token) for token in shlex.split(command)]
    before = snapshot(artefacts["ckpt"].parent, tmp_path)
    r = cli(*args)
    lines = r.err.strip("\n").splitlines()
    assert r.code == 2, f"exit {r.code}; stderr: {r.err}"
    assert len(lines) == 1 and lines[0].startswith("robench: error:"), r.err
    assert fill(error) in lines[0], lines[0]
    assert "Traceback" not in r.err + r.out
    assert not (work / "out").exists(), "the command wrote its output location"
    assert snapshot(artefacts["ckpt"].parent, tmp_path) == before, "the command created or changed files"


def test_matrix_covers_every_command_and_placeholder() -> None:
    """The doc cannot silently shrink: at least 36 rows, every command, every placeholder documented."""
    assert len(ROWS) >= 36, f"{DOC} lists {len(ROWS)} mistakes"
    for command in COMMANDS:
        assert any(c.startswith(command + " ") or c == command for _, c, _ in ROWS), f"no row for robench {command}"
    used = {p for _, c, e in ROWS for p in PLACEHOLDER.findall(c + e)}
    assert used <= documented_placeholders(), f"placeholders not explained in {DOC}: {used - documented_placeholders()}"
