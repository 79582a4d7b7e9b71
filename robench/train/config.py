"""Training settings (:class:`TrainConfig`) and named presets."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from robench.errors import RobenchError
from robench.options import setting

SCHEDULES = ("cosine", "plateau", "constant", "onecycle")
INNER_ATTACKS = ("pgd", "n-fgsm")

PRESETS: dict[str, dict[str, Any]] = {
    # The papers' recipe (docs/training.md), as the IGD authors' train.py / advattack.py run it: CIFAR-style
    # ResNet-18, SGD 0.1/0.9/5e-4, batch 128, crop+flip, no normalisation, 150 epochs, ReduceLROnPlateau
    # (patience 10) on the training loss, PGD-10 of 2/255 from a random start (student in eval mode), the IGD
    # term on the whole batch with a plain cross-entropy teacher (no label smoothing), keep the epoch with the
    # best PGD-10 test accuracy.
    "cifar10-reference": {"arch": "resnet18_cifar", "data": "cifar10", "epochs": 150, "batch_size": 128, "lr": 0.1,
                          "momentum": 0.9, "weight_decay": 5e-4, "schedule": "plateau", "plateau_patience": 10,
                          "augment": True, "eps": 8 / 255, "inner_attack": "pgd", "attack_steps": 10,
                          "step_size": 2 / 255, "igd_fraction": 1.0, "label_smoothing": 0.0},
    # A small CPU recipe: the same loss and attack on a 73 k-parameter CNN. It trained the retired cnn_small zoo;
    # the bundled zoo (robench/assets/zoo) is airbench_s trained with cifar10-fast below.
    "cifar10-cpu": {"arch": "cnn_small", "data": "cifar10", "epochs": 15, "batch_size": 128, "lr": 0.1,
                    "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine", "augment": True,
                    "eps": 8 / 255, "attack_steps": 10, "step_size": 2 / 255},
    # The fast CPU recipe (docs/training.md): an airbench94-shaped net (frozen patch whitening), Nesterov SGD
    # with a one-cycle schedule stepped per batch, flip + 2-pixel translation. Standard training adds label
    # smoothing 0.2 (airbench); adversarial methods train against N-FGSM (de Jorge et al. 2022: one step of ε
    # from noise in the 2ε-ball; FGSM-RS overfitted catastrophically here, reports/benchmarks/fast-recipe.md) and
    # keep the epoch with the best PGD-10 accuracy on 1,000 test images, the guard against catastrophic overfitting.
    "cifar10-fast": {"arch": "airbench_s", "data": "cifar10", "epochs": 10, "batch_size": 512, "lr": 0.4,
                     "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "onecycle",
                     "augment": True, "crop_padding": 2, "eval_limit": 1000, "channels_last": True,
                     "eps": 8 / 255, "inner_attack": "n-fgsm", "attack_steps": 1, "step_size": 8 / 255,
                     "methods": {"standard": {"label_smoothing": 0.2, "epochs": 20}, "igd": {"igd_fraction": 0.125},
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
    the checkpoint with the best robust accuracy (with ``select_tolerance`` > 0, a later epoch within that
    much of the best robust accuracy and with higher clean accuracy replaces it), ``standard`` the one
    with the best clean accuracy.
    """

    out: str = field(metadata={"help": "Checkpoint to write (robench format, .pt or .safetensors).", "short": "-o"})
    method: str = setting("standard", "standard, pgd-at, trades, igd or trades-igd.")
    arch: str = setting("cnn_small", "Architecture: robench name, timm name or pkg.module:callable.")
    data: str = setting("cifar10", "Dataset spec (its train split is used; test split for evaluation).")
    eval_data: str | None = setting(None, "Dataset spec for the per-epoch accuracies (default: --data), read at "
                                          "--eval-split.")
    eval_split: str = setting("test", "Split of the evaluation dataset: test or val.")
    init: str | None = setting(None, "Fine-tune: start from this checkpoint's weights, normalisation and input size "
                                     "(its architecture; --arch names it for a bare state dict); image folders are "
                                     "decoded at its size and crop.")
    data_dir: str | None = setting(None, "Where to look for datasets (default $ROBENCH_DATA).")
    epochs: int = setting(30, "Training epochs.")
    batch_size: int = setting(128, "Global batch size (split across ranks under torchrun).")
    lr: float = setting(0.1, "Initial (onecycle: peak) SGD learning rate.")
    momentum: float = setting(0.9, "SGD momentum.")
    nesterov: bool = setting(False, "Nesterov momentum.")
    weight_decay: float = setting(5e-4, "SGD weight decay.")
    schedule: str = setting("cosine", "cosine, plateau (ReduceLROnPlateau on training loss), constant, or onecycle "
                                   "(linear warm-up then linear decay to 0, per batch).")
    warmup: float = setting(0.25, "onecycle: fraction of the steps spent warming up.")
    plateau_patience: int = setting(10, "plateau: epochs without a lower training loss before the learning rate "
                                        "drops tenfold (10: the IGD authors' train.py).", min=0)
    label_smoothing: float = setting(0.0, "Label smoothing of the cross-entropy terms.")
    augment: bool = setting(True, "Random crop (zero padding --crop-padding) and horizontal flip.")
    crop_padding: int = setting(4, "Largest shift, in pixels, of the random crop.")
    seed: int = setting(0, "Seed of the initial weights and of every random draw.", min=0)
    train_limit: int | None = setting(None, "Train on a seeded subset of this many images.")
    eval_limit: int | None = setting(2000, "Test images used for per-epoch accuracy.")
    device: str = setting("auto", "auto, cpu or cuda.")
    name: str | None = setting(None, "Model name recorded in the checkpoint (default: file stem).")
    resume: bool = setting(False, "Continue an interrupted run from OUT.state.pt.")
    eps: float = setting(8 / 255, "l∞ radius in [0,1] units (8/255 = 0.0314).")
    inner_attack: str = setting("pgd", "Training adversary: pgd (FGSM-RS: --attack-steps 1 --step-size 1.25ε) or "
                                    "n-fgsm (one step of --step-size from 2ε noise, no projection).")
    attack_steps: int = setting(10, "PGD steps of the training adversary.")
    step_size: float = setting(2 / 255, "PGD step size in [0,1] units.")
    eps_warmup: float = setting(0.0, "Adversarial methods: fraction of the training steps over which ε and the step "
                                     "size rise linearly from 0 (0: the full ε from the first step).")
    beta: float = setting(6.0, "TRADES β.")
    lam: float = setting(1.0, "IGD λ (weight of the cosine term).")
    lam_warmup: float = setting(0.0, "IGD: fraction of the training steps over which λ rises linearly from 0 to "
                                     "--lam (0: the full λ from the first step).")
    igd_fraction: float = setting(1.0, "IGD: share of each batch on which the cosine term is computed (an unbiased "
                                    "estimate at a fraction of the double backprop's cost).")
    teacher: str | None = setting(None, "IGD teacher checkpoint (standard-trained, same input size and classes).")
    grad_target: str = setting("logit", "IGD gradient of the true-class logit or of the CE loss.")
    student_input: str = setting("clean", "IGD student gradient at the clean or the adversarial input.")
    eval_pgd_steps: int | None = setting(None, "PGD steps for the per-epoch robust test accuracy (default 10 for "
                                            "adversarial methods, 0 for standard).")
    select_tolerance: float = setting(0.0, "Adversarial methods: an epoch whose PGD test accuracy is within this "
                                           "fraction of the best so far and whose clean test accuracy beats the kept "
                                           "epoch's is kept instead (0: the best PGD epoch; 0.005 = half a point).")
    freeze_bn: bool = setting(False, "Keep BatchNorm layers in eval mode while training (their running statistics "
                                     "fixed): for fine-tuning on small batches or on images unlike the pretraining's.")
    amp: bool = setting(False, "Mixed precision (fp16 on CUDA, bf16 on CPU).")
    channels_last: bool = setting(False, "Channels-last memory format (faster convolutions on CUDA and on the CPU).")

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
        for name in ("lam_warmup", "eps_warmup"):
            if not 0 <= getattr(self, name) < 1:
                raise RobenchError(f"--{name.replace('_', '-')} must lie in [0, 1), got {getattr(self, name):g}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup < 1 or self.crop_padding < 0:
            raise RobenchError(f"--label-smoothing and --warmup must lie in [0, 1) and --crop-padding be ≥ 0 (got "
                               f"{self.label_smoothing:g}, {self.warmup:g}, {self.crop_padding})")
        if not 0 <= self.select_tolerance < 1:
            raise RobenchError(f"--select-tolerance must lie in [0, 1) (a fraction: 0.005 = half a point), "
                               f"got {self.select_tolerance:g}")
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


def make_config(preset_name: str | None = None, **settings: Any) -> TrainConfig:
    """The :class:`TrainConfig` of keyword ``settings`` (its fields), on top of preset ``preset_name``'s
    settings for the method when given (given fields win): what ``robench.train(preset=..., **settings)`` trains.
    An unknown field is a RobenchError naming the options."""
    names = {f.name for f in fields(TrainConfig)}
    if unknown := sorted(set(settings) - names):
        raise RobenchError(f"unknown training option(s) {', '.join(unknown)}; options: {', '.join(sorted(names))}")
    given = preset(preset_name, settings.get("method", "standard")) if preset_name else {}
    return TrainConfig(**{**given, **settings})
