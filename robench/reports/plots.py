"""The comparison plots (matplotlib, saved as PNG: :data:`PLOT_FORMATS`).

Every figure takes the runs, their column labels and the common-correct mask (see
:mod:`robench.reports.compare`) and returns a :class:`~matplotlib.figure.Figure`, or ``None``
when no run has the data it shows. Colours are the Okabe–Ito palette (distinguishable with the
common colour-vision deficiencies) and every model also gets its own marker, so the plots stay
readable in greyscale.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt  # the backend is the caller's (a notebook's inline one); headless: Agg by itself
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from robench.attacks.occlusion import OcclusionOrder, occlusion_steps  # noqa: E402
from robench.errors import RobenchError  # noqa: E402
from robench.io import write_atomic  # noqa: E402
from robench.metrics.error_rates import bootstrap_ci  # noqa: E402
from robench.run import Run  # noqa: E402
from robench.schema import (  # noqa: E402
    gini_column,
    occlusion_column,
    occlusion_limits,
    occlusion_order,
    per_image_columns,
)

#: The files :func:`save_figure` writes for each plot, in order: one format, so that a committed report holds each
#: plot once (``("png", "svg")`` adds a vector copy; the HTML report shows the first).
PLOT_FORMATS: tuple[str, ...] = ("png",)
PNG_DPI = 100  # matplotlib's own; 150 made the committed reports 1.4 MB heavier
#: Colours of the palette a PNG is stored with (:func:`palette_png`): a third of matplotlib's RGBA file for these
#: line plots and heat maps, every pixel within 22 of 255 levels of the RGBA rendering on the committed plots (a
#: continuous colour bar shows steps, about 4% of its range apart).
PNG_COLOURS = 256
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
PANEL_WIDTH_IN = 2.6  # the width of one model's corruption heat map (inches)


def fitting_font_size(text: str, width_pt: float, largest: float = 12.0, smallest: float = 6.0) -> float:
    """The font size (points, within [smallest, largest]) at which ``text`` fits ``width_pt`` points, taking a
    character as 0.6 of the font size wide (DejaVu Sans averages about 0.55): long model names shrink instead of
    running into the next panel's title."""
    return max(smallest, min(largest, width_pt / (0.6 * max(len(text), 1))))


def style(i: int) -> dict[str, object]:
    """Colour and marker of the i-th model."""
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)]}


def palette_png(png: bytes, colours: int = PNG_COLOURS) -> bytes:
    """``png`` (a PNG file's bytes) as an optimised palette PNG of at most ``colours`` colours (maximum coverage, no
    dithering, alpha dropped: robench's figures are opaque). Deterministic: the same input gives the same bytes."""
    with Image.open(io.BytesIO(png)) as image:
        quantized = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MAXCOVERAGE,
                                                  dither=Image.Dither.NONE)
    out = io.BytesIO()
    quantized.save(out, format="png", optimize=True)
    return out.getvalue()


def save_figure(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str] = PLOT_FORMATS) -> list[Path]:
    """Write ``stem.png`` (:data:`PNG_DPI` dpi, a :func:`palette_png`; ``stem.svg`` too where ``formats`` asks for
    it) atomically into ``out_dir``, in the order of ``formats``; close the figure.

    The files are byte-identical for the same figure: no creation date, and an SVG's element ids come from a
    fixed salt instead of a random one, so re-generating a committed report only changes what changed."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        plt.close(fig)
        raise RobenchError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    paths = []
    options: dict[str, dict[str, Any]] = {"png": {"dpi": PNG_DPI}, "svg": {"metadata": {"Date": None}}}
    for ext in formats:
        if ext not in options:
            plt.close(fig)
            raise RobenchError(f"cannot save a plot as {ext!r}: robench writes {', '.join(options)}")
        path, kwargs = out_dir / f"{stem}.{ext}", options[ext]
        rendered = io.BytesIO()
        with plt.rc_context({"svg.hashsalt": stem}):
            fig.savefig(rendered, format=ext, bbox_inches="tight", **kwargs)
        data = palette_png(rendered.getvalue()) if ext == "png" else rendered.getvalue()
        write_atomic(path, lambda tmp: tmp.write_bytes(data))  # called at once
        paths.append(path)
    plt.close(fig)
    return paths


def _budget_columns(run: Run, test: str) -> list[tuple[float, str]]:
    """(budget, column) of the run's ``test`` noise columns, by budget."""
    return sorted((float(c.param), c.name) for c in per_image_columns(run.per_image.columns, test, "fooled"))


