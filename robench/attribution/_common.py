"""Shared input checks and the one gradient primitive every attribution method builds on."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_inputs(x: Tensor, target: Tensor | int | list[int]) -> Tensor:
    """Validate an image batch and its labels; return the labels as a LongTensor of shape N.

    ``x`` must be a floating tensor with a leading batch dimension (N×C×H×W for images).
    ``target`` must hold one class index per image.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor in [0, 1], got dtype {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"x must have a batch dimension (N×C×H×W), got shape {tuple(x.shape)}")
    t = torch.as_tensor(target, device=x.device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {t.dtype}")
    t = t.to(torch.long).reshape(-1)
    if t.numel() != x.shape[0]:
        raise ValueError(f"target has {t.numel()} labels for a batch of {x.shape[0]} images")
    return t


def logit_grad(model: nn.Module, inputs: Tensor, target: Tensor, *, copy: bool = True) -> Tensor:
    """Gradient of each row's target logit w.r.t. that row of ``inputs`` (same shape).

    The caller puts the model in eval mode; rows must not interact (eval-mode BatchNorm is
    fine). Uses ``torch.autograd.grad`` with respect to the inputs only, so parameters'
    ``.grad`` stay untouched. ``inputs`` is never modified: it is copied first unless
    ``copy=False`` (for freshly built tensors nobody else holds).
    """
    with torch.enable_grad():
        inp = (inputs.detach().clone() if copy else inputs.detach()).requires_grad_(True)
        out = model(inp)
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != inp.shape[0]:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"model must return logits of shape N×K, got {shape}")
        n_classes = out.shape[1]
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n_classes):
            raise ValueError(f"target labels must lie in [0, {n_classes}), got "
                             f"[{int(target.min())}, {int(target.max())}]")
        selected = out.gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(selected, inp, allow_unused=True)
    if grad is None:  # the output does not depend on the input at all
        grad = torch.zeros_like(inp)
    return grad.detach()
