"""Adversarial training methods (docs/training.md): PGD-AT, TRADES, IGD and TRADES+IGD.

Adversarial examples are crafted with the model in eval mode (:mod:`robench.attacks.pgd`),
then the loss is computed with the model in the mode the trainer set (train). ``forward`` is
the module to use for the loss's main forward pass — the DistributedDataParallel wrapper in a
distributed run, whose gradient hooks then average the whole step's gradient across ranks — and
is called exactly once per step; every other forward pass uses ``model`` itself.
:class:`GradientAlignment` measures the teacher–student gradient cosine of the other methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from robench.attacks.pgd import n_fgsm, pgd_linf, trades_adversary
from robench.errors import RobenchError
from robench.models.modes import eval_mode
from robench.models.wrapper import RobenchModel

GRAD_TARGETS = ("logit", "loss")
STUDENT_INPUTS = ("clean", "adv")


def warmup_scale(progress: float, warmup: float) -> float:
    """The linear warm-up's factor: min(1, progress / warmup), 1 without a warm-up (``warmup`` 0); ``progress`` and
    ``warmup`` are shares of the training's steps."""
    return min(1.0, progress / warmup) if warmup else 1.0


@dataclass
class AttackSettings:
    """The training adversary: l∞ ball of radius ``eps``, ``steps`` steps of ``step_size`` (all in [0, 1] units).

    ``kind`` ``pgd``: PGD from a uniform start in the ε-ball (``steps=1, step_size=1.25ε`` is FGSM-RS);
    ``n-fgsm``: one N-FGSM step (``steps`` is ignored). ``warmup`` > 0: ε and the step size rise linearly from 0
    over that fraction of the training (:meth:`at`).
    """

    eps: float = 8 / 255
    steps: int = 10
    step_size: float = 2 / 255
    kind: str = "pgd"
    warmup: float = 0.0

    def validate(self) -> None:
        if not 0 <= self.eps <= 1 or self.steps < 0 or self.step_size < 0:
            raise RobenchError(f"--eps must lie in [0, 1] and --steps/--step-size be ≥ 0 (got {self.eps}, {self.steps}, {self.step_size})")
        if not 0 <= self.warmup < 1:
            raise RobenchError(f"--eps-warmup must lie in [0, 1), got {self.warmup:g}")

    def at(self, progress: float) -> AttackSettings:
        """The adversary when the share ``progress`` of the training is done: ε and the step size times
        min(1, progress / warmup) (these settings themselves without a warm-up)."""
        if not self.warmup:
            return self
        scale = warmup_scale(progress, self.warmup)
        return replace(self, eps=self.eps * scale, step_size=self.step_size * scale, warmup=0.0)

    def craft(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
        """Adversarial examples for the cross-entropy of ``model`` at (x, y), N×C×H×W in [0, 1]."""
        if self.kind == "n-fgsm":
            return n_fgsm(model, x, y, eps=self.eps, step_size=self.step_size, generator=generator)
        return pgd_linf(model, x, y, eps=self.eps, steps=self.steps, step_size=self.step_size, generator=generator)


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, target: str = "logit",
                   create_graph: bool = False) -> torch.Tensor:
    """∇ₓ of the true-class logit (``target="logit"``) or of the summed CE (``"loss"``), N×C×H×W."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    objective = logits.gather(1, y[:, None]).sum() if target == "logit" else F.cross_entropy(logits, y, reduction="sum")
    grad, = torch.autograd.grad(objective, x, create_graph=create_graph)
    return grad


def gradient_cosine(student_grad: torch.Tensor, teacher_grad: torch.Tensor) -> torch.Tensor:
    """Per-image cosine between two N×C×H×W input gradients, each flattened: N values in [-1, 1]."""
    return F.cosine_similarity(student_grad.flatten(1), teacher_grad.flatten(1), dim=1, eps=1e-12)


def frozen(teacher: RobenchModel) -> RobenchModel:
    """``teacher`` in eval mode with gradients off for its parameters (its input gradients still flow)."""
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


class GradientAlignment:
    """The teacher–student input-gradient cosine of a method that does not compute it itself, measured only.

    On the first ⌈``share``·N⌉ images of each batch (the batch is in random order: a random subset), both
    models in eval mode (the student's BatchNorm statistics and dropout untouched), in float32, without a
    graph into the update: the same weights train as without the measurement. Gradients of the true-class
    logit (``target="loss"``: of the CE loss) at clean x.
    """

    def __init__(self, teacher: RobenchModel, target: str = "logit", share: float = 0.125) -> None:
        self.teacher, self.target, self.share = frozen(teacher), target, share

    def measure(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor) -> float:
        """Mean cosine over the measured images of the batch ``x`` (N×C×H×W in [0, 1]), labels ``y``."""
        m = math.ceil(self.share * len(y))
        x_m, y_m = x[:m].detach().float(), y[:m]
        with torch.autocast(x.device.type, enabled=False), eval_mode(self.teacher), eval_mode(model):
            teacher_grad = input_gradient(self.teacher, x_m, y_m, self.target)
            student_grad = input_gradient(model, x_m, y_m, self.target)
        return float(gradient_cosine(student_grad, teacher_grad).mean())


def warmup_parts(attack: AttackSettings, now: AttackSettings) -> dict[str, float]:
    """The training log's ``eps`` column (the ε of this step) when ``attack`` warms ε up, else nothing."""
    return {"eps": now.eps} if attack.warmup else {}


def trades_loss(model: torch.nn.Module, forward: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                y: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)) / N, as in the TRADES reference implementation."""
    logits, logits_adv = model(x), forward(x_adv)
    ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
    return ce + beta * kl, {"ce": float(ce.detach()), "kl": float(kl.detach())}


class PGDAT:
    """Madry et al.: cross-entropy on PGD examples (uniform random start)."""

    name = "pgd-at"
    selection = "pgd"

    def __init__(self, attack: AttackSettings | None = None, label_smoothing: float = 0.0) -> None:
        self.attack, self.label_smoothing = attack or AttackSettings(), label_smoothing
        self.attack.validate()
        self.progress = 1.0  # share of the training done (the trainer sets it before each step): the ε warm-up

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        attack = self.attack.at(self.progress)
        x_adv = attack.craft(model, x, y, generator)
        ce = F.cross_entropy(forward(x_adv), y, label_smoothing=self.label_smoothing)
        return ce, {"ce": float(ce.detach()), **warmup_parts(self.attack, attack)}


class TRADES:
    """Zhang et al. 2019: clean CE + β · KL between clean and adversarial predictions (β = 6)."""

    name = "trades"
    selection = "pgd"

    def __init__(self, attack: AttackSettings | None = None, beta: float = 6.0, label_smoothing: float = 0.0) -> None:
        self.attack, self.beta, self.label_smoothing = attack or AttackSettings(), beta, label_smoothing
        self.attack.validate()
        self.progress = 1.0  # the ε warm-up's progress (as PGDAT's)
        if self.attack.kind != "pgd":
            raise RobenchError(f"TRADES crafts its examples with its own KL attack; --inner-attack {self.attack.kind} "
                               "applies to pgd-at and igd only")

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.attack.at(self.progress)
        x_adv = trades_adversary(model, x, eps=a.eps, steps=a.steps, step_size=a.step_size, generator=generator)
        loss, parts = trades_loss(model, forward, x, x_adv, y, self.beta, self.label_smoothing)
        return loss, {**parts, **warmup_parts(self.attack, a)}


class IGD:
    """Input Gradient Distillation (Chen et al.): the base adversarial loss plus
    λ · mean(1 − cos(∇ₓ z_s,y(x), ∇ₓ z_t,y(x))) against a frozen standard-trained teacher.

    Teacher gradient: true-class logit at clean x, detached (teacher in eval mode). Student
    gradient: at clean x (or x_adv with ``student_input="adv"``) with ``create_graph=True`` so
    the cosine term is trained by double backpropagation. ``grad_target="loss"`` uses the CE
    loss's gradient for both instead of the logit's. ``base="trades"`` gives TRADES+IGD.

    ``fraction`` < 1 computes the cosine term on the first ⌈fraction·N⌉ images of each batch only
    (the batch is in random order, so a random subset): an unbiased estimate of the batch mean at a
    fraction of the double backprop's cost, which costs 2.4–3 single-step adversarial steps.

    The loss parts hold the term's mean cosine twice: as ``cos`` and as ``grad_cosine``, the training log's
    column that other methods fill through :class:`GradientAlignment` when given a teacher.

    ``lam_warmup`` > 0 raises λ linearly from 0 over that fraction of the training (``progress``, the share
    of the steps done, set by the trainer before each step), so that the cross-entropy is learned first; the
    attack's own ``warmup`` does the same for ε.
    """

    selection = "pgd"

    def __init__(self, teacher: RobenchModel, attack: AttackSettings | None = None, lam: float = 1.0,
                 grad_target: str = "logit", student_input: str = "clean", base: str = "pgd-at",
                 beta: float = 6.0, label_smoothing: float = 0.0, fraction: float = 1.0, lam_warmup: float = 0.0) -> None:
        if grad_target not in GRAD_TARGETS:
            raise RobenchError(f"--grad-target must be one of {', '.join(GRAD_TARGETS)}, got {grad_target!r}")
        if student_input not in STUDENT_INPUTS:
            raise RobenchError(f"--student-input must be one of {', '.join(STUDENT_INPUTS)}, got {student_input!r}")
        if lam < 0:
            raise RobenchError(f"--lam must be ≥ 0, got {lam}")
        if not 0 < fraction <= 1:
            raise RobenchError(f"--igd-fraction must lie in (0, 1], got {fraction}")
        self.teacher = frozen(teacher)
        self.attack = attack or AttackSettings()
        self.attack.validate()
        self.lam, self.grad_target, self.student_input, self.base, self.beta = lam, grad_target, student_input, base, beta
        self.label_smoothing, self.fraction, self.lam_warmup = label_smoothing, fraction, lam_warmup
        self.progress = 1.0  # share of the training done (the trainer sets it before each step)
        self.name = "igd" if base == "pgd-at" else "trades-igd"
        if base == "trades" and self.attack.kind != "pgd":
            raise RobenchError(f"TRADES crafts its examples with its own KL attack; --inner-attack {self.attack.kind} "
                               "applies to pgd-at and igd only")

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        a = self.attack.at(self.progress)
        if self.base == "trades":
            x_adv = trades_adversary(model, x, eps=a.eps, steps=a.steps, step_size=a.step_size, generator=generator)
            base, parts = trades_loss(model, forward, x, x_adv, y, self.beta, self.label_smoothing)
        else:
            x_adv = a.craft(model, x, y, generator)
            base = F.cross_entropy(forward(x_adv), y, label_smoothing=self.label_smoothing)
            parts = {"ce": float(base.detach())}
        parts.update(warmup_parts(self.attack, a))
        m = math.ceil(self.fraction * len(y))
        x_igd, y_igd = x[:m], y[:m]
        # The double backprop runs in float32 even under --amp: second-order terms lose too much in half types.
        with torch.autocast(x.device.type, enabled=False):
            with eval_mode(self.teacher):
                teacher_grad = input_gradient(self.teacher, x_igd.float(), y_igd, self.grad_target).detach()
            student_x = (x_igd if self.student_input == "clean" else x_adv[:m]).float()
            student_grad = input_gradient(model, student_x, y_igd, self.grad_target, create_graph=True)
            cosine = gradient_cosine(student_grad, teacher_grad)
        igd = (1 - cosine).mean()
        mean_cosine = float(cosine.mean().detach())  # grad_cosine: the log's column shared with measured methods
        parts.update(igd=float(igd.detach()), cos=mean_cosine, grad_cosine=mean_cosine)
        lam = self.lam * warmup_scale(self.progress, self.lam_warmup)
        if self.lam_warmup:
            parts["lam"] = lam
        return base + lam * igd, parts
