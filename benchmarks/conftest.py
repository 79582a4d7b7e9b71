"""Fixtures for the pytest-benchmark benchmarks (run explicitly: ``pytest benchmarks --benchmark-only``).

The measurement helpers live in ``benchmarks/bench_inequality.py`` (the ratio script); this loads it
as a module so both measure exactly the same things.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_inequality.py"
THREADS = int(os.environ.get("ROBENCH_BENCH_THREADS", "1"))


def _load_script() -> ModuleType:
    name = "bench_inequality"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No progress bars; decoded-data caches in a temp dir, never the user's home."""
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("ROBENCH_PROGRESS", "0")


@pytest.fixture(scope="session")
def bench() -> ModuleType:
    """``benchmarks/bench_inequality.py`` as a module, with the benchmark thread count set."""
    module = _load_script()
    module.set_threads(THREADS)
    return module


@pytest.fixture(scope="session")
def model(bench: ModuleType):  # type: ignore[no-untyped-def]
    """The trained third-party ResNet-20 when its checkpoint is present, else cnn_tiny."""
    net, description = bench.real_model()
    print(f"\nbenchmark model: {description}; torch threads: {THREADS}")
    return net
