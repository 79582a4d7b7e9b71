"""Inductive noise attack (INA) and random noise (RN); docs/attacks.md, "Noise attacks".

Both attacks perturb exactly k of the C·H·W entries of each image and ask whether the model's
prediction changes. They differ only in how the k entries are chosen:

- ``selection="inductive"`` (INA): the k entries with the largest **signed** attribution
  (per image, over all C·H·W entries; ties go to the lower flat index);
- ``selection="random"`` (RN): k entries uniformly at random without replacement, drawn
  independently for every image, budget level and trial.

Perturbation (``mode``): ``"add"`` (INA1) x' = x + M⊙ε, or ``"replace"`` (INA2)
x' = (1 − M)⊙x + M⊙ε. Noise (``noise``): ``"gaussian"`` ε ~ N(0, 1) in [0, 1] image space
(IGD), or ``"uniform"`` ε ~ U[min x, max x] with min/max taken per image over its C·H·W
entries (Duan). The result is clamped to [0, 1]; entries outside the mask never change.

Which images count is the caller's business: :func:`noise_attack` reports a fooled flag
(prediction ≠ label) for every image it is given. The suite normally passes only images that
every compared model classifies correctly (docs/reports.md, "Which images").
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from robench.attacks.budgets import Budget, resolve_budgets
from robench.attacks.results import concat_batches
from robench.errors import RobenchError
from robench.models.modes import eval_mode
from robench.settings import NOISE_KINDS, NOISE_MODES  # the suite's settings check them without importing torch

Selection = Literal["inductive", "random"]
NoiseMode = Literal["add", "replace"]
NoiseKind = Literal["gaussian", "uniform"]

SELECTIONS: tuple[str, ...] = ("inductive", "random")

#: Default largest number of images in one forward pass.
DEFAULT_MAX_BATCH: int = 256
#: Pixels (H·W, all images together) in one attack forward pass when no batch is set: 2^20, which makes
#: 256 images at 32 px (capped at :data:`DEFAULT_MAX_BATCH`) and 20 at 224 px.
PASS_PIXELS: int = 2**20


def default_attack_batch(height: int, width: int) -> int:
    """Images per attack forward pass for H×W images: ``PASS_PIXELS // (H·W)`` within 1..256, so that
    the memory of a pass is set by the pixels it carries, not by the resolution."""
    return max(1, min(DEFAULT_MAX_BATCH, PASS_PIXELS // (height * width)))


# --------------------------------------------------------------------------------------------
# validation and forward helpers (shared with occlusion.py)
# --------------------------------------------------------------------------------------------


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise RobenchError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise RobenchError(f"images must be a float tensor of shape N x C x H x W, got {shape}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise RobenchError(
            "images must lie in [0, 1]; normalization belongs inside the model wrapper"
        )


def _check_labels(y: Tensor, x: Tensor) -> Tensor:
    if not isinstance(y, Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise RobenchError(f"labels must be a 1-D tensor of length {x.shape[0]}, got {shape}")
    if y.is_floating_point() or y.is_complex():
        raise RobenchError("labels must be an integer tensor of class indices")
    return y.to(device=x.device, dtype=torch.long)


def _check_attr(attr: Tensor | None, x: Tensor, what: str) -> Tensor:
    if attr is None:
        raise RobenchError(f"{what} needs an attribution map of the images' shape; got None")
    if not isinstance(attr, Tensor) or tuple(attr.shape) != tuple(x.shape):
        shape = tuple(attr.shape) if isinstance(attr, Tensor) else type(attr).__name__
        raise RobenchError(
            f"attribution shape {shape} does not match the images' shape {tuple(x.shape)}"
        )
    attr = attr.detach().to(x.device)
    if attr.numel() and not bool(torch.isfinite(attr).all()):
        raise RobenchError("attribution map contains NaN or infinite values")
    return attr


def _check_max_batch(max_batch: int) -> int:
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise RobenchError(f"max_batch must be an int >= 1, got {max_batch!r}")
    return max_batch


def _predict(model: nn.Module, xb: Tensor) -> Tensor:
    """Top-1 predictions (N,) of one forward pass; caller holds eval mode and no_grad."""
    logits = model(xb)
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != xb.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise RobenchError(f"model must return logits of shape N x K, got {shape}")
    if not bool(torch.isfinite(logits).all()):  # argmax of NaN is an arbitrary class: a silent "fooled"
        raise RobenchError("the model outputs NaN or Inf on perturbed images: the attack results would be invalid")
    return logits.argmax(dim=1)


class _PredictionBuffer:
    """Collects perturbed batches and forwards them in chunks of exactly ``max_batch``.

    Blocks are concatenated across budget levels and trials so that the number of forward
    passes is ceil(total images / max_batch). Predictions come back in insertion order.
    """

    def __init__(self, model: nn.Module, max_batch: int, total: int, device: torch.device):
        self.model = model
        self.max_batch = max_batch
        self.pending: list[Tensor] = []
        self.n_pending = 0
        self.out = torch.empty(total, dtype=torch.long, device=device)
        self.filled = 0
        self.calls = 0

    def add(self, block: Tensor) -> None:
        self.pending.append(block)
        self.n_pending += block.shape[0]
        while self.n_pending >= self.max_batch:
            self._flush(self.max_batch)

    def finish(self) -> Tensor:
        if self.n_pending:
            self._flush(self.n_pending)
        return self.out

    def _flush(self, size: int) -> None:
        batch = self.pending[0] if len(self.pending) == 1 else torch.cat(self.pending)
        head, rest = batch[:size], batch[size:]
        preds = _predict(self.model, head)
        self.calls += 1
        self.out[self.filled : self.filled + size] = preds
        self.filled += size
        self.pending = [rest] if rest.shape[0] else []
        self.n_pending = rest.shape[0]


def _draw(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
    normal: bool,
) -> Tensor:
    """Random tensor drawn on the generator's device, then moved to ``device``."""
    if not isinstance(generator, torch.Generator):
        raise RobenchError("pass an explicit torch.Generator so that results repeat for a seed")
    fn = torch.randn if normal else torch.rand
    out = fn(shape, generator=generator, device=generator.device, dtype=dtype)
    return out.to(device)


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------


