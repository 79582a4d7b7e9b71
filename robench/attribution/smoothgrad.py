"""SmoothGrad (Smilkov et al. 2017): saliency averaged over Gaussian-noised copies of the input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robench.attribution._common import check_inputs, logit_grad
from robench.attribution.integrated_gradients import step_chunks
from robench.attribution.registry import ATTRIBUTIONS
from robench.errors import RobenchError
from robench.models.modes import eval_mode


def _noise(shape: torch.Size, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """One standard-normal draw of ``shape`` on ``x``'s device and dtype."""
    if generator is None:
        return torch.randn(shape, dtype=x.dtype, device=x.device)
    z = torch.randn(shape, dtype=x.dtype, device=generator.device, generator=generator)
    return z.to(x.device)


@ATTRIBUTIONS.register()
def smoothgrad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = 20,
    sigma: float = 0.2,
    squared: bool = True,
    internal_batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Noise tunnel over saliency: mean over ``samples`` draws of g(x + sigma·z), z ~ N(0, I).

    ``g`` is the signed gradient of the true-class logit (:func:`saliency`). With
    ``squared=True`` (default, Captum's ``smoothgrad_sq``) each sample gradient is squared
    before averaging (non-negative map); with ``squared=False`` it is plain SmoothGrad.

    Args:
        x: N×C×H×W images in [0, 1]; not modified. Noisy copies are *not* clipped to [0, 1]
            (as in Captum's NoiseTunnel).
        target: LongTensor of shape N.
        samples: noise draws per image (default 20).
        sigma: absolute standard deviation of the noise in [0, 1] pixel units (default 0.2,
            i.e. 20 % of the pixel range — SmoothGrad's "noise level" relative to max − min).
        internal_batch_size: at most this many noisy inputs go through the model at once
            (None: all N·samples). The result does not depend on it.
        generator: torch.Generator for the noise (reproducible); None uses torch's global RNG.
            The noise for sample s is one N×C×H×W draw, drawn in order s = 0, 1, ...

    Returns:
        Detached tensor of ``x``'s shape and dtype ((logit per input unit)², or logit per
        input unit when ``squared=False``).
    """
    t = check_inputs(x, target)
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise RobenchError(f"smoothgrad samples must be a positive integer, got {samples!r}")
    if not sigma >= 0:
        raise RobenchError(f"smoothgrad sigma must be >= 0, got {sigma!r}")
    samples = int(samples)
    xd = x.detach()
    n, rest = xd.shape[0], xd.shape[1:]
    total = torch.zeros(xd.shape, dtype=torch.float64, device=xd.device)
    noise: Tensor | None = None
    noise_at = -1
    with eval_mode(model):
        for s0, s1, i0, i1 in step_chunks(n, samples, internal_batch_size):
            k, m = s1 - s0, i1 - i0
            if noise_at != s0:  # new group of samples: draw its noise, one x-sized draw each
                noise = torch.stack([_noise(xd.shape, xd, generator) for _ in range(k)])
                noise_at = s0
            assert noise is not None
            noisy = xd[i0:i1].unsqueeze(0) + sigma * noise[:, i0:i1]
            grads = logit_grad(model, noisy.reshape((k * m,) + rest), t[i0:i1].repeat(k),
                               copy=False)
            if squared:
                grads = grads * grads
            total[i0:i1] += grads.view((k, m) + rest).sum(0).to(torch.float64)
    return (total / samples).to(xd.dtype)
