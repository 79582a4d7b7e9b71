"""Measuring helpers shared by the benchmark scripts: interleaved timing and the machine's description.

Variants are timed round-robin in one process (order reversed every other round), so a loaded
machine slows every variant alike; ratios of medians are the reported figures, never absolute times.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


def set_threads(threads: int) -> None:
    """Same intra-op thread count for every variant (inter-op threads are unused here)."""
    torch.set_num_threads(threads)


@dataclass
class Timings:
    """Wall-clock and process-CPU seconds per round for each variant, measured interleaved.

    With one torch thread the CPU time is the work itself, much less disturbed by other jobs on a
    shared machine than the wall time; both are reported, the wall-time ratio is the headline.
    """

    times: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, num: str, den: str) -> float:
        """Ratio of the median wall times ``num / den``."""
        return self.median(num) / self.median(den)

    def cpu_ratio(self, num: str, den: str) -> float:
        """Ratio of the median process-CPU times ``num / den``."""
        return statistics.median(self.cpu[num]) / statistics.median(self.cpu[den])

    def round_ratios(self, num: str, den: str) -> list[float]:
        return [a / b for a, b in zip(self.times[num], self.times[den])]


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """What waits for ``device``'s queued work: ``torch.cuda.synchronize`` on CUDA, nothing on the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def interleave(variants: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True,
               sync: Callable[[], None] = lambda: None) -> Timings:
    """Time each variant ``repeats`` times, round-robin, reversing the order every other round.

    ``warmup`` runs every variant once untimed first (lazy initialisation, allocator growth).
    ``sync`` waits for an accelerator's queued work (see :func:`synchronizer`) before each clock read.
    """
    names = list(variants)
    if warmup:
        for name in names:
            variants[name]()
    out = Timings({name: [] for name in names}, {name: [] for name in names})
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            sync()
            c0, t0 = time.process_time(), time.perf_counter()
            variants[name]()
            sync()
            t1, c1 = time.perf_counter(), time.process_time()
            out.times[name].append(t1 - t0)
            out.cpu[name].append(c1 - c0)
    return out


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    # the CPUs this process may use (`nproc` would report OMP_NUM_THREADS instead when it is set)
    nproc = str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else str(os.cpu_count())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"nproc": nproc, "cpu": cpu, "gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": load}


def child_json(cmd: list[str], what: str) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process and return the JSON object on the last line of its output.

    The child is started through ``sh`` (which forks it, rather than exec'ing it): Linux carries a
    process's RSS high-water mark across ``exec``, so a child forked directly from this (large)
    process would report this process's RSS as its own ``ru_maxrss``.
    """
    proc = subprocess.run(["sh", "-c", f"{shlex.join(cmd)}; exit $?"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def publish(report: str, out: Path | None) -> None:
    """Print a Markdown report and, with ``out``, write it there (the committed copy)."""
    print(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
