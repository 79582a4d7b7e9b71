#!/usr/bin/env python
"""Load test: many processes running `robench leaderboard add` at once lose no row.

    .venv/bin/python benchmarks/load_leaderboard.py --processes 20 --rows 50 \
        --out reports/benchmarks/leaderboard-load.md

Each process runs the `robench leaderboard add RUN --name P-I --file F` command (the CLI's entry
point, in-process, so 1,000 adds do not pay 1,000 interpreter start-ups) ROWS times, all against
one file, all started together. Then the file must parse, hold every one of the PROCESSES × ROWS
names exactly once, and no temporary file may remain.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine, publish

RUN = Path(__file__).resolve().parents[1] / "reports" / "zoo" / "igd"


def worker(args: tuple[int, int, str, mp.synchronize.Barrier]) -> tuple[int, float]:
    rank, rows, file, barrier = args
    import contextlib
    import io

    from robench.cli import main

    barrier.wait()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        failures = sum(main(["leaderboard", "add", str(RUN), "--name", f"p{rank:02d}-{i:03d}", "--file", file]) != 0
                       for i in range(rows))
    return failures, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=20)
    p.add_argument("--rows", type=int, default=50)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    from robench.reports.leaderboard import read_leaderboard

    with tempfile.TemporaryDirectory() as tmp:
        file = str(Path(tmp) / "leaderboard.csv")
        ctx = mp.get_context("spawn")
        barrier = ctx.Manager().Barrier(args.processes)
        start = time.perf_counter()
        with ctx.Pool(args.processes) as pool:
            outcomes = pool.map(worker, [(r, args.rows, file, barrier) for r in range(args.processes)])
        wall = time.perf_counter() - start
        board = read_leaderboard(file)
        expected = {f"p{r:02d}-{i:03d}" for r in range(args.processes) for i in range(args.rows)}
        names = board["name"].tolist()
        leftovers = [p.name for p in Path(tmp).iterdir() if p.name.endswith(".tmp")]
    failures = sum(f for f, _ in outcomes)
    ok = set(names) == expected and len(names) == len(expected) and not failures and not leftovers
    lines = [
        "# Leaderboard under concurrent writers", "",
        f"`.venv/bin/python benchmarks/load_leaderboard.py --processes {args.processes} --rows {args.rows}` "
        f"on {machine()['cpu']} ({machine()['nproc']} cores).", "",
        f"- {args.processes} processes × {args.rows} `robench leaderboard add` commands on one file, started together",
        f"- rows expected {len(expected)}, rows in the file {len(names)}, distinct {len(set(names))}, "
        f"failed commands {failures}, temporary files left {len(leftovers)}",
        f"- the file parses with the strict reader: yes; wall time {wall:.1f} s "
        f"({len(expected) / wall:.1f} adds/s; each add rewrites the whole file under the lock)",
        f"- **result: {'no row lost, nothing torn' if ok else 'FAILED'}**",
    ]
    publish("\n".join(lines) + "\n", args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
