"""The training loop: SGD with a cosine, plateau or one-cycle schedule, per-epoch log, best/last checkpoints, resume.

Outputs for ``--out PATH`` (e.g. ``model.pt``):

- ``PATH``: the selected checkpoint (best clean test accuracy for ``standard``, best PGD test
  accuracy for adversarial methods, as in the reference recipe), robench format;
- ``PATH-last.pt``: the last epoch's checkpoint (same stem with ``-last``);
- ``PATH.log.csv``: one row per epoch (losses, accuracies, learning rate, seconds; ``grad_cosine``, the mean
  teacher–student input-gradient cosine, for IGD and for any method given ``--teacher``);
- ``PATH.state.pt``: the resume state (weights, optimizer, scheduler, RNG, epoch), removed at the end.

``--resume`` continues from the state file; a run interrupted and resumed ends with the same
weights as an uninterrupted one on the CPU, because every random draw (data order, augmentation)
comes from a generator whose state is saved with the epoch.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench._version import __version__
from robench.attacks import default_attack_batch
from robench.attacks.pgd import pgd_linf
from robench.data import load_dataset
from robench.data.imageset import ImageSet
from robench.devices import describe_device
from robench.distributed import DistContext
from robench.errors import RobenchError
from robench.io import write_atomic
from robench.models.architecture_spec import build_net
from robench.models.checkpoint import save_checkpoint
from robench.models.modes import eval_mode
from robench.models.wrapper import ModelInfo, RobenchModel
from robench.progress import make_progress
from robench.train.adversarial import GradientAlignment
from robench.train.augment import random_crop_flip
from robench.train.config import TrainConfig
from robench.train.methods import make_alignment, make_method


def _paths(out: str) -> dict[str, Path]:
    path = Path(out)
    stem = path.with_suffix("")
    return {"best": path, "last": stem.with_name(stem.name + "-last" + (path.suffix or ".pt")),
            "log": Path(f"{out}.log.csv"), "state": Path(f"{out}.state.pt")}


def train(config: TrainConfig) -> RobenchModel:
    """Train a model as ``config`` says and write its checkpoints and log; returns the selected model.

    Launched with ``torchrun`` (``WORLD_SIZE`` > 1), every rank draws the same global batch and
    augmentation from the shared generator and trains on its slice of it through
    DistributedDataParallel; metrics are summed across ranks and only rank 0 writes files.
    """
    config.validate()
    dist_ctx = DistContext.from_env(config.device)
    device = dist_ctx.device
    paths = _paths(config.out)
    start = _initial_model(config)
    resize = start.info.image_options() if start is not None else {}
    train_set = load_dataset(config.data, "train", config.data_dir, config.train_limit, config.seed, **resize)
    test_set = load_dataset(config.eval_data or config.data, config.eval_split, config.data_dir, config.eval_limit,
                            config.seed, **resize)
    c, h, w = train_set.image_shape
    method = make_method(config, (c, h, w), len(train_set.classes), device)
    alignment = make_alignment(config, method, (c, h, w), len(train_set.classes), device)
    torch.manual_seed(config.seed)  # before building: --seed decides the initial weights too
    if start is None:
        built = build_net(config.arch, len(train_set.classes), c)
        _init_from_data(built.net, train_set, config.seed)
        net, arch, mean, std, crop, interpolation = built.net, config.arch, (0.0,) * c, (1.0,) * c, None, None
    else:
        net, arch, mean, std = start.net, start.info.arch or config.arch, start.info.mean, start.info.std
        crop, interpolation = start.info.crop_pct, start.info.interpolation
    info = ModelInfo(
        name=config.name or Path(config.out).stem, arch=arch, num_classes=len(train_set.classes),
        input_size=(c, h, w), mean=mean, std=std, classes=train_set.classes, crop_pct=crop,
        interpolation=interpolation,
        training={"config": asdict(config), "method": method.name, "dataset": train_set.identity,
                  "robench": __version__, "torch": str(torch.__version__), "world_size": dist_ctx.world,
                  "device": describe_device(device)},
    )
    model = RobenchModel(net, info).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = dist_ctx.wrap(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
    steps_per_epoch = -(-(len(train_set)) // config.batch_size)
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    state: dict[str, Any] = {"epoch": 0, "log": []}  # the kept epoch is derived from the log (select_epoch)
    if config.resume:
        state = _load_state(paths["state"], model, optimizer, scheduler, generator)
    elif paths["state"].exists():
        raise RobenchError(f"{paths['state']} exists from an unfinished run: pass --resume to continue it, or delete it")
    images = torch.from_numpy(np.array(train_set.images)).to(device)
    labels = torch.from_numpy(train_set.labels).to(device)
    step = TrainStep(model, forward, method, optimizer, config, device, dist_ctx,
                     scheduler if config.schedule == "onecycle" else None, alignment)
    with make_progress() as progress:
        task = progress.add_task("training", total=config.epochs, completed=state["epoch"])
        for epoch in range(state["epoch"], config.epochs):
            started = time.time()
            row = step.epoch(images, labels, generator, first_step=epoch * steps_per_epoch,
                             total_steps=config.epochs * steps_per_epoch)
            row.update(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"],
                       test_acc=evaluate_accuracy(model, test_set, device, dist_ctx))
            if config.robust_eval_steps:
                row["test_pgd_acc"] = evaluate_accuracy(model, test_set, device, dist_ctx, config, seed=config.seed)
            row["seconds"] = round(time.time() - started, 2)
            if config.schedule != "onecycle":  # onecycle steps per batch, in TrainStep
                _step_scheduler(scheduler, row["loss"])
            state["log"].append(row)
            model.info.training["log"] = state["log"]
            by_pgd = method.selection == "pgd" and bool(config.robust_eval_steps)
            improved = select_epoch(state["log"], by_pgd, config.select_tolerance) == epoch + 1
            if improved:
                model.info.training["selected_epoch"] = epoch + 1
            state["epoch"] = epoch + 1
            if dist_ctx.is_main:
                save_checkpoint(model, paths["last"])
                if improved:
                    save_checkpoint(model, paths["best"])
                write_atomic(paths["log"], lambda tmp: pd.DataFrame(state["log"]).to_csv(tmp, index=False))
                _save_state(paths["state"], model, optimizer, scheduler, generator, state)
            dist_ctx.barrier()
            progress.update(task, advance=1, description=f"training: epoch {epoch + 1} loss {row['loss']:.3f} "
                                                          f"test acc {row['test_acc']:.3f}")
    if dist_ctx.is_main:
        paths["state"].unlink(missing_ok=True)
    dist_ctx.barrier()
    from robench.models.loading import load_model

    return load_model(str(paths["best"]), allow_arch=config.arch)


def evaluate_accuracy(model: RobenchModel, data: ImageSet, device: torch.device, dist_ctx: DistContext,
                      config: TrainConfig | None = None, seed: int = 0, batch_size: int | None = None) -> float:
    """Clean accuracy, or PGD accuracy when ``config`` is given (its ε, ``eval_pgd_steps``, step size).

    Each rank evaluates its share of the images; counts are summed across ranks. The PGD random
    start is seeded per batch, so the figure is the same at every epoch for the same weights. Batches of
    ``batch_size`` images, by default the attack batch of the image size (256 at 32 px, 20 at 224 px).
    """
    batch_size = batch_size or default_attack_batch(*data.image_shape[1:])
    correct = 0
    with eval_mode(model):
        for start in range(dist_ctx.rank * batch_size, len(data), batch_size * dist_ctx.world):
            x, y = data.batch(start, min(start + batch_size, len(data)), device)
            if config is not None:
                gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)
                x = pgd_linf(model, x, y, eps=config.eps, steps=config.robust_eval_steps, step_size=config.step_size,
                             generator=gen)
            with torch.no_grad():
                correct += int((model(x).argmax(1) == y).sum())
    return dist_ctx.sum(correct) / len(data)


def _initial_model(config: TrainConfig) -> RobenchModel | None:
    """The checkpoint a fine-tuning run starts from (``--init``; ``--arch`` for a bare state dict), else None."""
    if config.init is None:
        return None
    from robench.models.loading import load_model

    return load_model(config.init, arch=config.arch if config.arch != TrainConfig.arch else None,
                      allow_arch=config.arch)


def _init_from_data(net: torch.nn.Module, train_set: ImageSet, seed: int, count: int = 5000) -> None:
    """Give a network that fits some layers to data (``init_from_data``, e.g. patch whitening) a seeded
    sample of ``count`` training images, N×C×H×W in [0, 1], before the first step."""
    fit = getattr(net, "init_from_data", None)
    if fit is None:
        return
    pick = np.sort(np.random.default_rng(seed).choice(len(train_set), size=min(count, len(train_set)), replace=False))
    fit(torch.from_numpy(np.array(train_set.images[pick])).permute(0, 3, 1, 2).float().div_(255.0))


def train_mode(model: torch.nn.Module, freeze_bn: bool = False) -> None:
    """``model`` in training mode; with ``freeze_bn`` (fine-tuning on small batches) its BatchNorm layers stay in eval
    mode: they keep their statistics and normalise with them."""
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


class TrainStep:
    """One optimisation step and one epoch of them (mixed precision on request).

    ``batch_scheduler``, when given, is stepped after every optimiser step (the one-cycle schedule).
    ``alignment``, when given, measures the teacher–student gradient cosine before each step (``grad_cosine``).
    """

    def __init__(self, model: RobenchModel, forward: torch.nn.Module, method: Any, optimizer: torch.optim.Optimizer,
                 config: TrainConfig, device: torch.device, dist_ctx: DistContext, batch_scheduler: Any = None,
                 alignment: GradientAlignment | None = None) -> None:
        self.model, self.forward, self.method, self.optimizer = model, forward, method, optimizer
        self.config, self.device, self.dist, self.batch_scheduler = config, device, dist_ctx, batch_scheduler
        self.alignment = alignment
        self.amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if config.amp else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype is torch.float16 else None

    def epoch(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, first_step: int = 0,
              total_steps: int | None = None) -> dict[str, float]:
        """One pass over the data in a generator-drawn order; returns mean loss parts per image.

        A method with a ``progress`` attribute (the ε and λ warm-ups) gets the share of the ``total_steps`` done
        before each step (``first_step``: the steps of the earlier epochs)."""
        train_mode(self.model, self.config.freeze_bn)
        order = torch.randperm(len(labels), generator=generator)
        totals: dict[str, float] = {}
        for index, start in enumerate(range(0, len(order), self.config.batch_size)):
            if total_steps and hasattr(self.method, "progress"):
                self.method.progress = (first_step + index) / total_steps
            idx = order[start:start + self.config.batch_size]
            x = images[idx.to(images.device)].permute(0, 3, 1, 2).float().div_(255.0)
            y = labels[idx.to(labels.device)]
            if self.config.augment:  # drawn for the global batch on every rank: the generators stay in step
                x = random_crop_flip(x, generator if self.device.type == "cpu" else _device_generator(generator, self.device),
                                     padding=self.config.crop_padding)
            # adversarial methods draw their random starts from a generator split off the shared one
            attack_gen = _device_generator(generator, self.device) if hasattr(self.method, "attack") else generator
            x, y = self.dist.shard(x), self.dist.shard(y)
            if self.config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            parts = self.step(x, y, attack_gen)
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value * len(y)
        seen = len(order)  # every rank walks the same global order
        return {key: self.dist.sum(value) / seen for key, value in totals.items()}

    def step(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """Loss, backward, optimiser step; returns the loss parts of this shard."""
        measured = {} if self.alignment is None else {"grad_cosine": self.alignment.measure(self.model, x, y)}
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss, parts = self.method.loss(self.model, x, y, generator, self.forward)
        if not torch.isfinite(loss):
            raise RobenchError(f"the training loss became {float(loss.detach())}: lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.batch_scheduler is not None:
            self.batch_scheduler.step()
        return {"loss": float(loss.detach()), **parts, **measured}


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Any:
    if config.schedule == "onecycle":
        total = config.epochs * steps_per_epoch
        warmup = min(max(1, round(config.warmup * total)), total - 1)  # at least one step after the warm-up
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: step / warmup if step < warmup else max(0.0, (total - step) / (total - warmup)))
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=config.plateau_patience)
    return None


def _step_scheduler(scheduler: Any, loss: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(loss)
    elif scheduler is not None:
        scheduler.step()


def _save_state(path: Path, model: RobenchModel, optimizer: torch.optim.Optimizer, scheduler: Any,
                generator: torch.Generator, state: dict[str, Any]) -> None:
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict() if scheduler is not None else {},
               "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), **state}
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def select_epoch(log: list[dict[str, Any]], by_pgd: bool, tolerance: float = 0.0) -> int:
    """The epoch (1-based) to keep after the epochs in ``log`` (rows with ``epoch``, ``test_acc``, ``test_pgd_acc``).

    By clean accuracy: the first epoch with the best ``test_acc``. By PGD accuracy: an epoch is kept when
    its ``test_pgd_acc`` beats every earlier one, or (``tolerance`` > 0) when it lies within ``tolerance``
    of the best so far and its ``test_acc`` beats the kept epoch's. The kept epoch's PGD accuracy is thus never more than
    ``tolerance`` below the best, and each decision needs only the epochs so far (a checkpoint is saved
    when its epoch is kept). An epoch whose PGD accuracy exceeds its clean accuracy is never kept by PGD, nor
    counted as the best: the attack failed on it (the sign of masked gradients, not of robustness).
    """
    kept, kept_clean, best = 0, -1.0, -1.0
    for row in log:
        clean = float(row["test_acc"])
        if not by_pgd:
            if clean > kept_clean:
                kept, kept_clean = int(row["epoch"]), clean
            continue
        robust = float(row["test_pgd_acc"])
        if robust > clean:  # the attack helped: its gradients mislead, its figure is no robustness
            continue
        if robust > best or (tolerance > 0 and robust >= best - tolerance and clean > kept_clean):
            kept, kept_clean = int(row["epoch"]), clean
        best = max(best, robust)
    return kept


def _load_state(path: Path, model: RobenchModel, optimizer: torch.optim.Optimizer, scheduler: Any,
                generator: torch.Generator) -> dict[str, Any]:
    if not path.exists():
        raise RobenchError(f"--resume but there is no state file {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(payload["scheduler"])
        generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
    except (RuntimeError, KeyError, ValueError, EOFError, OSError, pickle.UnpicklingError) as exc:
        raise RobenchError(f"cannot resume from {path}: {str(exc).splitlines()[0][:160]}") from None
    return {"epoch": int(payload["epoch"]), "log": list(payload["log"])}
