"""Adversarial training methods (methods.md §8): PGD-AT, TRADES, IGD and TRADES+IGD.

Adversarial examples are crafted with the model in eval mode (:mod:`robench.attacks.pgd`),
then the loss is computed with the model in the mode the trainer set (train). ``forward`` is
the module to use for the loss's main forward pass — the DistributedDataParallel wrapper in a
distributed run, whose gradient hooks then average the whole step's gradient across ranks — and
is called exactly once per step; every other forward pass uses ``model`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robench.attacks.pgd import pgd_linf, trades_adversary
from robench.errors import RobenchError
from robench.models.modes import eval_mode
from robench.models.wrapper import RobenchModel

GRAD_TARGETS = ("logit", "loss")
STUDENT_INPUTS = ("clean", "adv")


@dataclass
class AttackSettings:
    """The training adversary: l∞ ball of radius ``eps``, ``steps`` steps of ``step_size`` (all in [0, 1] units)."""

    eps: float = 8 / 255
    steps: int = 10
    step_size: float = 2 / 255

    def validate(self) -> None:
        if not 0 <= self.eps <= 1 or self.steps < 0 or self.step_size < 0:
            raise RobenchError(f"--eps must lie in [0, 1] and --steps/--step-size be ≥ 0 (got {self.eps}, {self.steps}, {self.step_size})")


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, target: str = "logit",
                   create_graph: bool = False) -> torch.Tensor:
    """∇ₓ of the true-class logit (``target="logit"``) or of the summed CE (``"loss"``), N×C×H×W."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    objective = logits.gather(1, y[:, None]).sum() if target == "logit" else F.cross_entropy(logits, y, reduction="sum")
    grad, = torch.autograd.grad(objective, x, create_graph=create_graph)
    return grad


def trades_loss(model: torch.nn.Module, forward: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                y: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)) / N, as in the TRADES reference implementation."""
    logits, logits_adv = model(x), forward(x_adv)
    ce = F.cross_entropy(logits, y)
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
    return ce + beta * kl, {"ce": float(ce.detach()), "kl": float(kl.detach())}


class PGDAT:
    """Madry et al.: cross-entropy on PGD examples (uniform random start)."""

    name = "pgd-at"
    selection = "pgd"

    def __init__(self, attack: AttackSettings | None = None) -> None:
        self.attack = attack or AttackSettings()
        self.attack.validate()

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.attack
        x_adv = pgd_linf(model, x, y, eps=a.eps, steps=a.steps, step_size=a.step_size, generator=generator)
        ce = F.cross_entropy(forward(x_adv), y)
        return ce, {"ce": float(ce.detach())}


class TRADES:
    """Zhang et al. 2019: clean CE + β · KL between clean and adversarial predictions (β = 6)."""

    name = "trades"
    selection = "pgd"

    def __init__(self, attack: AttackSettings | None = None, beta: float = 6.0) -> None:
        self.attack, self.beta = attack or AttackSettings(), beta
        self.attack.validate()

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.attack
        x_adv = trades_adversary(model, x, eps=a.eps, steps=a.steps, step_size=a.step_size, generator=generator)
        return trades_loss(model, forward, x, x_adv, y, self.beta)


class IGD:
    """Input Gradient Distillation (Chen et al.): the base adversarial loss plus
    λ · mean(1 − cos(∇ₓ z_s,y(x), ∇ₓ z_t,y(x))) against a frozen standard-trained teacher.

    Teacher gradient: true-class logit at clean x, detached (teacher in eval mode). Student
    gradient: at clean x (or x_adv with ``student_input="adv"``) with ``create_graph=True`` so
    the cosine term is trained by double backpropagation. ``grad_target="loss"`` uses the CE
    loss's gradient for both instead of the logit's. ``base="trades"`` gives TRADES+IGD.
    """

    selection = "pgd"

    def __init__(self, teacher: RobenchModel, attack: AttackSettings | None = None, lam: float = 1.0,
                 grad_target: str = "logit", student_input: str = "clean", base: str = "pgd-at",
                 beta: float = 6.0) -> None:
        if grad_target not in GRAD_TARGETS:
            raise RobenchError(f"--grad-target must be one of {', '.join(GRAD_TARGETS)}, got {grad_target!r}")
        if student_input not in STUDENT_INPUTS:
            raise RobenchError(f"--student-input must be one of {', '.join(STUDENT_INPUTS)}, got {student_input!r}")
        if lam < 0:
            raise RobenchError(f"--lam must be ≥ 0, got {lam}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.attack = attack or AttackSettings()
        self.attack.validate()
        self.lam, self.grad_target, self.student_input, self.base, self.beta = lam, grad_target, student_input, base, beta
        self.name = "igd" if base == "pgd-at" else "trades-igd"

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.attack
        if self.base == "trades":
            x_adv = trades_adversary(model, x, eps=a.eps, steps=a.steps, step_size=a.step_size, generator=generator)
            base, parts = trades_loss(model, forward, x, x_adv, y, self.beta)
        else:
            x_adv = pgd_linf(model, x, y, eps=a.eps, steps=a.steps, step_size=a.step_size, generator=generator)
            base = F.cross_entropy(forward(x_adv), y)
            parts = {"ce": float(base.detach())}
        # The double backprop runs in float32 even under --amp: second-order terms lose too much in half types.
        with torch.autocast(x.device.type, enabled=False):
            with eval_mode(self.teacher):
                teacher_grad = input_gradient(self.teacher, x.float(), y, self.grad_target).detach()
            student_x = (x if self.student_input == "clean" else x_adv).float()
            student_grad = input_gradient(model, student_x, y, self.grad_target, create_graph=True)
            cosine = F.cosine_similarity(student_grad.flatten(1), teacher_grad.flatten(1), dim=1, eps=1e-12)
        igd = (1 - cosine).mean()
        parts.update(igd=float(igd.detach()), cos=float(cosine.mean().detach()))
        return base + self.lam * igd, parts
