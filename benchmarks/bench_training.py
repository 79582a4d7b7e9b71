#!/usr/bin/env python
"""Performance targets of the trainer, measured as ratios of variants timed side by side.

    .venv/bin/python benchmarks/bench_training.py --out reports/benchmarks/training.md
    .venv/bin/python benchmarks/bench_training.py --preset cifar10-fast --out reports/benchmarks/training-fast.md

1. one IGD training step costs at most 1.4× one PGD-AT step (same attack, model and batch; with
   ``--preset``, the preset's network, batch, attack, IGD fraction and memory format);
2. data loading keeps the model busy: the time a step waits for its batch (indexing the in-memory
   uint8 images, conversion, augmentation) is under 5% of the step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ROBENCH_PROGRESS", "0")

import torch  # noqa: E402

from robench.data import load_dataset  # noqa: E402
from robench.devices import resolve_device  # noqa: E402
from robench.models.registry import create_model  # noqa: E402
from robench.models.wrapper import ModelInfo, RobenchModel  # noqa: E402
from robench.train.adversarial import IGD, PGDAT, AttackSettings  # noqa: E402
from robench.train.augment import random_crop_flip  # noqa: E402
from robench.train.config import preset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import interleave, machine, publish, set_threads, synchronizer  # noqa: E402


def model(arch: str, seed: int) -> RobenchModel:
    torch.manual_seed(seed)
    return RobenchModel(create_model(arch), ModelInfo(arch, arch, 10, (3, 32, 32), (0.0,) * 3, (1.0,) * 3)).train()


def step_fn(method, net: RobenchModel, x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss, _ = method.loss(net, x, y, torch.Generator(x.device).manual_seed(0), net)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--preset", default=None, help="take network, batch, attack and IGD fraction from this training preset")
    p.add_argument("--arch", default="cnn_small")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="where the steps run (cpu, cuda)")
    args = p.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    started = time.perf_counter()
    info = machine()
    data = load_dataset("sample")
    images = torch.from_numpy(data.images[:]).clone().to(device)  # the trainer holds its images on the device
    labels = torch.from_numpy(data.labels)
    settings = preset(args.preset, "igd") if args.preset else {}
    args.arch, args.batch_size = settings.get("arch", args.arch), settings.get("batch_size", args.batch_size)
    x, y = (t.to(device) for t in data.batch(0, args.batch_size))
    attack = AttackSettings(settings.get("eps", 8 / 255), settings.get("attack_steps", 10),
                            settings.get("step_size", 2 / 255), settings.get("inner_attack", "pgd"))
    fraction = settings.get("igd_fraction", 1.0)
    student, teacher = model(args.arch, 0).to(device), model(args.arch, 1).to(device)
    if settings.get("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
        student, teacher = (m.to(memory_format=torch.channels_last) for m in (student, teacher))
    steps = {"pgd-at": step_fn(PGDAT(attack), student, x, y),
             "igd": step_fn(IGD(teacher, attack, lam=1.0, fraction=fraction), student, x, y)}
    gen, device_gen = torch.Generator().manual_seed(0), torch.Generator(device).manual_seed(0)

    def load_batch() -> None:
        idx = torch.randperm(len(labels), generator=gen)[: args.batch_size]
        batch = images[idx.to(device)].permute(0, 3, 1, 2).float().div_(255.0)
        random_crop_flip(batch, device_gen)

    t = interleave({**steps, "data": load_batch}, args.repeats, sync=synchronizer(device))
    igd_ratio = t.ratio("igd", "pgd-at")
    data_share = t.median("data") / (t.median("data") + t.median("pgd-at"))
    rows = [("IGD step / PGD-AT step", f"{igd_ratio:.3f}", f"{t.cpu_ratio('igd', 'pgd-at'):.3f}", "<= 1.4",
             "PASS" if igd_ratio <= 1.4 else "FAIL"),
            ("data loading / (data + PGD-AT step)", f"{data_share:.4f}", "", "< 0.05",
             "PASS" if data_share < 0.05 else "FAIL")]
    times = "; ".join(f"{k}: median {t.median(k):.4f} s" for k in t.times)
    report = "\n".join([
        "# Trainer: performance targets", "", "Produced by:", "", "```",
        ".venv/bin/python benchmarks/bench_training.py "
        + (f"--preset {args.preset} " if args.preset else f"--arch {args.arch} --batch-size {args.batch_size} ") +
        f"--repeats {args.repeats} --threads {args.threads} --device {args.device} --out {args.out}", "```", "",
        f"- Date: {info['date']}; machine: `nproc` = {info['nproc']}, CPU `{info['cpu']}`, GPU {info['gpu']}, "
        f"steps on `{device}`, torch {info['torch']}, "
        f"{args.threads} torch thread(s); load average at start {info['loadavg']}",
        f"- Model `{args.arch}`, batch {args.batch_size} real CIFAR-10 images, inner attack {attack.kind} ε = "
        f"{attack.eps * 255:.0f}/255, {attack.steps} step(s) of {attack.step_size * 255:.1f}/255 for both methods; IGD adds "
        f"the teacher's input gradient and the student's double backprop (λ = 1) on {fraction:.3g} of the batch"
        + (", channels-last" if settings.get("channels_last") else "") + ".",
        "- Data loading is what the trainer does per step: a random index into the in-memory uint8 images, "
        "conversion to float NCHW, and the batched random crop + flip. The trainer has no loader process: the data "
        "are decoded once and held in memory, so there is nothing to wait for beyond this.",
        f"- Variants interleaved, {args.repeats} timed rounds after a warm-up; ratios of median wall times "
        f"(CPU-time ratio as a cross-check). Total {time.perf_counter() - started:.0f} s.", "",
        "| measurement | ratio | CPU-time ratio | target | result |", "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows], "", f"Times: {times}", ""])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
