#!/usr/bin/env python
"""Write every committed comparison report under reports/ again, after a change of the report format.

    .venv/bin/python experiments/rebuild_reports.py [reports]

Each report directory records its inputs (``inputs.json``: the runs, title and examples setting) and is
rebuilt with :func:`robench.reports.report.rebuild_report`; a report written before that record existed is
rebuilt once from its ``report.md`` (title, the Models table's run column in order, whether it had
examples), which writes the record. Stale plot files the new report no longer links are removed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from robench.reports.report import build_report, rebuild_report


def from_markdown(report_md: Path) -> tuple[list[str], str, bool]:
    """(runs, title, examples) of a report written before inputs.json, read from its report.md."""
    text = report_md.read_text()
    title = text.splitlines()[0].removeprefix("# ")
    models = text.split("## Models", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"\| (reports/[^ |]+)\s*\|", models), title, "plots/examples.png" in text


def main(root: str = "reports") -> int:
    for report_md in sorted(Path(root).rglob("report.md")):
        out = report_md.parent
        if (out / "inputs.json").exists():
            report = rebuild_report(out)
        else:
            runs, title, examples = from_markdown(report_md)
            report = build_report(runs, out, title=title, examples=examples)
        linked = {p for paths in report.plots.values() for p in paths}
        for stale in sorted((out / "plots").glob("*")) if (out / "plots").is_dir() else []:
            if stale not in linked:
                stale.unlink()
        print(f"{out}: {len(report.plots)} plots; " + "; ".join(n for n in report.notes if n))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
