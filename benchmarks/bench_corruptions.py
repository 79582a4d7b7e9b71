#!/usr/bin/env python
"""Performance target of the corruptions: the batched torch noise family against imagecorruptions-imaug.

    .venv/bin/python benchmarks/bench_corruptions.py --out reports/benchmarks/corruptions.md

Target: the torch noise corruptions at least 20× faster per image than the library on the CPU
(same images, same severity, ImageNet-C parameters for both). Variants timed interleaved. The
library runs image by image in this process, as the reference scripts do; ``--library-workers N``
also times it in N worker processes (robench's own way of running it), and ``--device cuda``
runs the torch side on a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ROBENCH_PROGRESS", "0")

import numpy as np  # noqa: E402

from robench.corruptions.library import corrupt_images  # noqa: E402
from robench.corruptions.noise import TORCH_CORRUPTIONS, make_generator, torch_corrupt  # noqa: E402
from robench.data import load_dataset  # noqa: E402
from robench.devices import resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import interleave, machine, publish, set_threads, synchronizer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the torch side")
    p.add_argument("--device", default="cpu", help="where the torch side runs (cpu, cuda)")
    p.add_argument("--library-workers", type=int, default=0,
                   help="also time the library in this many worker processes (0: only in this process)")
    args = p.parse_args()
    set_threads(args.threads)
    device = resolve_device(args.device)
    info, started = machine(), time.perf_counter()
    data = load_dataset("sample", limit=args.images)
    images = np.asarray(data.images)
    x = data.batch(0, len(data))[0].to(device)
    workers = args.library_workers
    for name in TORCH_CORRUPTIONS:  # one untimed call of every variant before any timing (see the report)
        torch_corrupt(x, name, args.severity, table="imagenet-c", generator=make_generator(0, device))
        corrupt_images(images, name, args.severity, seed=0)
    rows = []
    for name in TORCH_CORRUPTIONS:
        gen = make_generator(0, device)
        variants = {
            "torch": lambda n=name: torch_corrupt(x, n, args.severity, table="imagenet-c", generator=gen),
            "library": lambda n=name: corrupt_images(images, n, args.severity, seed=0),
        }
        if workers:
            variants["library_workers"] = lambda n=name: corrupt_images(images, n, args.severity, seed=0,
                                                                        workers=workers)
        t = interleave(variants, args.repeats, sync=synchronizer(device))
        ratio = t.ratio("library", "torch")
        cells = [name, f"{t.median('library') / len(x) * 1e3:.3f}"]
        if workers:
            cells.append(f"{t.median('library_workers') / len(x) * 1e3:.3f}")
        cells += [f"{t.median('torch') / len(x) * 1e3:.4f}", f"{ratio:.1f}"]
        if workers:
            cells.append(f"{t.ratio('library_workers', 'torch'):.1f}")
        else:
            cells.append(f"{t.cpu_ratio('library', 'torch'):.1f}")
        cells.append("PASS" if ratio >= 20 else "FAIL")
        rows.append("| " + " | ".join(cells) + " |")
    head = ["corruption", "library ms/image (1 process)"]
    if workers:
        head.append(f"library ms/image ({workers} workers)")
    head += ["torch ms/image", "speed-up vs 1 process",
             f"speed-up vs {workers} workers" if workers else "CPU-time speed-up", "target ≥ 20×"]
    torch_side = (f"torch on `{device}` ({info['gpu']})" if device.type == "cuda"
                  else f"torch on the CPU with {args.threads} thread(s)")
    report = "\n".join([
        "# Corruptions: torch noise family vs imagecorruptions-imaug", "", "Produced by:", "", "```",
        f"python benchmarks/bench_corruptions.py --images {args.images} --severity {args.severity} "
        f"--repeats {args.repeats} --threads {args.threads} --device {args.device} "
        f"--library-workers {workers} --out {args.out}", "```", "",
        f"- Date: {info['date']}; `nproc` = {info['nproc']}, CPU `{info['cpu']}`, GPU {info['gpu']}, "
        f"torch {info['torch']}; load average at start {info['loadavg']}",
        f"- {len(x)} real CIFAR-10 images (bundled sample), severity {args.severity}, ImageNet-C parameters for both; "
        f"{torch_side}; the library runs per image in this process (workers=0), as the reference would"
        + (f", and in {workers} worker processes (robench's corruptions suite)" if workers else "")
        + f". Every variant of every corruption is run once before any timing (without it the first corruption "
        "timed came out up to 30% slower on the torch side: the machine warming up, not the method). "
        f"Then interleaved, {args.repeats} timed rounds per corruption after one more untimed call each; "
        "ratio of median wall times"
        + ("" if workers else " (CPU-time ratio as a cross-check)")
        + f". Total {time.perf_counter() - started:.0f} s.", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, "",
        "The cache check (a second model re-evaluated without regenerating any library-corrupted image) is a test:",
        "`tests/test_corruptions_suite.py::test_second_model_reuses_the_cached_corruptions`.", ""])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