def _check_k(k: int, numel: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= numel):
        raise RobenchError(f"k must be an int in [1, {numel}] (entries per image), got {k!r}")
    return k


def _mask_from_indices(idx: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Bool mask of ``shape`` with, per image, the flat entries ``idx`` (N × k) set."""
    n = shape[0]
    mask = torch.zeros(n, math.prod(shape[1:]), dtype=torch.bool, device=idx.device)
    mask.scatter_(1, idx, True)
    return mask.view(shape)


def rank_entries(attr: Tensor) -> Tensor:
    """Flat entry indices (N × C·H·W, int64) sorted by signed attribution, largest first.

    Ties go to the lower flat index (stable sort), so the order is deterministic.
    """
    flat = attr.detach().reshape(attr.shape[0], math.prod(attr.shape[1:]))
    return torch.sort(flat, dim=1, descending=True, stable=True).indices


def topk_mask(attr: Tensor, k: int) -> Tensor:
    """Bool mask (attr's shape, N × C × H × W) of the k largest signed attribution entries.

    Exactly k entries per image, chosen over all C·H·W entries of that image (not a
    threshold over the batch). Ties go to the lower flat (C, H, W row-major) index.
    """
    if not isinstance(attr, Tensor) or attr.dim() < 2:
        raise RobenchError("attribution must be a tensor of shape N x C x H x W")
    _check_k(k, math.prod(attr.shape[1:]))
    order = rank_entries(attr)[:, :k]
    return _mask_from_indices(order, tuple(attr.shape))


def random_mask(
    shape: tuple[int, ...] | torch.Size,
    k: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> Tensor:
    """Bool mask of ``shape`` (N × C × H × W) with k entries per image, uniformly at random.

    Entries are drawn without replacement, independently per image, from ``generator``
    (scores are drawn on the generator's device; the mask lands on ``device``, default the
    generator's device).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise RobenchError(f"mask shape must be N x C x H x W, got {shape}")
    numel = math.prod(shape[1:])
    _check_k(k, numel)
    dev = torch.device(device) if device is not None else generator.device
    # float64 scores make ties (which would bias the choice) practically impossible;
    # MPS has no float64, so it draws float32 there
    dtype = torch.float32 if generator.device.type == "mps" else torch.float64
    scores = _draw((shape[0], numel), generator, dev, dtype, normal=False)
    return _mask_from_indices(scores.topk(k, dim=1).indices, shape)


# --------------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------------


def apply_noise(
    x: Tensor,
    mask: Tensor,
    *,
    mode: NoiseMode = "add",
    noise: NoiseKind = "gaussian",
    generator: torch.Generator,
) -> Tensor:
    """Perturb the masked entries of ``x`` (N × C × H × W, in [0, 1]); return a new tensor.

    ``mode="add"``: x + ε; ``mode="replace"``: ε. ``noise="gaussian"``: ε ~ N(0, 1) (units of
    the [0, 1] image scale); ``noise="uniform"``: ε ~ U[min x_i, max x_i], bounds per image over
    its C·H·W entries. Clamped to [0, 1]. Entries where ``mask`` is False are returned unchanged
    (bit for bit). One noise draw of x's full shape is taken from ``generator``.
    """
    _check_choice("mode", mode, NOISE_MODES)
    _check_choice("noise", noise, NOISE_KINDS)
    if tuple(mask.shape) != tuple(x.shape) or mask.dtype != torch.bool:
        raise RobenchError(f"mask must be a bool tensor of shape {tuple(x.shape)}")
    shape = tuple(x.shape)
    if noise == "gaussian":
        eps = _draw(shape, generator, x.device, x.dtype, normal=True)
    else:
        flat = x.reshape(shape[0], math.prod(shape[1:]))
        view = (shape[0],) + (1,) * (len(shape) - 1)
        lo = flat.amin(dim=1).view(view)
        hi = flat.amax(dim=1).view(view)
        eps = lo + (hi - lo) * _draw(shape, generator, x.device, x.dtype, normal=False)
    perturbed = (x + eps if mode == "add" else eps).clamp_(0.0, 1.0)
    return torch.where(mask.to(x.device), perturbed, x)


# --------------------------------------------------------------------------------------------
# the attack
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseResult:
    """Outcome of :func:`noise_attack` for one batch of images.

    ``fooled[l, t, i]`` is True when image i's prediction differs from its label at budget
    level l, trial t (bool, L × T × N, on the CPU); ``predictions`` holds the predicted
    classes (int64, same shape). ``ks[l]`` is the number of entries perturbed per image at
    level l; ``budgets`` the levels as requested (fractions or counts).
    """

    budgets: tuple[Budget, ...]
    ks: tuple[int, ...]
    fooled: Tensor
    predictions: Tensor
    selection: str
    mode: str
    noise: str
    trials: int
    numel: int
    forward_passes: int = 0

    @property
    def n_images(self) -> int:
        """Number of attacked images N."""
        return int(self.fooled.shape[2])

    def error_rate(self) -> Tensor:
        """Error rate per level (L,), float64: fooled fraction over images and trials.

        NaN for a level when no image was attacked (N = 0).
        """
        if self.n_images == 0:
            return torch.full((len(self.ks),), float("nan"), dtype=torch.float64)
        return self.fooled.to(torch.float64).mean(dim=(1, 2))

    def error_rate_per_trial(self) -> Tensor:
        """Error rate per level and trial (L × T), float64: fooled fraction over images."""
        if self.n_images == 0:
            return torch.full((len(self.ks), self.trials), float("nan"), dtype=torch.float64)
        return self.fooled.to(torch.float64).mean(dim=2)

    def fooled_fraction(self) -> Tensor:
        """Per level and image, the fraction of trials that fooled the model (L × N, float64).

        With ``trials=1`` these are the 0/1 fooled flags; feed a row to a bootstrap CI.
        """
        return self.fooled.to(torch.float64).mean(dim=1)

    def error_rates(self) -> list[float]:
        """:meth:`error_rate` as a plain list of floats, one per level."""
        return [float(v) for v in self.error_rate()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors); NaN error rates become None."""
        rates = [None if math.isnan(v) else v for v in self.error_rates()]
        return {
            "selection": self.selection,
            "mode": self.mode,
            "noise": self.noise,
            "trials": self.trials,
            "numel": self.numel,
            "n_images": self.n_images,
            "budgets": list(self.budgets),
            "ks": list(self.ks),
            "error_rate": rates,
            "forward_passes": self.forward_passes,
        }

    @staticmethod
    def merge(results: Iterable[NoiseResult]) -> NoiseResult:
        """Concatenate results of several batches (same settings) along the image axis."""
        return concat_batches(results, "noise", dim=2)


def noise_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attr: Tensor | None,
    budgets: Budget | Iterable[Budget],
    *,
    selection: Selection = "inductive",
    mode: NoiseMode = "add",
    noise: NoiseKind = "gaussian",
    trials: int = 1,
    generator: torch.Generator,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> NoiseResult:
    """Run INA (``selection="inductive"``) or RN (``"random"``) on one batch of images.

    ``x``: N × C × H × W in [0, 1]; ``y``: labels (N,); ``attr``: signed attribution of x's
    shape (required for INA, ignored for RN, may be None there); ``budgets``: fractions of
    C·H·W in (0, 1) or absolute counts ≥ 1 (see :func:`resolve_budget`).

    For every level l and trial t each image gets its own noise draw (and, for RN, its own
    positions); INA positions depend only on the attribution. All L·T·N perturbed images are
    forwarded in ceil(L·T·N / max_batch) passes, concatenated across levels and trials, with
    the model in eval mode under ``torch.no_grad()``. Random draws are taken in a fixed order
    (level, then trial; RN positions before noise), so results do not depend on
    ``max_batch`` and repeat for the same generator state.
    """
    _check_choice("selection", selection, SELECTIONS)
    _check_choice("mode", mode, NOISE_MODES)
    _check_choice("noise", noise, NOISE_KINDS)
    _check_images(x)
    y = _check_labels(y, x)
    max_batch = _check_max_batch(max_batch)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise RobenchError(f"trials must be an int >= 1, got {trials!r}")
    if not isinstance(generator, torch.Generator):
        raise RobenchError("pass an explicit torch.Generator so that results repeat for a seed")
    # numbers.Real, not (int, float): NumPy scalars count too (mypy cannot narrow the union with it)
    budget_list: list[Budget] = (
        [cast(Budget, budgets)] if isinstance(budgets, numbers.Real) else list(cast(Iterable[Budget], budgets))
    )
    shape = tuple(x.shape)
    n, numel = shape[0], math.prod(shape[1:])
    ks = resolve_budgets(budget_list, numel)
    order: Tensor | None = None
    if selection == "inductive":
        attr = _check_attr(attr, x, "the inductive noise attack")
        order = rank_entries(attr)[:, : max(ks)]

    total = len(ks) * trials * n
    x = x.detach()
    with eval_mode(model), torch.no_grad():
        buf = _PredictionBuffer(model, max_batch, total, x.device)
        for k in ks:
            mask = _mask_from_indices(order[:, :k], shape) if order is not None else None
            for _ in range(trials):
                if selection == "random":
                    mask = random_mask(shape, k, generator, device=x.device)
                assert mask is not None
                buf.add(apply_noise(x, mask, mode=mode, noise=noise, generator=generator))
        preds = buf.finish().view(len(ks), trials, n)
    fooled = preds != y.view(1, 1, n)
    return NoiseResult(
        budgets=tuple(budget_list),
        ks=tuple(ks),
        fooled=fooled.cpu(),
        predictions=preds.cpu(),
        selection=selection,
        mode=mode,
        noise=noise,
        trials=trials,
        numel=numel,
        forward_passes=buf.calls,
    )
