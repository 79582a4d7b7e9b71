"""Where :class:`Run`, :func:`load_run`, :func:`headline` and the per-image file names lived before they moved
to :mod:`robench.run` (below the runner and the reports, so that neither imports the other). Kept for code that
imports them from here (``from robench.reports.runs import load_run``); robench's own modules import
:mod:`robench.run` (tests/test_layers.py checks).
"""

from robench.run import (
    ALIGNMENT_COLUMNS,
    ATTRIBUTION_COLUMNS,
    HEADLINE_COLUMNS,
    LEGACY_PER_IMAGE_FILE,
    METHOD_PARAMS,
    PER_IMAGE_FILE,
    Run,
    headline,
    load_run,
    per_image_path,
    write_results,
)

__all__ = ["ALIGNMENT_COLUMNS", "ATTRIBUTION_COLUMNS", "HEADLINE_COLUMNS", "LEGACY_PER_IMAGE_FILE", "METHOD_PARAMS",
           "PER_IMAGE_FILE", "Run", "headline", "load_run", "per_image_path", "write_results"]
