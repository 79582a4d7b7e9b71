#!/usr/bin/env python
"""Performance target of the corruptions: the batched torch noise family against imagecorruptions-imaug.

    .venv/bin/python scripts/bench_corruptions.py --out reports/benchmarks/corruptions.md

Target: the torch noise corruptions at least 20× faster per image than the library on the CPU
(same images, same severity, ImageNet-C parameters for both). Variants timed interleaved.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import interleave, machine, publish, set_threads  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    set_threads(args.threads)
    info, started = machine(), time.perf_counter()
    data = load_dataset("sample", limit=args.images)
    images = np.asarray(data.images)
    x, _ = data.batch(0, len(data))
    rows = []
    for name in TORCH_CORRUPTIONS:
        gen = make_generator(0)
        t = interleave({
            "torch": lambda n=name: torch_corrupt(x, n, args.severity, table="imagenet-c", generator=gen),
            "library": lambda n=name: corrupt_images(images, n, args.severity, seed=0),
        }, args.repeats)
        ratio = t.ratio("library", "torch")
        rows.append(f"| {name} | {t.median('library') / len(x) * 1e3:.3f} | {t.median('torch') / len(x) * 1e3:.4f} | "
                    f"{ratio:.1f} | {t.cpu_ratio('library', 'torch'):.1f} | {'PASS' if ratio >= 20 else 'FAIL'} |")
    report = "\n".join([
        "# Corruptions: torch noise family vs imagecorruptions-imaug", "", "Produced by:", "", "```",
        f".venv/bin/python scripts/bench_corruptions.py --images {args.images} --severity {args.severity} "
        f"--repeats {args.repeats} --threads {args.threads} --out {args.out}", "```", "",
        f"- Date: {info['date']}; `nproc` = {info['nproc']}, CPU `{info['cpu']}`, torch {info['torch']}, "
        f"{args.threads} torch thread(s); load average at start {info['loadavg']}",
        f"- {len(x)} real CIFAR-10 images (bundled sample), severity {args.severity}, ImageNet-C parameters for both; "
        f"the library runs per image in this process (workers=0), as the reference would. Interleaved, "
        f"{args.repeats} timed rounds; ratio of median wall times (CPU-time ratio as a cross-check). "
        f"Total {time.perf_counter() - started:.0f} s.", "",
        "| corruption | library ms/image | torch ms/image | speed-up | CPU-time speed-up | target ≥ 20× |",
        "|---|---|---|---|---|---|", *rows, "",
        "The cache check (a second model re-evaluated without regenerating any library-corrupted image) is a test:",
        "`tests/test_corruptions_suite.py::test_second_model_reuses_the_cached_corruptions`.", ""])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
