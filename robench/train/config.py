"""Training settings (:class:`TrainConfig`) and named presets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench.errors import RobenchError

SCHEDULES = ("cosine", "plateau", "constant")

PRESETS: dict[str, dict[str, Any]] = {
    # methods.md §8: CIFAR-style ResNet-18, SGD 0.1/0.9/5e-4, batch 128, crop+flip, no normalisation,
    # ReduceLROnPlateau on the training loss, keep the best PGD-10 checkpoint.
    "cifar10-reference": {"arch": "resnet18_cifar", "data": "cifar10", "epochs": 100, "batch_size": 128, "lr": 0.1,
                          "momentum": 0.9, "weight_decay": 5e-4, "schedule": "plateau", "augment": True,
                          "eps": 8 / 255, "attack_steps": 10, "step_size": 2 / 255},
    # The CPU-sized zoo recipe: the same loss and attack on a 73 k-parameter CNN.
    "cifar10-cpu": {"arch": "cnn_small", "data": "cifar10", "epochs": 15, "batch_size": 128, "lr": 0.1,
                    "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine", "augment": True,
                    "eps": 8 / 255, "attack_steps": 10, "step_size": 2 / 255},
}


@dataclass
class TrainConfig:
    """Every setting of a training run; recorded in the checkpoint's metadata.

    ``eps`` and ``step_size`` are in [0, 1] pixel units (8/255 = 0.0314). ``eval_pgd_steps``
    is the PGD used for the per-epoch robust test accuracy (0: none; default 10 steps for
    adversarial methods, none for ``standard``); adversarial methods keep
    the checkpoint with the best robust accuracy, ``standard`` the one with the best clean accuracy.
    """

    out: str
    method: str = "standard"
    arch: str = "cnn_small"
    data: str = "cifar10"
    data_dir: str | None = None
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    seed: int = 0
    train_limit: int | None = None
    eval_limit: int | None = 2000
    device: str = "auto"
    name: str | None = None
    resume: bool = False
    eps: float = 8 / 255
    attack_steps: int = 10
    step_size: float = 2 / 255
    beta: float = 6.0
    lam: float = 1.0
    teacher: str | None = None
    grad_target: str = "logit"
    student_input: str = "clean"
    eval_pgd_steps: int | None = None
    amp: bool = False
    channels_last: bool = False

    def validate(self) -> None:
        """Refuse settings that cannot train, with one line each."""
        if self.schedule not in SCHEDULES:
            raise RobenchError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        for field_name in ("epochs", "batch_size", "train_limit", "eval_limit"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise RobenchError(f"--{field_name.replace('_', '-')} must be at least 1, got {value}")
        if self.lr <= 0:
            raise RobenchError(f"--lr must be positive, got {self.lr:g}")
        if not 0 <= self.eps <= 1 or self.step_size < 0 or self.attack_steps < 0:
            raise RobenchError(f"--eps must lie in [0, 1] (8/255 = 0.0314) and --attack-steps, --step-size be ≥ 0 "
                               f"(got {self.eps:g}, {self.attack_steps}, {self.step_size:g})")
        if self.eval_pgd_steps is not None and self.eval_pgd_steps < 0:
            raise RobenchError("--eval-pgd-steps must be ≥ 0")
        if Path(self.out).is_dir():
            raise RobenchError(f"--out {self.out} is a directory; give the checkpoint's file name, e.g. "
                               f"{Path(self.out) / 'model.pt'}")

    @property
    def robust_eval_steps(self) -> int:
        """PGD steps of the per-epoch robust accuracy: as set, else 10 for adversarial methods and 0 for standard."""
        if self.eval_pgd_steps is not None:
            return self.eval_pgd_steps
        return 0 if self.method == "standard" else 10


def preset(name: str) -> dict[str, Any]:
    """The settings of preset ``name``."""
    if name not in PRESETS:
        raise RobenchError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])
