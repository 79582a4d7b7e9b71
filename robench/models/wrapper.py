"""The model robench evaluates: a network with its normalisation inside and its metadata beside it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class ModelInfo:
    """What robench knows about a model; recorded with every result.

    ``input_size`` is (C, H, W) or None when the format does not say; ``mean``/``std`` are
    per-channel values in [0, 1] space applied inside :class:`RobenchModel`. ``test_time_flip``: the
    logits are the mean of the image's and its left-right mirror's (airbench's test-time augmentation).
    ``crop_pct`` (centre crop side / resized shorter side, e.g. 0.875: resize to 256, crop 224) and
    ``interpolation`` (``"bicubic"``, ``"bilinear"``) are the evaluation preprocessing the source states
    (timm's pretrained config); None when it does not say.
    """

    name: str
    arch: str | None
    num_classes: int | None
    input_size: tuple[int, int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] | None = None
    source: str = ""
    path: str | None = None
    sha256: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    test_time_flip: bool = False
    crop_pct: float | None = None
    interpolation: str | None = None

    def image_options(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """Data-loading options (``image_size`` H, W and ``crop_pct`` of :func:`robench.load_data`) that decode image
        folders as this model expects (EfficientNet-Lite1: 240 px, crop 0.882), completed into ``given`` where it
        leaves them unset (None or absent); array data is never resized."""
        options = {k: v for k, v in (given or {}).items() if v is not None}
        if "image_size" not in options and self.input_size is not None:
            options["image_size"] = tuple(self.input_size[1:])
        if "crop_pct" not in options and self.crop_pct is not None:
            options["crop_pct"] = self.crop_pct
        return options

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and ``weights_only``-safe dict (tuples become lists)."""
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


class RobenchModel(nn.Module):
    """``net((x - mean) / std)`` for x in [0, 1], N×C×H×W → logits N×K; with ``info.test_time_flip`` the mean
    of that and of ``net`` on the left-right mirror (differentiable: attacks and attributions see the average).

    ``mean`` and ``std`` are buffers of shape 1×C×1×1 (IG's ``baseline="mean"`` reads ``mean``).
    Networks that cannot switch modes (``torch.export`` programs) are left alone by ``train()``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, info: ModelInfo, switchable: bool = True) -> None:
        super().__init__()
        self.net = net
        self.info = info
        self.switchable = switchable
        channels = len(info.mean)
        self.register_buffer("mean", torch.tensor(info.mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(info.std, dtype=torch.float32).view(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        if self.info.test_time_flip:
            return (self.net(z) + self.net(z.flip(-1))) / 2
        return self.net(z)

    def train(self, mode: bool = True) -> RobenchModel:
        self.training = mode
        if self.switchable:
            self.net.train(mode)
        return self
