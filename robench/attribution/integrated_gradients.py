"""Integrated gradients (Sundararajan et al. 2017), batched over (image, step) pairs.

The step points (alphas) and weights of each ``method`` are the ones Captum uses for the same
name and number of steps, so results match ``captum.attr.IntegratedGradients`` up to
floating-point summation order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Union

import numpy as np
import torch
from torch import Tensor, nn

from robench.attribution._common import check_inputs, logit_grad
from robench.attribution.registry import ATTRIBUTIONS
from robench.errors import RobenchError
from robench.models.modes import eval_mode

IGMethod = Literal[
    "gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"
]
IG_METHODS: tuple[str, ...] = (
    "gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"
)
BASELINES: tuple[str, ...] = ("zero", "mean")
Baseline = Union[Literal["zero", "mean"], Tensor]


def ig_steps(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Quadrature points and weights on [0, 1] for ``method`` with ``steps`` points.

    Returns ``(alphas, weights)``, two float64 arrays of length ``steps``; identical to
    Captum's ``approximation_parameters(method)`` (Riemann points come from a float32
    ``torch.linspace`` exactly as in Captum; its "trapezoid" gives every step weight 1/n and
    halves the two end weights, so its weights sum to 1 - 1/n).
    """
    if method not in IG_METHODS:
        raise RobenchError(f"unknown integrated-gradients method {method!r}; "
                           f"choose one of: {', '.join(IG_METHODS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise RobenchError(f"steps must be an integer, got {steps!r}")
    steps = int(steps)
    min_steps = 2 if method == "riemann_trapezoid" else 1
    if steps < min_steps:
        raise RobenchError(f"integrated gradients with method {method!r} needs steps >= "
                           f"{min_steps}, got {steps}")
    n = steps
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1.0 + nodes), 0.5 * w
    weights = np.full(n, 1.0 / n)
    if method == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        alphas = torch.linspace(0, 1, n)
    elif method == "riemann_left":
        alphas = torch.linspace(0, 1 - 1 / n, n)
    elif method == "riemann_middle":
        alphas = torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)
    else:  # riemann_right
        alphas = torch.linspace(1 / n, 1, n)
    return np.asarray(alphas.to(torch.float32).tolist(), dtype=np.float64), weights


def resolve_baseline(model: nn.Module, x: Tensor, baseline: Baseline = "zero") -> Tensor:
    """The IG baseline as a tensor broadcast to ``x``'s shape (a view; do not write to it).

    ``"zero"``: black image (zeros in [0, 1] space). ``"mean"``: the model's normalization
    mean ``model.mean`` (1×C×1×1, [0, 1] space), i.e. zero in the model's normalized space
    (Duan's baseline); raises RobenchError if the model has no ``mean``. A tensor: used as
    given, broadcast to ``x``.
    """
    if isinstance(baseline, Tensor):
        base = baseline
    elif baseline == "zero":
        return torch.zeros((), dtype=x.dtype, device=x.device).expand_as(x)
    elif baseline == "mean":
        mean = getattr(model, "mean", None)
        if not isinstance(mean, Tensor):
            raise RobenchError(
                "baseline='mean' needs a model with a normalization-mean buffer 'mean' "
                "(robench model wrappers have one); use baseline='zero' or pass a tensor")
        base = mean
    else:
        raise RobenchError(f"unknown baseline {baseline!r}; choose one of: "
                           f"{', '.join(BASELINES)}, or pass a tensor")
    base = base.detach().to(device=x.device, dtype=x.dtype)
    try:
        return base.expand_as(x)
    except RuntimeError:
        raise RobenchError(f"baseline of shape {tuple(base.shape)} does not broadcast to the "
                           f"input shape {tuple(x.shape)}") from None


