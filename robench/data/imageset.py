"""An in-memory (or memory-mapped) labelled image set that yields float NCHW batches in [0, 1]."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robench.errors import RobenchError


@dataclass
class ImageSet:
    """Images as uint8 N×H×W×C (a NumPy array or memmap), labels int64 N, class names.

    ``index`` holds each image's position in the full split, so results can be joined across
    runs that used ``--limit``. ``identity`` describes where the data came from (recorded in meta.json).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    index: np.ndarray
    identity: dict[str, Any] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise RobenchError(f"images must be uint8 N×H×W×C, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels) or len(self.index) != len(self.labels):
            raise RobenchError(f"{len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) == 0:
            raise RobenchError(f"dataset {self.identity.get('spec', '')} is empty")
        if self.labels.min() < 0 or self.labels.max() >= len(self.classes):
            raise RobenchError(f"labels must lie in 0..{len(self.classes) - 1}, found {self.labels.min()}..{self.labels.max()}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        _, h, w, c = self.images.shape
        return c, h, w

    def subset(self, positions: np.ndarray) -> ImageSet:
        """The images at ``positions`` (positions in this set, not dataset indices)."""
        ident = dict(self.identity, n=int(len(positions)))
        return ImageSet(self.images[positions], self.labels[positions], self.classes, self.index[positions], ident)

    def fingerprint(self) -> str:
        """sha256 of the labels, indices and image bytes: identical data gives the same value (computed once)."""
        if self._fingerprint is not None:
            return self._fingerprint
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.index, dtype=np.int64).tobytes())
        for start in range(0, len(self.images), 4096):
            digest.update(np.ascontiguousarray(self.images[start:start + 4096]).tobytes())
        self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batch(self, start: int, stop: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``start:stop`` as float32 N×C×H×W in [0, 1] and their int64 labels."""
        raw = torch.from_numpy(np.array(self.images[start:stop], order="C"))  # a copy: cached images are read-only maps
        raw = raw.to(device)
        x = raw.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
        y = torch.from_numpy(np.asarray(self.labels[start:stop], dtype=np.int64)).to(device)
        return x, y

    def batches(self, batch_size: int, device: torch.device | str = "cpu") -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(start, x, y)`` for consecutive batches of at most ``batch_size`` images."""
        for start in range(0, len(self), batch_size):
            x, y = self.batch(start, min(start + batch_size, len(self)), device)
            yield start, x, y
