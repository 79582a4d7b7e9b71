"""Attribution maps (docs/metrics.md, "Attribution"): the gradient of the true-class logit, in several flavours.

All functions take ``(model, x, target)`` with ``x`` N×C×H×W in [0, 1] and ``target`` a
LongTensor of N labels, run the model in eval mode (previous mode restored), never touch
parameters' ``.grad`` or ``x``, and return a detached tensor of ``x``'s shape and dtype.
"""

from robench.attribution.gradients import input_x_gradient, saliency
from robench.attribution.integrated_gradients import (
    BASELINES,
    IG_METHODS,
    completeness_gap,
    ig_steps,
    integrated_gradients,
    resolve_baseline,
)
from robench.attribution.registry import (
    ATTRIBUTIONS,
    DEFAULT_ATTRIBUTION,
    attribute,
    attribution_names,
    attribution_options,
    get_attribution,
    options_per_method,
)
from robench.attribution.smoothgrad import smoothgrad

__all__ = [
    "ATTRIBUTIONS",
    "BASELINES",
    "DEFAULT_ATTRIBUTION",
    "IG_METHODS",
    "attribute",
    "attribution_names",
    "attribution_options",
    "completeness_gap",
    "get_attribution",
    "ig_steps",
    "input_x_gradient",
    "integrated_gradients",
    "options_per_method",
    "resolve_baseline",
    "saliency",
    "smoothgrad",
]
