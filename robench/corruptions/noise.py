"""Batched torch versions of the four ImageNet-C noise corruptions (they run where the tensor is).

Each mirrors the reference code (``imagecorruptions`` for ImageNet-C, Hendrycks' ``make_cifar_c.py``
for CIFAR-10-C) on float images in [0, 1]:

* gaussian_noise: ``clip(x + N(0, c²), 0, 1)``
* shot_noise:     ``clip(Poisson(x·c) / c, 0, 1)``
* impulse_noise:  skimage ``random_noise(mode='s&p', amount=c)``: each value is flipped with
  probability c, a flipped value becomes 1 (salt) or 0 (pepper) with probability ½ each (drawn
  here from one uniform u per value: salt if u < c/2, pepper if c/2 ≤ u < c — the same law)
* speckle_noise:  ``clip(x + x·N(0, c²), 0, 1)``

The reference returns ``np.uint8(clip(...) * 255)``, which truncates (it does not round). With
``quantize=True`` (the default) the output is ``floor(clip(...) * 255) / 255``: exactly the values
of a uint8 image, the same as the reference's output. With ``quantize=False`` the clipped float
values are returned. Arithmetic is in float32 (float64 inputs stay float64); the output has the
input's dtype.

Randomness comes only from the explicit ``generator``, which must live on the tensor's device.
The same seed gives the same output on the same device type; CPU and CUDA streams differ.

Two ways to compute it, same law:

* **Exact levels (CPU, ``quantize=True``, every input value a uint8 level k/255).** The output of
  each value then has a fixed discrete law over the 256 levels, computed in closed form from the
  reference's formula, and is drawn from it with an alias table: one 32-bit random number and one
  table lookup per value (``robench.corruptions.levels``). This is how the CPU reaches the speed
  target: torch's CPU generator alone (6-12 ns per value) costs more than the whole budget.
* **The formulas in torch** (CUDA; ``quantize=False``; inputs between levels): the arithmetic
  above, then ``floor(· 255) / 255`` with ``quantize``.

On the CPU a batch is cut into fixed chunks of ``CPU_CHUNK`` images, each with its own random
stream seeded by one draw from ``generator``, and the chunks run on ``torch.get_num_threads()``
threads. The chunks, not the threads, decide the numbers: the output does not depend on the thread
count. On CUDA the batch is one call (the GPU's generator is already parallel).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from robench.corruptions.levels import packed_table, sample_levels
from robench.corruptions.names import check_severity
from robench.errors import RobenchError

IMAGENET_C = "imagenet-c"
CIFAR10_C = "cifar10-c"
TABLES = (IMAGENET_C, CIFAR10_C)

# Images whose height is below this use the CIFAR-10-C table unless overridden.
SMALL_IMAGE_LIMIT = 64

# Images per independently seeded chunk on the CPU (see the module docstring).
CPU_CHUNK = 32

# One parameter per severity 1..5.
#   imagenet-c: imagecorruptions 1.1.x corruptions.py (= Hendrycks' make_imagenet_c.py)
#   cifar10-c:  hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py
PARAMETERS: dict[str, dict[str, tuple[float, ...]]] = {
    IMAGENET_C: {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # σ
        "shot_noise": (60, 25, 12, 5, 3),  # photons per unit intensity
        "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # fraction of values flipped
        "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),  # σ of the multiplicative noise
    },
    CIFAR10_C: {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    },
}

TORCH_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")

_TABLE_ALIASES = {
    "imagenet-c": IMAGENET_C, "imagenet_c": IMAGENET_C, "imagenetc": IMAGENET_C, "imagenet": IMAGENET_C,
    "cifar10-c": CIFAR10_C, "cifar10_c": CIFAR10_C, "cifar10c": CIFAR10_C, "cifar-10-c": CIFAR10_C,
    "cifar10": CIFAR10_C,
}


def _table_name(table: str) -> str:
    key = str(table).strip().lower()
    if key not in _TABLE_ALIASES:
        raise RobenchError(f"unknown corruption parameter table {table!r}; use one of: {', '.join(TABLES)}")
    return _TABLE_ALIASES[key]


def parameter_table(height: int, override: str | None = None) -> str:
    """``"cifar10-c"`` for images below 64 px high, ``"imagenet-c"`` otherwise; ``override`` wins.

    Callers should record the returned name next to their results.
    """
    if override is not None:
        return _table_name(override)
    return CIFAR10_C if int(height) < SMALL_IMAGE_LIMIT else IMAGENET_C


def corruption_parameter(name: str, severity: int, table: str) -> float:
    """The parameter ``c`` the reference uses for ``name`` at ``severity`` in ``table``."""
    if name not in TORCH_CORRUPTIONS:
        raise RobenchError(
            f"corruption {name!r} has no torch version; torch versions exist for: {', '.join(TORCH_CORRUPTIONS)}"
        )
    return PARAMETERS[_table_name(table)][name][check_severity(severity) - 1]


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def _chunk_seeds(x: torch.Tensor, generator: torch.Generator) -> list[int]:
    """One seed per chunk of CPU_CHUNK images, drawn from ``generator`` (see the module docstring)."""
    return torch.randint(0, 2**62, (-(-len(x) // CPU_CHUNK),), generator=generator).tolist()


_pool: tuple[int, ThreadPoolExecutor] | None = None  # (size, pool)
_pool_lock = threading.Lock()  # callers on several threads: no submit to a pool being replaced


def _helpers(count: int) -> ThreadPoolExecutor:
    """A pool of ``count`` threads, kept between calls: on the 2-core machine, starting fresh threads
    for every call made a 1,000-image CPU batch about 30 % slower."""
    global _pool
    if _pool is None or _pool[0] != count:
        if _pool is not None:
            _pool[1].shutdown(wait=False)
        _pool = (count, ThreadPoolExecutor(count, thread_name_prefix="robench-noise"))
    return _pool[1]


def _forget_pool() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's threads


os.register_at_fork(after_in_child=_forget_pool)


def _on_chunks(x: torch.Tensor, work: Callable[[slice, int], object]) -> list[object]:
    """``work(images, i)`` for each chunk ``i`` of CPU_CHUNK images, on torch.get_num_threads() threads
    (this one and helpers), each taking the next chunk when it is free; returns the results in order."""
    parts = [(slice(start, start + CPU_CHUNK), i) for i, start in enumerate(range(0, len(x), CPU_CHUNK))]
    results: list[object] = [None] * len(parts)
    queue = itertools.count()

    def drain() -> None:
        for k in queue:  # next() on a shared count hands each chunk to exactly one thread
            if k >= len(parts):
                return
            results[k] = work(*parts[k])

    helpers = min(torch.get_num_threads(), len(parts)) - 1
    futures = []
    if helpers > 0:
        with _pool_lock:
            pool = _helpers(helpers)
            futures = [pool.submit(drain) for _ in range(helpers)]
    try:
        drain()
    finally:
        errors = [f.exception() for f in futures]  # waits for every helper, also when this thread failed
    for error in errors:
        if error is not None:
            raise error
    return results


def _draw_chunk(out: torch.Tensor, x: torch.Tensor, law: str, c: float, g: torch.Generator) -> None:
    """Fill ``out`` (shaped like ``x``) with draws of ``law`` from ``g``."""
    if law == "normal":
        torch.randn(out.shape, generator=g, out=out)
    elif law == "uniform":
        torch.rand(out.shape, generator=g, out=out)
    else:  # Poisson counts with rates x·c
        out.copy_(torch.poisson(x.clamp(min=0) * c, generator=g))


def _draw(x: torch.Tensor, law: str, c: float, generator: torch.Generator, seeds: list[int]) -> torch.Tensor:
    """A tensor like ``x`` of ``law`` draws: one call from ``generator`` on CUDA; on the CPU, each
    chunk of images from its own generator seeded with ``seeds[i]``, on several threads."""
    out = torch.empty_like(x)
    if x.device.type != "cpu":
        _draw_chunk(out, x, law, c, generator)
    else:
        _on_chunks(x, lambda part, i: _draw_chunk(out[part], x[part], law, c, torch.Generator().manual_seed(seeds[i])))
    return out


def _gaussian(x: torch.Tensor, c: float, g: torch.Generator, seeds: list[int]) -> torch.Tensor:
    return _draw(x, "normal", c, g, seeds).mul_(c).add_(x)


def _shot(x: torch.Tensor, c: float, g: torch.Generator, seeds: list[int]) -> torch.Tensor:
    return _draw(x, "poisson", c, g, seeds).div_(float(c))


def _impulse(x: torch.Tensor, c: float, g: torch.Generator, seeds: list[int]) -> torch.Tensor:
    u = _draw(x, "uniform", c, g, seeds)
    return torch.where(u < c, (u < c / 2).to(x.dtype), x)  # salt (1) below c/2, pepper (0) in [c/2, c)


def _speckle(x: torch.Tensor, c: float, g: torch.Generator, seeds: list[int]) -> torch.Tensor:
    return _draw(x, "normal", c, g, seeds).mul_(c).mul_(x).add_(x)


_FORMULAS = {"gaussian_noise": _gaussian, "shot_noise": _shot, "impulse_noise": _impulse, "speckle_noise": _speckle}


def _formula(x: torch.Tensor, name: str, c: float, g: torch.Generator, seeds: list[int], quantize: bool) -> torch.Tensor:
    """The reference's formula in torch arithmetic, clipped, and truncated to uint8 levels with ``quantize``."""
    out = _FORMULAS[name](x, c, g, seeds).clamp_(0.0, 1.0)
    if quantize:
        out = out.mul_(255.0).floor_().div_(255.0)
    return out