def noise_curves(runs: Sequence[Run], labels: Sequence[str], mask: np.ndarray) -> Figure | None:
    """Error rate (%) vs budget (% of input entries) for inductive and random noise, 95% bootstrap bands.

    On the common-correct images, one line per model.
    """
    panels = [("inductive_noise", "Inductive noise (top-k of the attribution)"),
              ("random_noise", "Random noise (random positions)")]
    if not any(_budget_columns(r, p) for r in runs for p, _ in panels):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (test, title) in zip(axes, panels):
        for i, (run, label) in enumerate(zip(runs, labels)):
            cols = _budget_columns(run, test)
            if not cols:
                continue
            budgets = np.array([b for b, _ in cols])
            scale = 100.0 if budgets.max() < 1 else 1.0
            rates, lows, highs = [], [], []
            for _, col in cols:
                flags = run.per_image.loc[mask, col].astype(float).dropna().to_numpy()
                rates.append(flags.mean() * 100 if len(flags) else math.nan)
                low, high = bootstrap_ci(flags) if len(flags) else (math.nan, math.nan)
                lows.append(low * 100)
                highs.append(high * 100)
            st = style(i)
            ax.plot(budgets * scale, rates, label=label, color=st["color"], marker=st["marker"], markersize=4)
            ax.fill_between(budgets * scale, lows, highs, color=st["color"], alpha=0.15, linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("budget (% of input entries)" if scale == 100 else "budget (input entries)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("error rate (%) on common-correct images")
    axes[0].legend(title="model", frameon=False)
    fig.suptitle(f"Noise attacks ({int(mask.sum())} images all models classify correctly; bands: 95% bootstrap CI)")
    fig.tight_layout()
    return fig


def _occlusion_steps(run: Run, fill: str, mask: np.ndarray) -> tuple[np.ndarray, str, int] | None:
    """Per-image value of the outer search axis at which the image was first fooled (NaN: never), the axis and
    its size: from the recorded count/radius columns, or for runs made before them (sweeps) from the queries."""
    fooled_column = occlusion_column(fill, "fooled")
    assert fooled_column.row is not None  # fooled columns feed the error-rate rows
    rows = fooled_column.row.select(run.results)
    col = occlusion_column(fill, "queries").name
    if not len(rows) or col not in run.per_image:
        return None
    count, radius = occlusion_limits(rows["param"].iloc[0])
    order = cast(OcclusionOrder, occlusion_order(rows["variant"].iloc[0]))
    outer = 1 if order == "radius_first" else 0
    fooled = run.per_image.loc[mask, fooled_column.name].astype(float).to_numpy()
    recorded = occlusion_column(fill, "radius" if outer else "count").name
    if recorded in run.per_image:
        first = np.where(fooled > 0, run.per_image.loc[mask, recorded].astype(float).to_numpy(), np.nan)
    else:
        queries = np.nan_to_num(run.per_image.loc[mask, col].astype(float).to_numpy()).astype(np.int64)
        steps = np.array(occlusion_steps(count, radius, order))  # a sweep's query q of a fooled image is step q
        first = np.where(fooled > 0, steps[np.clip(queries - 1, 0, len(steps) - 1), outer], np.nan)
    if outer:
        return first, "patch radius r (count up to N)", radius
    return first, "occluded patches n (radius up to R)", count


def occlusion_curves(runs: Sequence[Run], labels: Sequence[str], mask: np.ndarray) -> Figure | None:
    """Cumulative occlusion success (%) vs the outer search axis (patch count, or radius), per fill."""
    fills = sorted({c.param for r in runs for c in per_image_columns(r.per_image.columns, "inductive_occlusion")},
                   key=float)
    if not fills:
        return None
    fig, axes = plt.subplots(1, len(fills), figsize=(4.6 * len(fills), 4), sharey=True, squeeze=False)
    for ax, fill in zip(axes[0], fills):
        xlabel = ""
        for i, (run, label) in enumerate(zip(runs, labels)):
            steps = _occlusion_steps(run, fill, mask)
            if steps is None:
                continue
            first, xlabel, size = steps
            xs = np.arange(1, size + 1)
            success = [(first <= x).mean() * 100 for x in xs]
            st = style(i)
            ax.plot(xs, success, label=label, color=st["color"], marker=st["marker"], markersize=4)
        ax.set_title({"0": "black fill (0)", "0.5": "grey fill (0.5)", "1": "white fill (1)"}.get(fill, f"fill {fill}"))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("images fooled (%), cumulative")
    axes[0][0].legend(title="model", frameon=False)
    fig.suptitle(f"Inductive occlusion on {int(mask.sum())} common-correct images")
    fig.tight_layout()
    return fig


def gini_and_lorenz(runs: Sequence[Run], labels: Sequence[str], mask: np.ndarray) -> Figure | None:
    """Left: distribution of per-image pixel Gini; right: mean Lorenz curve of |attribution|, per model."""
    pixel = gini_column("pixel").name
    if not any(pixel in r.per_image for r in runs):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    values = np.concatenate([r.per_image.loc[mask, pixel].astype(float).dropna().to_numpy()
                             for r in runs if pixel in r.per_image])
    low, high = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    bins = np.linspace(max(0.0, low - 0.02), min(1.0, high + 0.02), 41)
    for i, (run, label) in enumerate(zip(runs, labels)):
        if pixel not in run.per_image:
            continue
        st = style(i)
        gini = run.per_image.loc[mask, pixel].astype(float).dropna().to_numpy()
        left.hist(gini, bins=bins, histtype="step", linewidth=1.8, color=st["color"],
                  label=f"{label} (mean {gini.mean():.3f})")
        lorenz = sorted((float(c.param), c.name) for c in per_image_columns(run.per_image.columns, "lorenz"))
        if lorenz:
            xs = np.array([0.0, *[p for p, _ in lorenz], 1.0])
            ys = np.array([0.0, *[run.per_image.loc[mask, c].astype(float).mean() for _, c in lorenz], 1.0])
            right.plot(xs * 100, ys * 100, color=st["color"], marker=st["marker"], markersize=3, label=label)
    left.set_xlabel("pixel Gini of |attribution| (0 = equal, 1 = one pixel holds all)")
    left.set_ylabel("images")
    left.set_title("Per-image Gini, common-correct images")
    left.legend(frameon=False, fontsize=8)
    right.plot([0, 100], [0, 100], color="grey", linewidth=0.8, linestyle="--", label="perfect equality")
    right.set_xlabel("share of input entries, smallest first (%)")
    right.set_ylabel("share of total |attribution| (%)")
    right.set_title("Mean Lorenz curve")
    right.legend(frameon=False, fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def corruption_heatmaps(runs: Sequence[Run], labels: Sequence[str]) -> Figure | None:
    """Error rate (%) per corruption × severity, one panel per model, shared colour scale (viridis)."""
    tables = []
    for run, label in zip(runs, labels):
        # the rows of the corruption columns (one per corruption and severity), in the results' order
        own = run.results[run.results["suite"] == "corruptions"]
        selected = [c.row.select(own) for c in per_image_columns(run.per_image.columns, family="corruption")
                    if c.row is not None]
        rows = pd.concat(selected).sort_index() if selected else own.iloc[:0]
        if len(rows):
            tables.append((label, rows.pivot_table(index="test", columns="param", values="value", sort=False)))
    if not tables:
        return None
    names = list(dict.fromkeys(n for _, t in tables for n in t.index))
    severities = sorted({c for _, t in tables for c in t.columns}, key=int)
    cols = min(4, len(tables))
    rows = math.ceil(len(tables) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_WIDTH_IN * cols + 1.8, (0.32 * len(names) + 1.1) * rows + 0.6),
                             sharey=True, squeeze=False, layout="constrained")
    image = None
    for ax, (label, table) in zip(axes.flat, tables):
        values = table.reindex(index=names, columns=severities).to_numpy() * 100
        image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(severities)), severities)
        ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
        ax.set_xlabel("severity")
        ax.set_title(label, fontsize=fitting_font_size(label, width_pt=0.9 * PANEL_WIDTH_IN * 72))
        for (r, c), v in np.ndenumerate(values):
            if not np.isnan(v):
                ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    for ax in list(axes.flat)[len(tables):]:
        ax.set_visible(False)
    assert image is not None  # tables is not empty
    fig.colorbar(image, ax=axes, label="error rate (%)", shrink=0.9)
    fig.suptitle("Corruption error rate (each model's full image set)")
    return fig
