"""``load_model``: any checkpoint robench understands → a :class:`RobenchModel` with metadata.

Supported (chosen by the file's content, not its suffix):
robench checkpoints (``.pt`` or ``.safetensors``), ``timm:NAME`` (``--weights FILE`` or hub
weights when online), bare state dicts with ``--arch`` (EfficientNet-PyTorch's key layout is renamed
onto timm's EfficientNets), TorchScript archives, ``torch.export`` ``.pt2`` programs, and pickled
whole modules (only with ``trust_checkpoint``).
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench.errors import RobenchError, SettingError
from robench.io import sha256_file
from robench.models.architecture_spec import build_net, build_timm
from robench.models.checkpoint import (
    FileFormat,
    check_finite,
    info_from_meta,
    load_weights_strict,
    pickled_code_error,
    read_safetensors,
    sniff_format,
    split_attacker_model,
    torch_load_safe,
    unwrap_state_dict,
)
from robench.models.efficientnet_layout import is_efficientnet_pytorch, load_efficientnet_pytorch
from robench.models.wrapper import ModelInfo, RobenchModel
from robench.settings import LoadOptions


def load_model(spec: str, options: LoadOptions | None = None, **overrides: Any) -> RobenchModel:
    """Load ``spec`` (a path, ``timm:NAME`` or ``zoo:NAME``) as a model taking [0, 1] inputs, in eval mode, on the CPU.

    ``overrides`` are :class:`LoadOptions` fields (declared in :mod:`robench.settings`), for calls from Python;
    values out of range are a SettingError naming the option.
    """
    opts = replace(options or LoadOptions(), **overrides)
    opts.validate()
    if spec.startswith("zoo:"):
        from robench.zoo import zoo_path

        spec = str(zoo_path(spec[len("zoo:"):]))
    if spec.startswith("timm:"):
        model = _load_timm(spec[len("timm:"):], opts)
    else:
        if opts.weights:
            raise SettingError("weights", "applies to timm:NAME models only; pass the checkpoint itself as the model")
        path = Path(spec).expanduser()
        if not path.exists():
            raise RobenchError(f"checkpoint {spec} not found")
        if not path.is_file():
            raise RobenchError(f"checkpoint {spec} is not a file")
        model = _load_file(path, opts)
        model.info.path = str(path)
        model.info.sha256 = sha256_file(path)
    if opts.test_time_flip:
        model.info.test_time_flip = True
    return model.eval()


def _load_file(path: Path, opts: LoadOptions) -> RobenchModel:
    fmt = sniff_format(path)
    if fmt is FileFormat.TORCHSCRIPT:
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise RobenchError(f"cannot read TorchScript archive {path}: {str(exc).splitlines()[0][:160]}") from None
        return _finish(net, path.stem, None, None, "torchscript", opts)
    if fmt is FileFormat.EXPORT:
        return _load_export(path, opts)
    if fmt is FileFormat.SAFETENSORS:
        state, meta = read_safetensors(path)
        return _from_state(state, meta, path, "safetensors", opts)
    obj = torch_load_safe(path, trust=opts.trust_checkpoint)
    if isinstance(obj, nn.Module):
        return _finish(obj, path.stem, type(obj).__name__, None, "pickled-module", opts)
    if isinstance(obj, dict) and "robench_checkpoint" in obj:
        if not isinstance(obj.get("meta"), dict):
            raise RobenchError(f"{path}: robench checkpoint without metadata")
        return _from_state(unwrap_state_dict(obj["state_dict"], path), obj["meta"], path, "robench", opts)
    state, normalization = split_attacker_model(unwrap_state_dict(obj, path))
    source = "state_dict" if normalization is None else "robustness-library"
    return _from_state(state, None, path, source, opts, normalization)


def _from_state(state: dict[str, torch.Tensor], meta: dict[str, Any] | None, path: Path, source: str,
                opts: LoadOptions,
                normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> RobenchModel:
    """Build ``opts.arch`` (or the metadata's) and load ``state`` into it strictly.

    ``normalization`` is ``(mean, std)`` found in the file itself (robustness-library checkpoints);
    it is used for bare state dicts instead of the architecture's default, and --mean/--std win.
    Weights in EfficientNet-PyTorch's layout are renamed onto a timm EfficientNet ``arch``
    (source ``efficientnet-pytorch``).
    """
    base = info_from_meta(meta) if meta is not None else None
    arch = opts.arch or (base.arch if base else None)
    if arch is None:
        raise RobenchError(
            f"{path} is a bare state dict: pass --arch NAME (a robench architecture, a timm model name, "
            "or package.module:callable)"
        )
    if (opts.arch is None and ":" in arch and arch != opts.allow_arch
            and not (opts.arch_path or opts.trust_checkpoint)):
        raise RobenchError(  # importing and calling a name read from the file would let the file choose code to run
            f"{path}'s metadata names the architecture {arch!r}, Python code robench would import and call; "
            f"pass --arch {arch} (and --arch-path DIR if needed) if you trust it"
        )
    num_classes = opts.num_classes or (base.num_classes if base else None) or _infer_num_classes(state)
    in_chans = (opts.input_size or (base.input_size if base else None) or (len(opts.mean) if opts.mean else 3, 0, 0))[0]
    if base is not None:
        _check_meta_sizes(state, base, opts, path, user_callable=":" in arch)
    built = build_net(arch, num_classes, in_chans, opts.arch_path)
    if is_efficientnet_pytorch(state) and not is_efficientnet_pytorch(built.net.state_dict()):
        load_efficientnet_pytorch(built.net, state, arch)
        if normalization is None:  # a robustness-library file keeps that source: its mean/std came from the file
            source = "efficientnet-pytorch"
    else:
        load_weights_strict(built.net, state, arch)
    check_finite(built.net, path)
    if base is None:
        base = ModelInfo(
            name=path.stem, arch=arch, num_classes=num_classes, input_size=built.input_size,
            mean=built.mean or (0.0,) * in_chans, std=built.std or (1.0,) * in_chans,
            crop_pct=built.crop_pct, interpolation=built.interpolation,
        )
        if normalization is not None:
            base.mean, base.std = normalization
    base.arch = arch
    return _finish(built.net, base.name, arch, base, source, opts)


def _check_meta_sizes(state: dict[str, torch.Tensor], base: ModelInfo, opts: LoadOptions, path: Path,
                      user_callable: bool) -> None:
    """Refuse metadata whose class or channel count no weight in the file has, before building the network.

    A classifier's weight has ``num_classes`` rows and a first layer's ``in_chans`` columns; a count
    that no tensor has cannot load, and a huge one would allocate the network before the strict load
    could report the mismatch.
    """
    if not opts.num_classes and base.num_classes and not any(t.ndim >= 1 and t.shape[0] == base.num_classes
                                                             for t in state.values()):
        raise RobenchError(f"{path}: the metadata says {base.num_classes} classes but no weight in the file has "
                           f"{base.num_classes} outputs; the metadata does not match the weights")
    if not opts.input_size and base.input_size and not user_callable:  # user callables do not take in_chans
        channels = base.input_size[0]
        if not any(t.ndim >= 2 and t.shape[1] == channels for t in state.values()):
            raise RobenchError(f"{path}: the metadata says {channels}-channel input but no weight in the file takes "
                               f"{channels} channels; the metadata does not match the weights")


def _infer_num_classes(state: dict[str, torch.Tensor]) -> int | None:
    """The output count of the last 2-D weight: the classifier, in PyTorch's usual key order."""
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def _load_export(path: Path, opts: LoadOptions) -> RobenchModel:
    try:
        with contextlib.nullcontext() if opts.trust_checkpoint else _weights_only_torch_load():
            program = torch.export.load(str(path))
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise pickled_code_error(path) from None
        raise RobenchError(f"cannot read torch.export program {path}: {str(exc).splitlines()[0][:160]}") from None
    except Exception as exc:  # torch.export raises many types for a damaged archive
        raise RobenchError(f"cannot read torch.export program {path}: {str(exc).splitlines()[0][:160]}") from None
    shape = _export_input_shape(program)
    net: nn.Module = program.module()
    if shape is not None and isinstance(shape[0], int):
        net = FixedBatch(net, shape[0])
    size = tuple(shape[1:]) if shape is not None and all(isinstance(s, int) for s in shape[1:]) else None
    return _finish(net, path.stem, None, None, "torch.export", opts, input_size=size, switchable=False)


@contextlib.contextmanager
def _weights_only_torch_load() -> Iterator[None]:
    """Force ``weights_only=True`` on every ``torch.load`` inside (``torch.export.load`` unpickles pickled
    weights and constants with ``weights_only=False``, and retries a failed artifact that way: a .pt2
    file could otherwise run code without --trust-checkpoint)."""
    real = torch.load

    def weights_only_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return real(*args, **kwargs)

    torch.load = weights_only_load
    try:
        yield
    finally:
        torch.load = real


def _export_input_shape(program: Any) -> tuple[Any, ...] | None:
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in inputs and "val" in node.meta:
            return tuple(int(s) if isinstance(s, int) else s for s in node.meta["val"].shape)
    return None


class FixedBatch(nn.Module):
    """Runs a program exported with a static batch size on any batch: chunks, zero-pads the last."""

    def __init__(self, net: nn.Module, batch: int) -> None:
        super().__init__()
        self.net, self.batch = net, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for chunk in x.split(self.batch):
            n = chunk.shape[0]
            if n < self.batch:
                chunk = torch.cat([chunk, chunk.new_zeros((self.batch - n, *chunk.shape[1:]))])
            outs.append(self.net(chunk)[:n])
        return torch.cat(outs)


def _load_timm(name: str, opts: LoadOptions) -> RobenchModel:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:5]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise RobenchError(f"unknown timm model {name!r}{hint}")
    in_chans = opts.input_size[0] if opts.input_size else 3
    if opts.weights:
        wpath = Path(opts.weights).expanduser()
        if not wpath.is_file():
            raise RobenchError(f"weights file {opts.weights} not found")
        fmt = sniff_format(wpath)
        obj = read_safetensors(wpath)[0] if fmt is FileFormat.SAFETENSORS else torch_load_safe(wpath, opts.trust_checkpoint)
        state = unwrap_state_dict(obj, wpath)
        probe = timm.create_model(name, pretrained=False, in_chans=in_chans)
        file_classes = _classifier_outputs(probe, state)
        if opts.num_classes and file_classes and opts.num_classes != file_classes:
            raise SettingError("num_classes", f"{opts.num_classes}, but the weights' classifier has {file_classes} "
                               "outputs; loading would re-initialise the classifier")
        built = build_timm(name, opts.num_classes or file_classes, in_chans)
        source = "efficientnet-pytorch" if is_efficientnet_pytorch(state) else "timm"
        if source == "efficientnet-pytorch":
            load_efficientnet_pytorch(built.net, state, f"timm:{name}")
        else:
            load_weights_strict(built.net, state, f"timm:{name}")
        check_finite(built.net, wpath)
        model = _finish(built.net, name, f"timm:{name}", _timm_info(name, built), source, opts)
        model.info.path, model.info.sha256 = str(wpath), sha256_file(wpath)
        return model
    default_classes = timm.get_pretrained_cfg_value(name, "num_classes")
    if opts.num_classes and default_classes and opts.num_classes != default_classes:
        raise RobenchError(
            f"timm:{name}'s pretrained classifier has {default_classes} classes, not {opts.num_classes}: timm "
            "would silently re-initialise it; pass --weights FILE with a classifier of the right size"
        )
    try:
        built = build_timm(name, None, in_chans, pretrained=True)
    except Exception as exc:  # hub errors come in many types (HTTP, OS, hf_hub)
        raise RobenchError(
            f"could not fetch pretrained weights for timm:{name} ({type(exc).__name__}); offline? pass --weights FILE"
        ) from None
    return _finish(built.net, name, f"timm:{name}", _timm_info(name, built), "timm-hub", opts)


