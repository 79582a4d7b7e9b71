#!/usr/bin/env python
"""ImageNet-C at 224 px: the generation cost of each of the 19 corruptions (5 severities), the model's
pass cost, and what the corruptions suite costs on the 1,300 shared images and on the 50,000-image
validation set.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_imagenet_c.py --out reports/benchmarks/imagenet-c-224.md

Generation is timed as the corruptions suite runs it (``--corruption-engine torch``: the four noise
corruptions as batched torch code, the other 15 through ``imagecorruptions-imaug``, image by image),
on real ILSVRC2012 validation images at 224 px (random images when the shared data is absent). The
suite caches generated images on disk per (dataset, corruption, severity, seed), so generation is paid
once per dataset; the model's forward passes are paid per model. One torch thread: CPU seconds are
the work.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ROBENCH_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inequality_224 import images, lite0  # noqa: E402
from benchlib import machine, publish, set_threads  # noqa: E402

from robench.corruptions import ALL, SEVERITIES, TORCH_CORRUPTIONS, corrupt_images, make_generator, torch_corrupt  # noqa: E402

COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_imagenet_c.py --out reports/benchmarks/imagenet-c-224.md"
#: An H100's measured ResNet-50 forward pass at 224 px, batch 128 (reports/benchmarks/gpu/resnet50-pass-times-cuda.md):
#: an upper bound for EfficientNet-Lite0 (0.4 GFLOPs against 4.1).
H100_RESNET50_FORWARD_S = 0.170e-3


def generation_seconds(data: np.ndarray, name: str) -> float:
    """CPU seconds to generate ``name`` at all five severities for the images ``data`` (uint8 N×H×W×C)."""
    t0 = time.process_time()
    for severity in SEVERITIES:
        if name in TORCH_CORRUPTIONS:
            x = torch.from_numpy(data).permute(0, 3, 1, 2).float().div(255)
            torch_corrupt(x, name, severity, table="imagenet-c", generator=make_generator(severity))
        else:
            corrupt_images(data, name, severity, seed=severity)
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--images", type=int, default=16)
    args = p.parse_args(argv)
    set_threads(1)
    started = time.perf_counter()
    model, model_note = lite0()
    data, data_note = images(args.images)
    raw = np.ascontiguousarray(data.images)
    costs = {}
    for name in ALL:
        costs[name] = generation_seconds(raw, name) / len(raw) / len(SEVERITIES)
        print(f"{name}: {costs[name]:.3f} CPU-s per image per severity", flush=True)
    x, _ = data.batch(0, len(data))
    with torch.no_grad():
        model(x[:4])
        t0 = time.process_time()
        for i in range(0, len(x), 16):
            model(x[i:i + 16])
        forward = (time.process_time() - t0) / len(x)
    generation = sum(costs.values()) * len(SEVERITIES)  # per image, all 19 × 5
    passes = len(ALL) * len(SEVERITIES)
    info = machine()
    lines = ["# ImageNet-C at 224 px: cost per corruption", "", "Produced by:", "", "```", COMMAND, "```", "",
             f"- Date: {info['date']}; machine: {info['nproc']} CPUs `{info['cpu']}`, torch {info['torch']}, one "
             f"torch thread; load average at start {info['loadavg']}",
             f"- Images: {data_note}; model for the passes: {model_note}",
             f"- Total run time: {time.perf_counter() - started:.0f} s", "",
             "| corruption | engine | generation, CPU-s per image per severity |", "|---|---|---|"]
    for name, seconds in sorted(costs.items(), key=lambda kv: -kv[1]):
        engine = "torch (batched)" if name in TORCH_CORRUPTIONS else "imagecorruptions-imaug"
        lines.append(f"| {name} | {engine} | {seconds:.3f} |")
    lines += ["", f"All 19 corruptions × 5 severities: **{generation:.1f} CPU-s of generation per image** (paid once "
              f"per dataset: cached on disk) and **{passes} forward passes** per image and model "
              f"({forward:.3f} CPU-s each for EfficientNet-Lite0 here: {passes * forward:.1f} CPU-s per image).", "",
              "| set | generation (once) | Lite0 passes on this CPU, 1 thread | passes on one H100 (ResNet-50 pass time as "
              "an upper bound) |", "|---|---|---|---|"]
    for label, n in (("1,300 shared validation images", 1300), ("50,000 validation images", 50_000)):
        lines.append(f"| {label} | {generation * n / 3600:.1f} CPU-hours ({generation * n / 60 / 16:.0f} min on "
                     f"16 cores) | {passes * forward * n / 3600:.1f} h | "
                     f"{passes * H100_RESNET50_FORWARD_S * n / 60:.1f} min |")
    top = max(costs, key=costs.get)
    lines += ["", f"On one GPU the forward passes take minutes; generation, CPU-bound image processing ({top} "
              f"alone {costs[top] / sum(costs.values()):.0%} of it), is the cost, spread over `--workers` processes "
              "and paid once per dataset thanks to the cache. The first torch noise call of a process includes "
              "compiling its sampling kernel.", ""]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
