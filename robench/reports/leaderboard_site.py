"""A static web leaderboard: ``index.html`` and one ``models/<slug>.html`` card per row, readable from ``file://``.

``index.html`` holds one table per evaluation protocol group (as ``robench leaderboard show`` ranks them), with
header clicks that sort and select boxes that filter (a few lines of hand-written JavaScript, inline), and the
pixel-Gini against robust-accuracy scatter as inline SVG. Each card shows a row's provenance, checkpoint sha256,
stated against measured accuracies, settings and the run directory it came from. Nothing is loaded from a
network; every value from the CSV is HTML-escaped. docs/leaderboard.md, "Web leaderboard", describes it.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robench.errors import RobenchError
from robench.reports.leaderboard import GROUPS_NOTE, ORIGINS, protocol, ranked, read_leaderboard

#: The table columns: (key in the ranked frame, header, how the header sorts: number or text).
SITE_COLUMNS = [("rank", "Rank", "number"), ("name", "Model", "text"), ("method", "Method", "text"),
                ("origin", "Origin", "text"), ("clean_accuracy", "Clean acc. ↑", "number"),
                ("robust_accuracy", "Robust acc. ↑", "number"), ("gini_pixel", "Pixel Gini ↓", "number"),
                ("ina_error", "INA error ↓", "number"), ("ioa_error", "Occlusion error ↓", "number")]
#: The select boxes of index.html: (row attribute, label).
FILTERS = [("group", "Dataset / protocol"), ("eps", "Threat (ε)"), ("origin", "Origin"), ("method", "Training")]
#: Folders (under the repository root) searched for the run directory a row came from.
RUN_FOLDERS = ("reports", "runs")
URL = re.compile(r"https?://[^\s<>\"']+")

CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{padding:3px 8px;border-bottom:1px solid #ddd}
th{background:#f3f3f3;text-align:left}th[data-sort]{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}small{color:#666;display:block}
.filters label{margin-right:1em}code,pre{background:#f6f6f6}pre{padding:.5em;overflow:auto}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:600}dd{margin:0}
svg text{font:12px system-ui,sans-serif}"""

SCRIPT = """(() => {
  const rows = [...document.querySelectorAll("tbody tr")];
  const filters = [...document.querySelectorAll("select[data-filter]")];
  const apply = () => {
    for (const tr of rows) tr.hidden = !filters.every(s => !s.value || tr.dataset[s.dataset.filter] === s.value);
    for (const section of document.querySelectorAll("section.group"))
      section.hidden = !section.querySelector("tbody tr:not([hidden])");
  };
  filters.forEach(s => s.addEventListener("change", apply));
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const table = th.closest("table"), col = th.cellIndex, numeric = th.dataset.sort === "number";
      const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      table.querySelectorAll("th[aria-sort]").forEach(h => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      const key = tr => tr.cells[col].dataset.value;
      const sorted = [...table.tBodies[0].rows].sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === "" || y === "") return (x === "") - (y === "");  // missing values last
        return dir * (numeric ? x - y : x.localeCompare(y));
      });
      table.tBodies[0].append(...sorted);
    });
  }
})();"""


