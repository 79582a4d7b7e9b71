"""Plain gradient attributions: saliency (signed input gradient) and input × gradient."""

from __future__ import annotations

from torch import Tensor, nn

from robench.attribution._common import check_inputs, logit_grad
from robench.attribution.registry import ATTRIBUTIONS
from robench.models.modes import eval_mode


@ATTRIBUTIONS.register()
def saliency(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Signed gradient of the true-class *logit* w.r.t. the input (IGD's attribution).

    Args:
        model: returns logits N×K for inputs in [0, 1] (normalization inside the model).
        x: N×C×H×W images in [0, 1]; not modified.
        target: LongTensor of shape N, the class whose logit is differentiated.

    Returns:
        Detached tensor of ``x``'s shape and dtype: d logit_target / d x (logit per input unit).
        Equals ``captum.attr.Saliency(model).attribute(x, target, abs=False)``.
    """
    t = check_inputs(x, target)
    with eval_mode(model):
        return logit_grad(model, x, t)


@ATTRIBUTIONS.register()
def input_x_gradient(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Input × gradient of the true-class logit: ``x * d logit_target / d x``.

    Shapes as :func:`saliency`. Equals ``captum.attr.InputXGradient``.
    """
    t = check_inputs(x, target)
    with eval_mode(model):
        grad = logit_grad(model, x, t)
    return (x.detach() * grad).detach()
