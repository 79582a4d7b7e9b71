"""The committed outputs under reports/ stay lean: their total size within REPORTS_BUDGET (issue 28).

Counts what ``git add -A reports`` would commit: the tracked files as they are in the working tree
(a deleted one counts nothing) and the untracked files git does not ignore.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORTS_BUDGET = 30_000_000  # bytes (30 MB) for everything under reports/
SHOWN = 10  # the largest files named when the budget is exceeded


def _git_files(*args: str) -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z", *args, "--", "reports"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in done.stdout.decode().split("\0") if name]


def reports_files() -> dict[str, int]:
    """Size in bytes of each file under reports/ that is tracked (as in the working tree) or untracked and not ignored."""
    names = set(_git_files()) | set(_git_files("--others", "--exclude-standard"))
    sizes = {}
    for name in sorted(names):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():  # a tracked file deleted here will not be committed
            sizes[name] = path.stat().st_size
    return sizes


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="not a git checkout (or no git): which files are committed is unknown")
def test_reports_stay_within_the_size_budget() -> None:
    sizes = reports_files()
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:SHOWN]
    listing = "; ".join(f"{name} {size / 1e6:.2f} MB" for name, size in largest)
    assert total <= REPORTS_BUDGET, (
        f"reports/ holds {total / 1e6:.1f} MB in {len(sizes)} files, over the {REPORTS_BUDGET / 1e6:.0f} MB budget; "
        f"the {len(largest)} largest: {listing}")
