"""The training loop: SGD with a cosine or plateau schedule, per-epoch log, best/last checkpoints, resume.

Outputs for ``--out PATH`` (e.g. ``model.pt``):

- ``PATH``: the selected checkpoint (best clean test accuracy for ``standard``), robench format;
- ``PATH-last.pt``: the last epoch's checkpoint (same stem with ``-last``);
- ``PATH.log.csv``: one row per epoch (losses, accuracies, learning rate, seconds);
- ``PATH.state.pt``: the resume state (weights, optimizer, scheduler, RNG, epoch), removed at the end.

``--resume`` continues from the state file; a run interrupted and resumed ends with the same
weights as an uninterrupted one on the CPU, because every random draw (data order, augmentation)
comes from a generator whose state is saved with the epoch.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench import __version__
from robench.data import load_dataset
from robench.data.imageset import ImageSet
from robench.errors import RobenchError
from robench.io import write_atomic
from robench.models.architecture_spec import build_net
from robench.models.checkpoint import save_checkpoint
from robench.models.modes import eval_mode
from robench.models.wrapper import ModelInfo, RobenchModel
from robench.progress import make_progress
from robench.runner import resolve_device
from robench.train.augment import random_crop_flip
from robench.train.methods import make_method

SCHEDULES = ("cosine", "plateau", "constant")


@dataclass
class TrainConfig:
    """Every setting of a training run; recorded in the checkpoint's metadata."""

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

    def validate(self) -> None:
        """Refuse settings that cannot train, with one line each."""
        if self.schedule not in SCHEDULES:
            raise RobenchError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        for field_name in ("epochs", "batch_size"):
            if getattr(self, field_name) < 1:
                raise RobenchError(f"--{field_name.replace('_', '-')} must be at least 1")
        if self.lr <= 0:
            raise RobenchError("--lr must be positive")


def _paths(out: str) -> dict[str, Path]:
    path = Path(out)
    stem = path.with_suffix("")
    return {"best": path, "last": stem.with_name(stem.name + "-last" + (path.suffix or ".pt")),
            "log": Path(f"{out}.log.csv"), "state": Path(f"{out}.state.pt")}


def accuracy(model: RobenchModel, data: ImageSet, batch_size: int, device: torch.device) -> float:
    """Clean top-1 accuracy of ``model`` on ``data`` (eval mode, no gradients)."""
    correct = 0
    with torch.no_grad(), eval_mode(model):
        for _, x, y in data.batches(batch_size, device):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(data)


def train(config: TrainConfig) -> RobenchModel:
    """Train a model as ``config`` says and write its checkpoints and log; returns the selected model."""
    config.validate()
    method = make_method(config.method)
    device = resolve_device(config.device)
    paths = _paths(config.out)
    train_set = load_dataset(config.data, "train", config.data_dir, config.train_limit, config.seed)
    test_set = load_dataset(config.data, "test", config.data_dir, config.eval_limit, config.seed)
    c, h, w = train_set.image_shape
    torch.manual_seed(config.seed)  # before building: --seed decides the initial weights too
    built = build_net(config.arch, len(train_set.classes), c)
    info = ModelInfo(
        name=config.name or Path(config.out).stem, arch=config.arch, num_classes=len(train_set.classes),
        input_size=(c, h, w), mean=(0.0,) * c, std=(1.0,) * c, classes=train_set.classes,
        training={"config": asdict(config), "dataset": train_set.identity, "robench": __version__,
                  "torch": torch.__version__},
    )
    model = RobenchModel(built.net, info).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    state = {"epoch": 0, "best": -1.0, "log": []}
    if config.resume:
        state = _load_state(paths["state"], model, optimizer, scheduler, generator)
    elif paths["state"].exists():
        raise RobenchError(f"{paths['state']} exists from an unfinished run: pass --resume to continue it, or delete it")
    images = torch.from_numpy(np.array(train_set.images)).to(device)
    labels = torch.from_numpy(train_set.labels).to(device)
    with make_progress() as progress:
        task = progress.add_task("training", total=config.epochs, completed=state["epoch"])
        for epoch in range(state["epoch"], config.epochs):
            started = time.time()
            row = _train_epoch(model, method, optimizer, images, labels, generator, config, device)
            row.update(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"],
                       test_acc=accuracy(model, test_set, 512, device), seconds=round(time.time() - started, 2))
            _step_scheduler(scheduler, row["loss"])
            state["log"].append(row)
            model.info.training["log"] = state["log"]
            save_checkpoint(model, paths["last"])
            if row["test_acc"] > state["best"]:
                state["best"] = row["test_acc"]
                model.info.training["selected_epoch"] = epoch + 1
                save_checkpoint(model, paths["best"])
            state["epoch"] = epoch + 1
            write_atomic(paths["log"], lambda tmp: pd.DataFrame(state["log"]).to_csv(tmp, index=False))
            _save_state(paths["state"], model, optimizer, scheduler, generator, state)
            progress.update(task, advance=1, description=f"training: epoch {epoch + 1} loss {row['loss']:.3f} "
                                                          f"test acc {row['test_acc']:.3f}")
    paths["state"].unlink(missing_ok=True)
    from robench.models.loading import load_model

    return load_model(str(paths["best"]))


def _train_epoch(model: RobenchModel, method: Any, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 labels: torch.Tensor, generator: torch.Generator, config: TrainConfig,
                 device: torch.device) -> dict[str, float]:
    model.train()
    order = torch.randperm(len(labels), generator=generator)
    totals: dict[str, float] = {}
    seen = 0
    for start in range(0, len(order), config.batch_size):
        idx = order[start:start + config.batch_size]
        x = images[idx].to(device).permute(0, 3, 1, 2).float().div_(255.0)
        y = labels[idx.to(labels.device)]
        if config.augment:
            x = random_crop_flip(x, generator if device.type == "cpu" else _device_generator(generator, device))
        loss, parts = method.loss(model, x, y)
        if not torch.isfinite(loss):
            raise RobenchError(f"the training loss became {float(loss.detach())}: lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(y)
        seen += n
        for key, value in {"loss": float(loss.detach()), **parts}.items():
            totals[key] = totals.get(key, 0.0) + value * n
    return {key: value / seen for key, value in totals.items()}


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=3)
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
    return {"epoch": int(payload["epoch"]), "best": float(payload["best"]), "log": list(payload["log"])}
