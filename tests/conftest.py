"""Shared fixtures: small checkpoints, the shared real data (skipped when absent), a CLI runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from robench.cli import main
from robench.models.checkpoint import save_checkpoint
from robench.models.registry import create_model
from robench.models.wrapper import ModelInfo, RobenchModel

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ROBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
FOREIGN = SHARED / "foreign-checkpoints" / "resnet20-12fca82f.th"
USER_ARCH = ROOT / "examples" / "user_arch"
IMAGENET_NORM = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded-data caches go to a per-session temp dir, never the user's home."""
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("ROBENCH_PROGRESS", "0")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():  # type: ignore[no-untyped-def]
    """One intra-op thread: the tests' tensors are tiny, and on a loaded 2-core machine OpenMP's
    thread hand-offs made them up to 10× slower. Subprocesses (torchrun tests) set their own."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def committed(*paths: Path) -> None:
    """Fail, not skip, when outputs committed to the repository (under reports/ or robench/assets) are missing: they
    are part of the checkout, so their absence is a broken checkout or a lost file, never an environment without
    optional data. (Data outside the repository, ../shared/data, skips with a reason: :func:`shared_data`.)"""
    missing = [p for p in paths if not p.exists()]
    if missing:
        names = ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        pytest.fail(f"committed output missing: {names}{more}; it is part of the repository (restore it with git, "
                    "or rerun the experiment that writes it)", pytrace=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data directory; tests using it skip when it is absent."""
    if not (SHARED / "cifar10-test-lossless-1195.npz").exists():
        pytest.skip(f"shared real data not found at {SHARED} (set ROBENCH_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def foreign_checkpoint() -> Path:
    """The third-party CIFAR-10 ResNet-20 (state dict, module. prefixes, saved on CUDA)."""
    if not FOREIGN.exists():
        pytest.skip(f"third-party checkpoint not found at {FOREIGN}")
    return FOREIGN


def tiny_model(seed: int = 0, num_classes: int = 10, in_chans: int = 3) -> RobenchModel:
    """A randomly initialised cnn_tiny with CIFAR-like metadata."""
    torch.manual_seed(seed)
    net = create_model("cnn_tiny", num_classes=num_classes, in_chans=in_chans)
    info = ModelInfo(name="tiny", arch="cnn_tiny", num_classes=num_classes, input_size=(in_chans, 32, 32),
                     mean=(0.5,) * in_chans, std=(0.25,) * in_chans)
    return RobenchModel(net, info).eval()


class Recorder(torch.nn.Module):
    """Wraps a model; records every forward batch, the mode and the grad state it ran in."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []
        self.states: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        self.states.append((self.inner.training, torch.is_grad_enabled()))
        return self.inner(x)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A robench checkpoint of :func:`tiny_model`."""
    return save_checkpoint(tiny_model(), tmp_path / "tiny.pt")


@pytest.fixture
def small_npz(tmp_path: Path) -> Path:
    """96 real CIFAR-10 images from the bundled sample as an npz dataset."""
    from robench.data import load_dataset

    data = load_dataset("sample", limit=96)
    path = tmp_path / "small.npz"
    np.savez(path, x=np.asarray(data.images), y=data.labels, classes=np.array(data.classes))
    return path


def one_error_line(r: CliResult) -> str:
    """The single ``robench: error:`` line of a failed CLI run (exit 2, no traceback). Warnings the library logged
    before the error (``robench: warning: ...``, e.g. a first batch near chance) may precede it, as on a terminal."""
    assert r.code == 2, (r.code, r.err)
    lines = [line for line in r.err.strip().splitlines() if not line.startswith("robench: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("robench: error:"), r.err
    assert "Traceback" not in r.err + r.out
    return lines[0]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``robench ARGS...`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def reference_noise(x: np.ndarray, name: str, c: float, rng: np.random.Generator) -> np.ndarray:
    """The reference noise functions (imagecorruptions, Hendrycks' make_cifar_c.py) with parameter ``c`` on
    float64 values ``x`` in [0, 1], drawing from ``rng``, cast with np.uint8 like the reference."""
    if name == "gaussian_noise":
        y = x + rng.normal(size=x.shape, scale=c)
    elif name == "shot_noise":
        y = rng.poisson(x * c) / float(c)
    elif name == "impulse_noise":
        import skimage as sk

        y = sk.util.random_noise(x, mode="s&p", amount=c, rng=rng)
    else:
        y = x + x * rng.normal(size=x.shape, scale=c)
    return np.uint8(np.clip(y, 0, 1) * 255)