def _classifier_outputs(net: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    classifier = (getattr(net, "pretrained_cfg", None) or {}).get("classifier")
    names = [classifier] if isinstance(classifier, str) else list(classifier or [])
    for cname in names:
        for key in (f"{cname}.weight", f"module.{cname}.weight", f"model.{cname}.weight"):
            if key in state:
                return int(state[key].shape[0])
    return _infer_num_classes(state)


def _timm_info(name: str, built: Any) -> ModelInfo:
    channels = built.input_size[0] if built.input_size else 3
    return ModelInfo(
        name=name, arch=f"timm:{name}", num_classes=getattr(built.net, "num_classes", None),
        input_size=built.input_size, mean=built.mean or (0.0,) * channels, std=built.std or (1.0,) * channels,
        crop_pct=built.crop_pct, interpolation=built.interpolation,
    )


def _finish(net: nn.Module, name: str, arch: str | None, info: ModelInfo | None, source: str, opts: LoadOptions,
            input_size: tuple[int, ...] | None = None, switchable: bool = True) -> RobenchModel:
    """Apply the user's overrides and wrap ``net`` with its normalisation."""
    if info is None:  # no normalisation metadata: mean 0, std 1 for every channel (one value broadcasts to any count)
        channels = (opts.input_size or input_size or (1,))[0]
        info = ModelInfo(name=name, arch=arch, num_classes=None, input_size=input_size,  # type: ignore[arg-type]
                         mean=(0.0,) * channels, std=(1.0,) * channels)
    info.source = source
    if opts.num_classes:
        info.num_classes = opts.num_classes
    if opts.input_size:
        info.input_size = opts.input_size
    if opts.mean:
        info.mean = opts.mean
    if opts.std:
        info.std = opts.std
    if len(info.mean) != len(info.std):
        raise SettingError("mean", f"{len(info.mean)} values, but the std has {len(info.std)}")
    if any(s <= 0 for s in info.std):
        raise RobenchError(f"std values must be positive, got {list(info.std)}")
    if info.input_size and len(info.mean) not in (1, info.input_size[0]):
        raise RobenchError(f"mean/std have {len(info.mean)} values but the model takes {info.input_size[0]} channels")
    return RobenchModel(net, info, switchable=switchable)
