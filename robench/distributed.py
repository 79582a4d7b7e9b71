"""Distributed training and evaluation through PyTorch's own engine: torchrun environment, DDP, sharding, gathering.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every method is a no-op, so the trainer has
one code path. CPU runs use the gloo backend, CUDA runs NCCL with one GPU per local rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from robench.devices import resolve_device


@dataclass
class DistContext:
    """This process's rank, the world size and its device."""

    rank: int
    world: int
    device: torch.device

    @classmethod
    def from_env(cls, device: str) -> DistContext:
        """Read torchrun's variables; initialise the process group when there are several ranks."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        resolved = resolve_device(device)
        if world > 1:
            if resolved.type == "cuda":
                resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(resolved)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
        return cls(rank, world, resolved)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes files."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module for the loss's forward pass: DistributedDataParallel over ``model`` when distributed."""
        if self.world == 1:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # CPU (gloo) has no SyncBatchNorm
            return nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index])
        return nn.parallel.DistributedDataParallel(model)

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch."""
        return tensor if self.world == 1 else tensor.tensor_split(self.world)[self.rank]

    def sum(self, value: float) -> float:
        """Sum of ``value`` over ranks."""
        if self.world == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.world > 1:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` (picklable), in rank order, on rank 0; None on the other ranks."""
        if self.world == 1:
            return [obj]
        received: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, received, dst=0)
        return received

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (picklable) on every rank."""
        if self.world == 1:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
