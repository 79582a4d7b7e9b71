"""Training methods: each turns a batch into a loss and its named parts.

A method gets the model in train mode, the batch in [0, 1] and a generator for its random
draws (PGD's random start). Adversarial methods (:mod:`robench.train.adversarial`) craft their
examples with the model in eval mode, then compute the loss in train mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from robench.errors import RobenchError
from robench.models.wrapper import RobenchModel
from robench.registry import Registry
from robench.train.adversarial import IGD, PGDAT, TRADES, AttackSettings, GradientAlignment
from robench.train.config import TrainConfig


class TrainMethod(Protocol):
    """``loss(model, x, y, generator, forward)`` → (scalar loss, {part: value} for the log).

    ``forward`` runs the loss's main forward pass (see :mod:`robench.train.adversarial`).

    ``selection`` names the test metric that picks the kept checkpoint: ``clean`` or ``pgd``.
    """

    name: str
    selection: str

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        ...


class Standard:
    """Cross-entropy on clean images (NAT), with optional label smoothing."""

    name = "standard"
    selection = "clean"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def loss(self, model: RobenchModel, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
             forward: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(forward(x), y, label_smoothing=self.label_smoothing)
        return ce, {"ce": float(ce.detach())}


def _teacher(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
             device: torch.device) -> RobenchModel:
    """Load the teacher (IGD's, or the gradient-cosine measurement's) and check it fits the student's data."""
    from robench.models.loading import load_model

    if not config.teacher:
        raise RobenchError(f"--method {config.method} needs --teacher CHECKPOINT (a standard-trained model)")
    teacher = load_model(config.teacher, allow_arch=config.arch)  # a teacher of the --arch callable loads
    if teacher.info.input_size is not None and tuple(teacher.info.input_size) != tuple(image_shape):
        raise RobenchError(f"the teacher takes {teacher.info.input_size} images but the data is {image_shape}")
    if teacher.info.num_classes is not None and teacher.info.num_classes != num_classes:
        raise RobenchError(f"the teacher has {teacher.info.num_classes} classes but the data has {num_classes}")
    return teacher.to(device)


MethodBuilder = Callable[[TrainConfig, tuple[int, int, int], int, torch.device], TrainMethod]

#: Training methods by name (``--method NAME``): builders ``(config, image shape, class count, device) -> method``.
METHODS: Registry[MethodBuilder] = Registry("training method")


def _attack(config: TrainConfig) -> AttackSettings:
    return AttackSettings(config.eps, config.attack_steps, config.step_size, config.inner_attack, config.eps_warmup)


@METHODS.register("standard")
def _standard(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
              device: torch.device) -> TrainMethod:
    return Standard(config.label_smoothing)


@METHODS.register("pgd-at")
def _pgd_at(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
            device: torch.device) -> TrainMethod:
    return PGDAT(_attack(config), label_smoothing=config.label_smoothing)


@METHODS.register("trades")
def _trades(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
            device: torch.device) -> TrainMethod:
    return TRADES(_attack(config), beta=config.beta, label_smoothing=config.label_smoothing)


@METHODS.register("trades-igd")
@METHODS.register("igd")  # applied first: registered before trades-igd
def _igd(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
         device: torch.device) -> TrainMethod:
    base = "trades" if config.method == "trades-igd" else "pgd-at"
    return IGD(_teacher(config, image_shape, num_classes, device), _attack(config), lam=config.lam,
               grad_target=config.grad_target, student_input=config.student_input, base=base, beta=config.beta,
               label_smoothing=config.label_smoothing, fraction=config.igd_fraction, lam_warmup=config.lam_warmup)


def make_method(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
                device: torch.device) -> TrainMethod:
    """The training method ``config.method``, built with the config's attack and loss settings."""
    if config.method not in METHODS:
        raise RobenchError(f"unknown training method {config.method!r}; choose from {', '.join(METHODS)}")
    return METHODS[config.method](config, image_shape, num_classes, device)


def make_alignment(config: TrainConfig, method: TrainMethod, image_shape: tuple[int, int, int], num_classes: int,
                   device: torch.device) -> GradientAlignment | None:
    """The gradient-cosine measurement against ``--teacher`` for a method that does not compute the cosine
    itself (IGD does, on its own term's images); None without a teacher or for IGD."""
    if not config.teacher or isinstance(method, IGD):
        return None
    return GradientAlignment(_teacher(config, image_shape, num_classes, device), config.grad_target)
