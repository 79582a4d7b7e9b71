"""Inequality metrics (docs/metrics.md): Gini indices, Lorenz curves, error rates."""

from robench.metrics.error_rates import bootstrap_ci, error_rate
from robench.metrics.gini import (
    DEFAULT_REGION,
    DEFAULT_VALUE,
    REGIONS,
    VALUE_TRANSFORMS,
    default_block_size,
    gini,
    gini_with_flags,
    pixel_gini,
    region_values,
    regional_gini,
    transform_attribution,
)
from robench.metrics.lorenz import lorenz_curve, lorenz_on_grid, mean_lorenz_curve

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_VALUE",
    "REGIONS",
    "VALUE_TRANSFORMS",
    "bootstrap_ci",
    "default_block_size",
    "error_rate",
    "gini",
    "gini_with_flags",
    "lorenz_curve",
    "lorenz_on_grid",
    "mean_lorenz_curve",
    "pixel_gini",
    "region_values",
    "regional_gini",
    "transform_attribution",
]
