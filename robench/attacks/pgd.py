"""l∞ projected gradient descent (Madry et al.) and the TRADES inner maximisation, batched in torch.

Training crafts an adversarial batch at every step, so this hot path is written directly in
torch rather than through foolbox (whose tensor wrapping costs time per call); the tests check
that it produces foolbox ``LinfPGD``'s iterates exactly. Evaluation suites use foolbox itself.
The model is run in eval mode (BatchNorm statistics untouched) and gradients are taken with
respect to the input only, so parameter ``.grad`` is never modified.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from robench.errors import RobenchError
from robench.models.modes import eval_mode

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _ascend(model: nn.Module, x: torch.Tensor, start: torch.Tensor, loss_fn: LossFn, eps: float, steps: int,
            step_size: float) -> torch.Tensor:
    """``steps`` signed-gradient ascent steps on ``loss_fn(model(x'))`` projected to the ε-ball and [0, 1]."""
    x_adv = start.detach()
    with eval_mode(model), torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            grad, = torch.autograd.grad(loss_fn(model(x_adv)), x_adv)
            x_adv = x_adv.detach() + step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv.detach()


def _check(eps: float, steps: int, step_size: float) -> None:
    if eps < 0 or steps < 0 or step_size < 0:
        raise RobenchError(f"PGD needs eps, steps and step size ≥ 0 (got {eps}, {steps}, {step_size})")


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255, steps: int = 10,
             step_size: float = 2 / 255, random_start: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Untargeted l∞ PGD on the cross-entropy: N×C×H×W in [0, 1] → adversarial images, same shape.

    ``random_start`` draws a uniform start in the ε-ball (clipped to [0, 1]) from ``generator``.
    """
    _check(eps, steps, step_size)
    start = x
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
        start = (x + (noise.to(x.device) * 2 - 1) * eps).clamp(0.0, 1.0)
    return _ascend(model, x, start, lambda logits: F.cross_entropy(logits, y, reduction="sum"), eps, steps, step_size)


def n_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255, step_size: float = 8 / 255,
           noise_scale: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """N-FGSM (de Jorge et al. 2022): one signed-gradient step of ``step_size`` from x + U(−kε, kε), k = ``noise_scale``.

    The perturbation is not projected back to the ε-ball (only clipped to [0, 1]): the stronger
    noise and the missing projection are what keep single-step training free of catastrophic
    overfitting without a check. N×C×H×W in [0, 1] → same shape.
    """
    _check(eps, 1, step_size)
    noise = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    start = (x + (noise.to(x.device) * 2 - 1) * (noise_scale * eps)).clamp(0.0, 1.0)
    unbounded = 2 * (noise_scale * eps + step_size)  # larger than any step can reach: no projection
    return _ascend(model, start, start, lambda logits: F.cross_entropy(logits, y, reduction="sum"), unbounded, 1,
                   step_size)


def trades_adversary(model: nn.Module, x: torch.Tensor, *, eps: float = 8 / 255, steps: int = 10,
                     step_size: float = 2 / 255, generator: torch.Generator | None = None) -> torch.Tensor:
    """TRADES' inner maximisation of KL(f(x) ‖ f(x')) from x + 0.001·N(0, I) (Zhang et al. 2019)."""
    _check(eps, steps, step_size)
    with torch.no_grad(), eval_mode(model):
        clean = F.softmax(model(x), dim=1)
    noise = torch.randn(x.shape, generator=generator, device=generator.device if generator else x.device)
    start = (x + 0.001 * noise.to(x.device)).clamp(0.0, 1.0)
    return _ascend(model, x, start, lambda logits: F.kl_div(F.log_softmax(logits, 1), clean, reduction="sum"),
                   eps, steps, step_size)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **pgd_options: float) -> torch.Tensor:
    """N bool: the model's prediction on the PGD example equals the label."""
    x_adv = pgd_linf(model, x, y, **pgd_options)  # type: ignore[arg-type]
    with torch.no_grad(), eval_mode(model):
        return model(x_adv).argmax(1) == y