def _levels(x: torch.Tensor, name: str, c: float, seeds: list[int]) -> torch.Tensor | None:
    """Each chunk's output levels drawn from their exact law (``robench.corruptions.levels``), its
    random numbers seeded by ``seeds[i]``; None when some value of ``x`` is not a uint8 level."""
    table = packed_table(name, float(c))
    out = torch.empty_like(x)
    flat_x, flat_out = x.reshape(len(x), -1).numpy(), out.reshape(len(x), -1).numpy()

    def chunk(part: slice, i: int) -> bool:
        values = flat_x[part].reshape(-1)
        return sample_levels(values, flat_out[part].reshape(-1), table, seeds[i])

    return out if all(_on_chunks(x, chunk)) else None


def torch_corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    *,
    table: str,
    generator: torch.Generator,
    quantize: bool = True,
) -> torch.Tensor:
    """``name`` at ``severity`` (1..5) with ``table``'s parameters, applied to float N×C×H×W in [0, 1].

    Returns a new tensor of the same shape, dtype and device with values in [0, 1]; with
    ``quantize`` they are multiples of 1/255 (the reference's uint8 output, truncated like it).
    It does not carry gradients (the input is detached); an empty batch gives an empty result.
    """
    c = corruption_parameter(name, severity, table)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise RobenchError(f"torch corruptions need a floating-point tensor in [0, 1], got {getattr(x, 'dtype', type(x))}")
    if x.dim() != 4:
        raise RobenchError(f"torch corruptions need images as N×C×H×W, got shape {tuple(x.shape)}")
    if not isinstance(generator, torch.Generator):
        raise RobenchError("torch corruptions need an explicit torch.Generator (see make_generator)")
    if generator.device.type != x.device.type:
        raise RobenchError(f"the generator is on {generator.device} but the images are on {x.device}; "
                           "make the generator on the images' device")
    work = x.detach()  # a corruption is data, not a differentiable function of the images
    work = (work if work.dtype in (torch.float32, torch.float64) else work.float()).contiguous()
    if work.numel() == 0:
        return work.clone().to(x.dtype)
    cpu = work.device.type == "cpu"
    seeds = _chunk_seeds(work, generator) if cpu else []
    out = _levels(work, name, c, seeds) if cpu and quantize else None
    if out is None:
        out = _formula(work, name, c, generator, seeds, quantize)
    return out.to(x.dtype)
