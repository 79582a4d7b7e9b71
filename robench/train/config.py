"""Training settings (:class:`TrainConfig`) and named presets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench.errors import RobenchError

SCHEDULES = ("cosine", "plateau", "constant", "onecycle")
INNER_ATTACKS = ("pgd", "n-fgsm")

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
    # The fast CPU recipe (docs/training.md): an airbench94-shaped net (frozen patch whitening), Nesterov SGD
    # with a one-cycle schedule stepped per batch, flip + 2-pixel translation. Standard training adds label
    # smoothing 0.2 (airbench); adversarial methods train against N-FGSM (de Jorge et al. 2022: one step of ε
    # from noise in the 2ε-ball; FGSM-RS overfitted catastrophically here, reports/benchmarks/fast-recipe.md) and
    # keep the epoch with the best PGD-10 accuracy on 1,000 test images, the guard against catastrophic overfitting.
    "cifar10-fast": {"arch": "airbench", "data": "cifar10", "epochs": 10, "batch_size": 512, "lr": 0.4,
                     "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "onecycle",
                     "augment": True, "crop_padding": 2, "eval_limit": 1000, "channels_last": True,
                     "eps": 8 / 255, "inner_attack": "n-fgsm", "attack_steps": 1, "step_size": 8 / 255,
                     "methods": {"standard": {"label_smoothing": 0.2}, "igd": {"igd_fraction": 0.125},
                                 "trades-igd": {"igd_fraction": 0.125}}},
}


@dataclass
class TrainConfig:
    """Every setting of a training run; recorded in the checkpoint's metadata.

    ``eps`` and ``step_size`` are in [0, 1] pixel units (8/255 = 0.0314). ``inner_attack`` is the training
    adversary of the adversarial methods: ``pgd`` (``attack_steps`` steps of ``step_size`` from a uniform
    start in the ε-ball; FGSM-RS is 1 step of 1.25 ε) or ``n-fgsm`` (de Jorge et al. 2022: one step of
    ``step_size`` from a uniform start in the 2ε-ball, not projected back to the ε-ball). ``schedule``
    ``onecycle`` raises the learning rate linearly from 0 to ``lr`` over the first ``warmup`` fraction of
    the steps and lowers it linearly to 0 by the last step (stepped per batch). ``eval_pgd_steps``
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
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup: float = 0.25
    label_smoothing: float = 0.0
    augment: bool = True
    crop_padding: int = 4
    seed: int = 0
    train_limit: int | None = None
    eval_limit: int | None = 2000
    device: str = "auto"
    name: str | None = None
    resume: bool = False
    eps: float = 8 / 255
    inner_attack: str = "pgd"
    attack_steps: int = 10
    step_size: float = 2 / 255
    beta: float = 6.0
    lam: float = 1.0
    igd_fraction: float = 1.0
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
        if self.inner_attack not in INNER_ATTACKS:
            raise RobenchError(f"unknown inner attack {self.inner_attack!r}; choose from {', '.join(INNER_ATTACKS)}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup < 1 or self.crop_padding < 0:
            raise RobenchError(f"--label-smoothing and --warmup must lie in [0, 1) and --crop-padding be ≥ 0 (got "
                               f"{self.label_smoothing:g}, {self.warmup:g}, {self.crop_padding})")
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


def preset(name: str, method: str = "standard") -> dict[str, Any]:
    """The settings of preset ``name`` for training ``method`` (a preset may set some per method)."""
    if name not in PRESETS:
        raise RobenchError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    settings = {k: v for k, v in PRESETS[name].items() if k != "methods"}
    settings.update(PRESETS[name].get("methods", {}).get(method, {}))
    return settings
