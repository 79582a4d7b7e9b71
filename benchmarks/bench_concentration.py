#!/usr/bin/env python
"""Cost of the concentration measures (entropy, participation ratio, top-k mass) within the inequality suite.

    .venv/bin/python benchmarks/bench_concentration.py --out reports/benchmarks/concentration.md

Times one batch of the inequality suite (saliency, Gini, Lorenz, INA, RN, IOA) on the bundled sample
with and without the concentration columns, interleaved; target: they add at most 5%.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ROBENCH_PROGRESS", "0")

import torch  # noqa: E402

import robench.suites.inequality as inequality  # noqa: E402
from robench.data import load_dataset  # noqa: E402
from robench.models.loading import load_model  # noqa: E402
from robench.suites import make_suites  # noqa: E402
from robench.suites.base import Batch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import interleave, machine, publish, set_threads  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--model", default="zoo:standard")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    set_threads(args.threads)
    started, info = time.perf_counter(), machine()
    model = load_model(args.model)
    data = load_dataset("sample", limit=args.images)
    suite = make_suites("inequality")[1]
    suite.prepare(data)
    x, y = data.batch(0, len(data))
    with torch.no_grad():
        logits = model(x)
    real = inequality.concentration_columns

    def with_measures() -> None:
        inequality.concentration_columns = real
        suite.run_batch(model, Batch(x, y, data.index, logits, torch.Generator().manual_seed(0)))

    def without() -> None:
        inequality.concentration_columns = lambda values: {}
        suite.run_batch(model, Batch(x, y, data.index, logits, torch.Generator().manual_seed(0)))

    t = interleave({"with concentration": with_measures, "without": without}, args.repeats)
    inequality.concentration_columns = real
    ratio = t.ratio("with concentration", "without")
    report = "\n".join([
        "# Concentration measures: cost within the inequality suite", "", "Produced by:", "", "```",
        f".venv/bin/python benchmarks/bench_concentration.py --model {args.model} --images {args.images} "
        f"--repeats {args.repeats} --threads {args.threads} --out {args.out}", "```", "",
        f"- Date: {info['date']}; CPU `{info['cpu']}`, torch {info['torch']}, {args.threads} torch thread(s); "
        f"load average at start {info['loadavg']}",
        f"- One inequality-suite batch of {args.images} sample images on `{args.model}` (saliency, Gini, Lorenz, "
        "INA and RN at 10 budgets each, IOA at 3 fills), with and without the concentration columns; interleaved, "
        f"{args.repeats} rounds, medians. Total {time.perf_counter() - started:.0f} s.", "",
        "| measurement | ratio | CPU-time ratio | target | result |", "|---|---|---|---|---|",
        f"| suite with / without concentration measures | {ratio:.3f} | "
        f"{t.cpu_ratio('with concentration', 'without'):.3f} | <= 1.05 | {'PASS' if ratio <= 1.05 else 'FAIL'} |", "",
        "Times: " + "; ".join(f"{k}: median {t.median(k):.4f} s" for k in t.times), ""])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