def step_chunks(n_images: int, n_steps: int,
                internal_batch_size: int | None) -> Iterator[tuple[int, int, int, int]]:
    """Split the (step, image) grid into chunks ``(s0, s1, i0, i1)`` of at most
    ``internal_batch_size`` model inputs: whole groups of steps over all images when the
    bound is at least the batch size, otherwise one step over a slice of images."""
    if internal_batch_size is None:
        yield 0, n_steps, 0, n_images
        return
    if isinstance(internal_batch_size, bool) or int(internal_batch_size) < 1:
        raise RobenchError(f"internal_batch_size must be a positive integer or None, "
                           f"got {internal_batch_size!r}")
    ibs = int(internal_batch_size)
    k = max(1, ibs // max(n_images, 1))
    m = min(n_images, ibs)
    for s0 in range(0, n_steps, k):
        for i0 in range(0, n_images, m):
            yield s0, min(n_steps, s0 + k), i0, min(n_images, i0 + m)


@ATTRIBUTIONS.register()
def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    baseline: Baseline = "zero",
    steps: int = 50,
    method: IGMethod = "gausslegendre",
    internal_batch_size: int | None = None,
) -> Tensor:
    """Integrated gradients of the true-class logit along the straight path baseline → x.

    ``attr = (x - b) * sum_k w_k * d logit_target / d x (b + alpha_k (x - b))``.

    Args:
        model: returns logits N×K; run in eval mode, previous mode restored.
        x: N×C×H×W images in [0, 1]; not modified.
        target: LongTensor of shape N.
        baseline: "zero" (black, zeros in [0, 1] space; default), "mean" (``model.mean``,
            = zero in normalized space, Duan's choice) or a tensor broadcastable to ``x``.
        steps: number of quadrature points (default 50).
        method: quadrature rule, as in Captum: "gausslegendre" (default, Captum's default)
            or "riemann_trapezoid" / "riemann_left" / "riemann_right" / "riemann_middle".
        internal_batch_size: at most this many (image, step) inputs go through the model at
            once (None: all N·steps at once). Does not change the result beyond rounding.

    Returns:
        Detached tensor of ``x``'s shape and dtype (logit units; sums to about
        f(x) - f(baseline), see :func:`completeness_gap`). Gradients are accumulated in
        float64.
    """
    t = check_inputs(x, target)
    alphas_np, weights_np = ig_steps(steps, method)
    xd = x.detach()
    base = resolve_baseline(model, xd, baseline)
    diff = xd - base
    alphas = torch.as_tensor(alphas_np, dtype=xd.dtype, device=xd.device)
    weights = torch.as_tensor(weights_np, dtype=xd.dtype, device=xd.device)
    n = xd.shape[0]
    rest = xd.shape[1:]
    bcast = (-1, 1) + (1,) * len(rest)
    total = torch.zeros(xd.shape, dtype=torch.float64, device=xd.device)
    with eval_mode(model):
        for s0, s1, i0, i1 in step_chunks(n, len(alphas_np), internal_batch_size):
            k, m = s1 - s0, i1 - i0
            scaled = (base[i0:i1].unsqueeze(0)
                      + alphas[s0:s1].view(bcast) * diff[i0:i1].unsqueeze(0))
            grads = logit_grad(model, scaled.reshape((k * m,) + rest), t[i0:i1].repeat(k),
                               copy=False)
            summed = torch.tensordot(weights[s0:s1], grads.view(k, -1), dims=1)
            total[i0:i1] += summed.view((m,) + rest).to(torch.float64)
    return (total * diff.to(torch.float64)).to(xd.dtype)


def completeness_gap(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    attributions: Tensor,
    *,
    baseline: Baseline = "zero",
) -> Tensor:
    """IG completeness check: ``sum(attributions) - (f_t(x) - f_t(baseline))`` per image.

    Returns a float64 tensor of shape N in logit units; near 0 when the integral is resolved
    (more steps shrink it). Compare against ``|f_t(x) - f_t(baseline)|`` for a relative error.
    """
    t = check_inputs(x, target)
    xd = x.detach()
    base = resolve_baseline(model, xd, baseline)
    with eval_mode(model), torch.no_grad():
        fx = model(xd).gather(1, t.view(-1, 1)).squeeze(1)
        fb = model(base.contiguous()).gather(1, t.view(-1, 1)).squeeze(1)
    total = attributions.detach().reshape(attributions.shape[0], -1).to(torch.float64).sum(1)
    return total - (fx.to(torch.float64) - fb.to(torch.float64))