def write_site(board_path: str | Path, out_dir: str | Path, root: str | Path = ".") -> Path:
    """Write the web leaderboard of ``board_path`` into ``out_dir``; returns ``out_dir/index.html``.

    ``root`` is the repository root: run directories are looked up under its :data:`RUN_FOLDERS`
    (the run whose ``meta.json`` has the row's checkpoint sha256 and finishing date) and linked relatively.
    A missing or corrupt leaderboard is a one-line :class:`RobenchError`.
    """
    board_path, out_dir = Path(board_path), Path(out_dir)
    if not board_path.is_file():
        raise RobenchError(f"no leaderboard at {board_path}; add a run with: robench leaderboard add RUN_DIR "
                           f"--file {board_path}")
    table = ranked(read_leaderboard(board_path))
    rows = table.to_dict("records")
    if out_dir.exists() and not out_dir.is_dir():
        raise RobenchError(f"--out {out_dir} is a file, not a directory")
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    slugs = _slugs(r["name"] for r in rows)
    runs = _run_dirs(Path(root))
    for row in rows:
        run = runs.get((str(row["checkpoint_sha256"]), str(row["date"])))
        card = out_dir / "models" / f"{slugs[row['name']]}.html"
        card.write_text(_card(row, run, card.parent), encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(_index(rows, slugs, board_path), encoding="utf-8")
    return index


# ---------------------------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> str:
    return "–" if _missing(value) else f"{float(value):.3f}"


def _at(value: Any, how: str, setting: Any) -> str:
    """``0.123 at budget 0.02``; empty when ``value`` is missing."""
    return "" if _missing(value) else f"{_number(value)} {how} {float(setting):g}"


def _eps(value: float) -> str:
    """ε as a fraction of 255 where it is one (8/255), else in [0, 1] pixel units; ``none`` without an attack."""
    if _missing(value):
        return "none"
    steps = value * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-3 else f"{value:.4g}"


def _slugs(names: Iterable[str]) -> dict[str, str]:
    """A file name for every row name: lower case letters, digits, dots and dashes, unique (``-2``, ... added)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.") or "model"
        slug, i = base, 1
        while slug in taken:
            i += 1
            slug = f"{base}-{i}"
        taken.add(slug)
        out[name] = slug
    return out


def _run_dirs(root: Path) -> dict[tuple[str, str], Path]:
    """(checkpoint sha256, finishing date) → run directory, for the runs under ``root``'s :data:`RUN_FOLDERS`."""
    found: dict[tuple[str, str], Path] = {}
    for folder in RUN_FOLDERS:
        for meta_path in sorted((root / folder).glob("**/meta.json")):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                key = (str(meta["model"]["sha256"]), str(meta["finished"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a finished run
            found.setdefault(key, meta_path.parent)
    return found


def _linked(text: str) -> str:
    """``text`` escaped, its http(s) URLs as links."""
    parts, at = [], 0
    for match in URL.finditer(text):
        parts += [_e(text[at:match.start()]), f'<a href="{_e(match[0])}" rel="noopener">{_e(match[0])}</a>']
        at = match.end()
    return "".join(parts) + _e(text[at:])


def _page(title: str, body: str, script: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head>\n<body>\n{body}\n'
            + (f"<script>{script}</script>\n" if script else "") + "</body></html>\n")


# ---------------------------------------------------------------------------------------------- index.html


def _group_label(row: Mapping[str, Any]) -> str:
    p = protocol(row)
    attack = f"PGD at ε={_eps(row['pgd_eps'])}" if p["attack"] else "no attack"
    return f"group {row['group']}: {row['dataset']}, {p['n_images']} images, seed {p['seed']}, {attack}"


def _index(rows: list[dict[str, Any]], slugs: Mapping[str, str], board_path: Path) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    labels = {g: _group_label(members[0]) for g, members in groups.items()}
    options = {"group": [(g, labels[g]) for g in groups],
               "eps": [(e, e) for e in dict.fromkeys(_eps(r["pgd_eps"]) for r in rows)],
               "origin": [(o, o) for o in ORIGINS if any(r["origin"] == o for r in rows)],
               "method": [(m, m) for m in sorted({str(r["method"]) for r in rows})]}
    selects = "".join(
        f'<label>{label} <select data-filter="{key}"><option value="">all</option>'
        + "".join(f'<option value="{_e(v)}">{_e(text)}</option>' for v, text in options[key])
        + "</select></label>" for key, label in FILTERS)
    body = [f"<h1>robench leaderboard</h1>\n<p>{len(rows)} models from <code>{_e(board_path)}</code>, ranked by "
            "robust accuracy (AutoAttack's where the row has it, else PGD's, an upper bound) within each group of "
            f"one evaluation protocol, all origins together; {_e(GROUPS_NOTE)}. Click a column header to sort, "
            "a model for its card.</p>",
            f'<form class="filters">{selects}</form>']
    for group, members in groups.items():
        body.append(f'<section class="group" id="group-{_e(group)}"><h2>{_e(labels[group])}</h2>'
                    + _table(members, slugs) + "</section>")
    if not rows:
        body.append("<p>The leaderboard has no rows.</p>")
    body.append("<h2>Pixel Gini against robust accuracy</h2><p>Every group on one plot (a point's tooltip names "
                "its model and group): compare robust accuracies only within a group.</p>" + _scatter(rows))
    return _page("robench leaderboard", "\n".join(body), SCRIPT)


def _table(rows: list[dict[str, Any]], slugs: Mapping[str, str]) -> str:
    head = "".join(f'<th data-sort="{kind}" data-key="{key}">{_e(label)}</th>' for key, label, kind in SITE_COLUMNS)
    lines = []
    for row in rows:
        cells = []
        for key, _, kind in SITE_COLUMNS:
            value = row[key]
            if kind == "number":
                sort_value = "" if _missing(value) else repr(float(value))
                text = ("–" if _missing(value) else str(int(value))) if key == "rank" else _number(value)
                if key == "robust_accuracy" and row["robust_accuracy_source"]:
                    text += f"<small>{_e(row['robust_accuracy_source'])}</small>"
                cells.append(f'<td class="num" data-value="{sort_value}">{text}</td>')
            elif key == "name":
                cells.append(f'<td data-value="{_e(value)}"><a href="models/{_e(slugs[value])}.html">{_e(value)}</a></td>')
            else:
                cells.append(f'<td data-value="{_e(value)}">{_e(value)}</td>')
        attrs = "".join(f' data-{key}="{_e(v)}"' for key, v in
                        [("group", row["group"]), ("eps", _eps(row["pgd_eps"])), ("origin", row["origin"]),
                         ("method", row["method"])])
        lines.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(lines) + "\n</tbody></table>"


def _ticks(lo: float, hi: float) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    return [float(t) for t in MaxNLocator(5).tick_values(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]


def _padded(values: list[float]) -> tuple[float, float]:
    """The range of ``values`` widened by 5% each side (by 0.05 when they are all equal)."""
    lo, hi = min(values), max(values)
    margin = 0.05 * (hi - lo or 1)
    return lo - margin, hi + margin


def _scatter(rows: list[dict[str, Any]]) -> str:
    """The rows with both values as an inline SVG scatter, coloured by origin; a point's title names it."""
    points = [r for r in rows if not _missing(r["gini_pixel"]) and not _missing(r["robust_accuracy"])]
    if not points:
        return "<p>No row has both a pixel Gini and a robust accuracy.</p>"
    width, height, left, right, top, bottom = 640, 400, 60, 20, 20, 50
    xs = [float(r["gini_pixel"]) for r in points]
    ys = [float(r["robust_accuracy"]) for r in points]
    (x0, x1), (y0, y1) = _padded(xs), _padded(ys)

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (width - left - right)

    def sy(v: float) -> float:
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    colours = dict(zip(ORIGINS, ("#1f77b4", "#d62728")))
    out = [f'<svg width="{width}" height="{height}" role="img" '
           f'aria-label="pixel Gini against robust accuracy">',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
           'fill="none" stroke="#999"/>']
    for t in _ticks(x0, x1):
        out.append(f'<text x="{sx(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:g}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 10}" text-anchor="middle">pixel Gini '
               '(lower: attribution spread more evenly)</text>')
    out.append(f'<text transform="translate(14 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">'
               'robust accuracy (AutoAttack, else PGD)</text>')
    for r, x, y in zip(points, xs, ys):
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{colours[r["origin"]]}" '
                   f'fill-opacity="0.7"><title>{_e(r["name"])} (group {_e(r["group"])}): Gini {x:.3f}, '
                   f'robust {y:.3f}</title></circle>')
    for i, (origin, colour) in enumerate(colours.items()):
        out.append(f'<circle cx="{left + 14}" cy="{top + 14 + 16 * i}" r="4" fill="{colour}"/>'
                   f'<text x="{left + 24}" y="{top + 18 + 16 * i}">{origin}</text>')
    return "\n".join(out) + "\n</svg>"


# ---------------------------------------------------------------------------------------------- cards


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (label, HTML already escaped) pairs, leaving out the empty ones."""
    return '<dl class="facts">' + "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in pairs if value) \
        + "</dl>"


def _card(row: Mapping[str, Any], run: Path | None, card_dir: Path) -> str:
    provenance = _facts([("origin", _e(row["origin"])), ("source", _linked(str(row["source"]))),
                         ("licence", _linked(str(row["licence"]))),
                         ("training as stated", _linked(str(row["training_stated"]))),
                         ("ε as stated", _linked(str(row["eps_stated"]))),
                         ("stated figures mean", _linked(str(row["stated_meaning"])))])
    measured = [("clean accuracy", row["stated_clean_accuracy"], row["clean_accuracy"], f"all {row['n_images']} images"),
                ("robust accuracy", row["stated_robust_accuracy"], row["robust_accuracy"],
                 str(row["robust_accuracy_source"]))]
    stated = "".join(f"<tr><td>{what}</td><td class=\"num\">{_number(s)}</td><td class=\"num\">{_number(m)}</td>"
                     f"<td>{_e(source)}</td></tr>" for what, s, m, source in measured if not _missing(s))
    if run is None:
        run_html = "not found under this repository's " + " or ".join(f"<code>{f}/</code>" for f in RUN_FOLDERS)
    else:
        href = Path(os.path.relpath(run.resolve(), card_dir.resolve())).as_posix()
        run_html = f'<a href="{_e(href)}/">{_e(run.as_posix())}</a>'
    settings = str(row["settings"])
    try:
        settings = json.dumps(json.loads(settings), indent=2, sort_keys=True)
    except ValueError:
        pass  # shown as written
    numbers = _facts([
        ("group, rank", f"{_e(row['group'])}, {'–' if _missing(row['rank']) else int(row['rank'])}"),
        ("clean accuracy", _number(row["clean_accuracy"])),
        ("robust accuracy", f"{_number(row['robust_accuracy'])} ({_e(row['robust_accuracy_source'] or 'none')})"),
        ("PGD accuracy", f"{_number(row['pgd_accuracy'])} at ε={_eps(row['pgd_eps'])}"),
        ("AutoAttack accuracy", "" if _missing(row["autoattack_accuracy"]) else
         f"{_number(row['autoattack_accuracy'])} on {int(row['autoattack_n_images'])} images"),
        ("pixel / regional Gini", f"{_number(row['gini_pixel'])} / {_number(row['gini_region'])}"),
        ("INA error", _at(row["ina_error"], "at budget", row["ina_budget"])),
        ("random noise error", _at(row["rn_error"], "at budget", row["rn_budget"])),
        ("occlusion error", _at(row["ioa_error"], "with fill", row["ioa_fill"])),
        ("corruption error", _number(row["corruption_error"]))])
    body = [f'<p><a href="../index.html">← leaderboard</a></p><h1>{_e(row["name"])}</h1>',
            _facts([("architecture", _e(row["arch"])), ("dataset", _e(row["dataset"])),
                    ("images", _e(row["n_images"])), ("training", _e(row["method"])),
                    ("training settings", f"<code>{_e(row['method_params'])}</code>" if row["method_params"] else ""),
                    ("checkpoint", f"<code>{_e(row['checkpoint'])}</code>" if row["checkpoint"] else ""),
                    ("sha256", f'<code id="sha256">{_e(row["checkpoint_sha256"])}</code>'),
                    ("run directory", run_html), ("evaluated", f"{_e(row['date'])} by robench "
                                                              f"{_e(row['robench_version'])}")]),
            '<h2>Provenance</h2><div class="provenance">' + provenance + "</div>",
            "<h2>Results</h2>" + numbers]
    if stated:
        body.append("<h2>Stated against measured</h2><table><thead><tr><th></th><th>stated</th><th>measured</th>"
                    f"<th>measured by</th></tr></thead><tbody>{stated}</tbody></table><p>Comparable only where "
                    "the images, attack and ε match (see what the stated figures mean above).</p>")
    body.append(f"<h2>Settings</h2><pre>{_e(settings)}</pre>")
    return _page(f"{row['name']} – robench leaderboard", "\n".join(body))
