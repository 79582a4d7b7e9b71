"""Does IGD's alignment term hold when Lite0 is fine-tuned at 224 px? The first steps, step by step.

The ε = 1/255 IGD fine-tuning (experiments/finetune_imagenet.sh) logged a teacher–student input-gradient cosine of
0.04 and 0.02 per epoch although student and teacher start as the same model (cosine 1). This script replays the
recipe's first optimiser steps (the same data, batch, SGD, learning rate, N-FGSM at ε = 4/255 with its warm-up,
frozen BatchNorm, channels-last) from the untouched Lite0 for several λ and learning rates, and records the cosine
on each step's IGD images before the update (the training log's ``cos``), and once, after one cross-entropy step, the
norms of the IGD term's and the cross-entropy's gradients with respect to the weights and the cosine after plain
steps along the IGD term's gradient alone.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/igd_alignment_224.py [--steps 6]

Writes reports/imagenet/finetune/igd-alignment.{csv,md}; needs runs/imagenet-ft/lite0.pt (written by
finetune_imagenet.sh) and the shared Tiny ImageNet images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from robench.data import load_dataset
from robench.distributed import DistContext
from robench.io import write_atomic
from robench.models.loading import load_model
from robench.train.adversarial import frozen, gradient_cosine, input_gradient
from robench.train.config import make_config
from robench.train.methods import make_method
from robench.train.trainer import TrainStep, train_mode

ROOT = Path(__file__).resolve().parents[1]
LITE0 = ROOT / "runs" / "imagenet-ft" / "lite0.pt"
BATCH, STEPS_PER_RUN = 32, 125 * 3  # the recipe: 4,000 images, batch 32, 3 epochs (the warm-ups' progress)
GRID = [(0.002, 0.0), (0.002, 1.0), (0.002, 4.0), (0.0002, 0.0), (0.0002, 4.0)]  # (learning rate, λ)


def first_steps(data: str, lr: float, lam: float, steps: int) -> list[dict[str, float]]:
    """Per step: the IGD images' mean cosine before the update and the batch's adversarial cross-entropy."""
    config = make_config(None, method="igd", init=str(LITE0), teacher=str(LITE0), data=data, freeze_bn=True,
                         channels_last=True, train_limit=BATCH * steps, batch_size=BATCH, lr=lr, weight_decay=5e-5,
                         inner_attack="n-fgsm", attack_steps=1, eps=4 / 255, step_size=4 / 255, eps_warmup=0.33,
                         lam=lam, igd_fraction=0.25, device="cpu", out="unused.pt")
    model = load_model(str(LITE0)).to(memory_format=torch.channels_last)
    train = load_dataset(data, "train", None, config.train_limit, 0, **model.info.image_options())
    method = make_method(config, train.image_shape, model.info.num_classes, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    step = TrainStep(model, model, method, optimizer, config, torch.device("cpu"), DistContext.from_env("cpu"))
    train_mode(model, freeze_bn=True)
    images, labels = torch.from_numpy(np.array(train.images)), torch.from_numpy(train.labels)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(steps):
        method.progress = i / STEPS_PER_RUN
        x = images[i * BATCH:(i + 1) * BATCH].permute(0, 3, 1, 2).float().div_(255)
        parts = step.step(x.contiguous(memory_format=torch.channels_last), labels[i * BATCH:(i + 1) * BATCH], generator)
        rows.append({"lr": lr, "lam": lam, "step": i, "cosine": parts["cos"], "adv_ce": parts["ce"]})
        print(f"lr {lr:g} λ {lam:g} step {i}: cosine {parts['cos']:.3f}, adversarial CE {parts['ce']:.2f}", flush=True)
    return rows


def gradient_check(data: str, lr: float = 0.002) -> dict[str, float]:
    """After one cross-entropy step from the untouched Lite0: the weight-gradient norms of the IGD term (8 images)
    and of the cross-entropy (32 images), and the cosine after a plain step of size ``s`` along −∇(IGD term)."""
    teacher, student = frozen(load_model(str(LITE0))), load_model(str(LITE0))
    data_set = load_dataset(data, "train", None, 64, 0, **student.info.image_options())
    x = torch.from_numpy(np.array(data_set.images)).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(data_set.labels)
    student.eval()  # BatchNorm frozen; Lite0 has no dropout
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)
    loss = F.cross_entropy(student(x[:32]), y[:32])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    xs, ys = x[32:40], y[32:40]
    target = input_gradient(teacher, xs, ys).detach()

    def cosine() -> float:
        return float(gradient_cosine(input_gradient(student, xs, ys), target).mean())

    out = {"cosine_after_one_ce_step": cosine()}
    igd = (1 - gradient_cosine(input_gradient(student, xs, ys, create_graph=True), target)).mean()
    igd_grads = [g if g is not None else torch.zeros_like(p)
                 for p, g in zip(params, torch.autograd.grad(igd, params, allow_unused=True))]
    ce_grads = torch.autograd.grad(F.cross_entropy(student(x[32:64]), y[32:64]), params)
    out["igd_grad_norm"] = float(torch.stack([g.norm() for g in igd_grads]).norm())
    out["ce_grad_norm"] = float(torch.stack([g.norm() for g in ce_grads]).norm())
    for size in (0.01, 0.1):
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, g in zip(params, igd_grads):
                p -= size * g
        out[f"cosine_after_igd_step_{size:g}"] = cosine()
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--data", default="imagenet:../shared/data/imagenet/tiny-imagenet-200-train100.tar")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "imagenet" / "finetune")
    args = p.parse_args(argv)
    if not LITE0.exists():
        sys.exit(f"igd_alignment_224: {LITE0} is missing: run experiments/finetune_imagenet.sh first")
    torch.manual_seed(0)
    table = pd.DataFrame([row for lr, lam in GRID for row in first_steps(args.data, lr, lam, args.steps)])
    check = gradient_check(args.data)
    write_atomic(args.out / "igd-alignment.csv", lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    wide = table.pivot_table(index=["lr", "lam"], columns="step", values="cosine", sort=False)
    lines = ["# IGD's alignment term at 224 px: the first fine-tuning steps", "",
             "Written by `OMP_NUM_THREADS=1 .venv/bin/python experiments/igd_alignment_224.py "
             f"--steps {args.steps}` ([igd-alignment.csv](igd-alignment.csv): the cosine and the adversarial "
             "cross-entropy per step). The recipe of `finetune_imagenet.sh` at ε = 4/255 (IGD term on a quarter of "
             "each batch) from the untouched Lite0, which is also the teacher: the teacher–student input-gradient "
             "cosine on each step's IGD images before the update.", "",
             "| learning rate | λ | " + " | ".join(f"step {s}" for s in wide.columns) + " |",
             "|---|---|" + "---|" * len(wide.columns)]
    lines += [f"| {lr:g} | {lam:g} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for (lr, lam), row in wide.iterrows()]
    lines += ["", "After one cross-entropy step (learning rate 0.002) from the untouched Lite0: cosine "
              f"{check['cosine_after_one_ce_step']:.3f}; weight-gradient norm of the IGD term "
              f"{check['igd_grad_norm']:.3g} against the cross-entropy's {check['ce_grad_norm']:.3g} "
              f"({check['ce_grad_norm'] / check['igd_grad_norm']:.0f}×); a plain step along −∇(IGD term) of size 0.01 "
              f"gives cosine {check['cosine_after_igd_step_0.01']:.3f}, of size 0.1 "
              f"{check['cosine_after_igd_step_0.1']:.3f}.", ""]
    write_atomic(args.out / "igd-alignment.md", lambda tmp: tmp.write_text("\n".join(lines)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
