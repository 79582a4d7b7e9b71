"""Checkpoint files: recognising their format, reading them safely, writing robench's own.

robench's format is a plain dict ``{"robench_checkpoint": 1, "meta": {...}, "state_dict": {...}}``
saved with ``torch.save`` (readable with ``weights_only=True``) or, for ``.safetensors`` files,
the state dict with the metadata as JSON under the header key ``"robench"``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import zipfile
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench.errors import RobenchError
from robench.io import atomic_path
from robench.models.wrapper import ModelInfo, RobenchModel

FORMAT_VERSION = 1
_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_state_dict", "net", "model_state")
_PREFIXES = ("module.", "model.", "_orig_mod.")
SIZE_LIMIT_ENV = "ROBENCH_MAX_CHECKPOINT_GIB"
DEFAULT_SIZE_LIMIT_GIB = 16.0
# Bytes per element of the safetensors dtypes torch can hold (sub-byte float formats are refused).
_SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "U16": 2, "I16": 2, "F16": 2,
                       "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8}
_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit


class FileFormat(str, Enum):
    """How a checkpoint file is laid out on disk, read from its first bytes."""

    TORCH_SAVE = "torch.save"
    TORCHSCRIPT = "torchscript"
    EXPORT = "torch.export"
    SAFETENSORS = "safetensors"


def sniff_format(path: Path) -> FileFormat:
    """Recognise a checkpoint's format from its content (not its suffix)."""
    size = path.stat().st_size
    limit = size_limit()
    if limit is not None and size > limit:
        raise RobenchError(f"{path} is {size / 2**30:.1f} GiB, more than the {limit / 2**30:g} GiB limit for checkpoints; "
                           f"set {SIZE_LIMIT_ENV} to a larger number of GiB (0: no limit) if the file is genuine")
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        try:
            infos = zipfile.ZipFile(path).infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise RobenchError(f"cannot read checkpoint {path}: the archive is truncated or corrupt ({exc})") from None
        declared = sum(info.file_size for info in infos)  # what the reader allocates, from the zip directory
        if limit is not None and declared > limit:
            raise RobenchError(
                f"{path} declares {declared / 2**30:.1f} GiB of uncompressed data, more than the {limit / 2**30:g} GiB "
                f"limit for checkpoints (a zip bomb?); set {SIZE_LIMIT_ENV} to a larger number of GiB if it is genuine"
            )
        names = [info.filename for info in infos]
        if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
            return FileFormat.EXPORT
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return FileFormat.TORCHSCRIPT
        if any(n.endswith("/data.pkl") for n in names):
            return FileFormat.TORCH_SAVE
    elif len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < size:
        return FileFormat.SAFETENSORS
    elif head[8:10] == b'{"':
        raise RobenchError(f"{path} looks like a .safetensors file but its header length "
                           f"({struct.unpack('<Q', head[:8])[0]} bytes) exceeds the file ({size} bytes): truncated or corrupt")
    elif head[:1] == b"\x80":  # a pickle protocol header: torch's legacy (non-zip) format
        return FileFormat.TORCH_SAVE
    raise RobenchError(
        f"{path} is not a checkpoint robench can read (expected a robench or PyTorch checkpoint, "
        ".safetensors, a TorchScript archive or a torch.export .pt2 program)"
    )


def size_limit() -> int | None:
    """The largest checkpoint robench reads, in bytes (``$ROBENCH_MAX_CHECKPOINT_GIB``, default 16; 0: none)."""
    text = os.environ.get(SIZE_LIMIT_ENV, "").strip()
    try:
        gib = float(text) if text else DEFAULT_SIZE_LIMIT_GIB
    except ValueError:
        gib = -1.0
    if not (math.isfinite(gib) and gib >= 0):
        raise RobenchError(f"{SIZE_LIMIT_ENV} must be a number of GiB (0: no limit), got {text!r}")
    return None if gib == 0 else int(gib * 2**30)


def pickled_code_error(path: str | Path) -> RobenchError:
    """The refusal of a file that needs arbitrary unpickling (it could run code when loaded)."""
    return RobenchError(f"{path} contains pickled Python objects (e.g. a whole nn.Module) that could run arbitrary "
                        "code when loaded; pass --trust-checkpoint only if you trust where it came from")


def torch_load_safe(path: Path, trust: bool = False) -> Any:
    """``torch.load`` on the CPU, with ``weights_only=True`` unless ``trust`` is given.

    A file that needs arbitrary unpickling is refused with a message naming ``--trust-checkpoint``.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise pickled_code_error(path) from None
        raise RobenchError(f"cannot read checkpoint {path}: the file is corrupt ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RobenchError(f"cannot read checkpoint {path}: the file is truncated or corrupt ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The tensors of a ``.safetensors`` file and robench's metadata from its header (or None)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = check_safetensors_header(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RobenchError(f"cannot read safetensors file {path}: {_first_line(exc)}") from None
    metadata = header.get("__metadata__") or {}
    if "robench" not in metadata:
        return tensors, None
    try:
        meta = json.loads(metadata["robench"])
    except (TypeError, ValueError) as exc:
        raise RobenchError(f"{path}: the robench metadata in the header is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(meta, dict):
        raise RobenchError(f"{path}: the robench metadata in the header is not a JSON object")
    return tensors, meta


def check_safetensors_header(path: Path) -> dict[str, Any]:
    """Read and validate a ``.safetensors`` header before any tensor is read; returns the parsed header.

    Checks that the header fits in the file and is a JSON object, and that every tensor has a known
    dtype, a shape of non-negative integers, and data offsets that lie inside the file, do not
    overlap, and span exactly shape × dtype size bytes. Violations are one-line RobenchErrors.
    """
    def bad(why: str) -> RobenchError:
        return RobenchError(f"cannot read safetensors file {path}: {why}")

    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise bad("the file is shorter than the 8-byte header length")
        n = struct.unpack("<Q", prefix)[0]
        if n > size - 8 or n > _SAFETENSORS_MAX_HEADER:
            raise bad(f"the header length ({n} bytes) exceeds the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"the header is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ is not a map of strings")
    body = size - 8 - n
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise bad(f"the entry for tensor {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise bad(f"tensor {name!r} has invalid data offsets {offsets!r}")
        if offsets[1] > body:
            raise bad(f"the data of tensor {name!r} ends at byte {offsets[1]}, beyond the {body} data bytes in the file")
        nbytes = math.prod(shape) * _SAFETENSORS_DTYPES[dtype]
        if nbytes != offsets[1] - offsets[0]:
            raise bad(f"tensor {name!r} of shape {shape} and dtype {dtype} needs {nbytes} bytes "
                      f"but its data offsets span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise bad(f"the data of tensors {first!r} and {second!r} overlap")
    return header


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside a loaded checkpoint.

    Descends through the wrapper keys (``state_dict``, ``model``, ``state_dict_ema``, ...) and
    through a list or tuple holding one dict (OVAL's and ERAN's
    ``{'state_dict': [sd], 'err': ..., 'epoch': ...}``); entries beside the wrapper key (epochs,
    accuracies, optimizer state) are ignored. Returns the tensors of the state dict found.
    """
    while True:
        if isinstance(obj, (list, tuple)):
            dicts = [o for o in obj if isinstance(o, dict)]
            if len(dicts) > 1:
                raise RobenchError(f"{path} holds a list of {len(dicts)} dicts where the state dict should be; "
                                   "robench cannot tell which weights to load")
            if not dicts:
                break
            obj = dicts[0]
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and _holds_dict(obj[k])), None)
        if inner is None:
            break
        obj = inner
    if not (isinstance(obj, dict) and _is_state_dict(obj)):
        raise RobenchError(f"{path} holds no state dict (no tensors under 'state_dict', 'model' or 'state_dict_ema')")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def split_attacker_model(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], tuple[tuple[float, ...], tuple[float, ...]] | None]:
    """The network and its normalisation from a MadryLab ``robustness``-library checkpoint, else ``state``.

    That library (used for Engstrom et al.'s and Salman et al.'s adversarially trained models,
    e.g. ``resnet50_linf_eps4.0.ckpt``) saves an ``AttackerModel``: ``[module.]model.*`` (the
    network), ``[module.]attacker.model.*`` (the same network again, for the attack),
    ``[module.]normalizer.new_mean``/``new_std`` (C×1×1 buffers: its input normalisation) and the
    attacker's copy of those. Returns ``(model.* with the prefix removed, (mean, std))`` for that
    layout, ``(state, None)`` for any other.
    """
    prefix = "module." if state and all(k.startswith("module.") for k in state) else ""
    mean, std = state.get(f"{prefix}normalizer.new_mean"), state.get(f"{prefix}normalizer.new_std")
    net_prefix = f"{prefix}model."
    if mean is None or std is None or not any(k.startswith(f"{prefix}attacker.") for k in state):
        return state, None
    net = {k[len(net_prefix):]: v for k, v in state.items() if k.startswith(net_prefix)}
    if not net or mean.numel() != std.numel():
        return state, None
    return net, (tuple(float(v) for v in mean.flatten()), tuple(float(v) for v in std.flatten()))


def _holds_dict(obj: Any) -> bool:
    """A dict, or a list/tuple with a dict in it (a wrapper key's value worth descending into)."""
    return isinstance(obj, dict) or (isinstance(obj, (list, tuple)) and any(isinstance(o, dict) for o in obj))


def _is_state_dict(obj: dict[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(k, str) for k in obj) and any(isinstance(v, torch.Tensor) for v in obj.values())


def match_prefixes(state: dict[str, torch.Tensor], target_keys: set[str]) -> dict[str, torch.Tensor]:
    """Strip ``module.``/``model.``/``_orig_mod.`` prefixes when that makes the keys fit ``target_keys`` better."""
    best, best_overlap = state, len(target_keys & state.keys())
    current = state
    for _ in range(3):
        for prefix in _PREFIXES:
            if current and all(k.startswith(prefix) for k in current):
                current = {k[len(prefix):]: v for k, v in current.items()}
                overlap = len(target_keys & current.keys())
                if overlap > best_overlap:
                    best, best_overlap = current, overlap
                break
        else:
            break
    return best


def load_weights_strict(net: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    """Load ``state`` into ``net`` strictly; on mismatch, one line listing what differs.

    Scalar tensors with a top-level name (no ``.``) that the network does not have, such as an
    ``acc`` or ``err`` saved beside the weights, are figures about the model, not weights: skipped.
    """
    own = net.state_dict()
    state = match_prefixes({k: v for k, v in state.items() if "." in k or k in own or v.ndim != 0}, set(own))
    # BatchNorm's step counter is absent from checkpoints saved before PyTorch 0.4.1; it affects nothing.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise RobenchError(f"the weights do not match architecture {arch!r}: {'; '.join(parts)}")
    state = {**{k: v for k, v in own.items() if k not in state}, **state}
    net.load_state_dict(state, strict=True)


def check_finite(net: nn.Module, path: Path) -> None:
    """Refuse weights that hold NaN or Inf: every result computed from them would be meaningless."""
    for name, tensor in list(net.state_dict().items()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise RobenchError(f"{path}: weight {name!r} contains NaN or Inf values")


def save_checkpoint(model: RobenchModel, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` in robench's format (``.safetensors`` by suffix, else ``torch.save``), atomically.

    ``dtype`` (e.g. ``torch.float16``) stores the floating-point weights in that type, to save space;
    loading casts them back to the network's own type.
    """
    path = Path(path)
    meta = json.loads(json.dumps(model.info.to_dict(), default=str))  # plain types only: weights_only-safe
    for key in ("path", "sha256", "source"):
        meta.pop(key)
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"robench": json.dumps(meta)})
        else:
            torch.save({"robench_checkpoint": FORMAT_VERSION, "meta": meta, "state_dict": state}, tmp)
    return path


def info_from_meta(meta: dict[str, Any]) -> ModelInfo:
    """Rebuild a :class:`ModelInfo` from a checkpoint's metadata dict; RobenchError when a field has the wrong type."""
    try:
        info = ModelInfo(
            name=str(meta["name"]),
            arch=meta.get("arch"),
            num_classes=meta.get("num_classes"),
            input_size=tuple(meta["input_size"]) if meta.get("input_size") else None,
            mean=tuple(float(v) for v in meta["mean"]),
            std=tuple(float(v) for v in meta["std"]),
            classes=meta.get("classes"),
            training=dict(meta.get("training") or {}),
            crop_pct=meta.get("crop_pct"),
            interpolation=meta.get("interpolation"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RobenchError(f"the checkpoint's robench metadata is malformed ({exc!r})") from None

    def positive_int(v: Any) -> bool:
        return type(v) is int and v >= 1

    problems = [
        f"arch {info.arch!r} is not a string" if info.arch is not None and not isinstance(info.arch, str) else "",
        f"num_classes {info.num_classes!r} is not a positive integer"
        if info.num_classes is not None and not positive_int(info.num_classes) else "",
        f"input_size {list(info.input_size)!r} is not C,H,W positive integers"
        if info.input_size is not None and (len(info.input_size) != 3 or not all(map(positive_int, info.input_size)))
        else "",
        "mean/std hold non-finite values" if not all(map(math.isfinite, info.mean + info.std)) else "",
        f"crop_pct {info.crop_pct!r} is not a positive number"
        if info.crop_pct is not None and not (type(info.crop_pct) in (int, float) and math.isfinite(info.crop_pct)
                                              and info.crop_pct > 0) else "",
        f"interpolation {info.interpolation!r} is not a string"
        if info.interpolation is not None and not isinstance(info.interpolation, str) else "",
        "classes is not a list of names"
        if info.classes is not None and not (isinstance(info.classes, list) and all(isinstance(c, str) for c in info.classes))
        else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise RobenchError(f"the checkpoint's robench metadata is malformed: {'; '.join(problems)}")
    if info.crop_pct is not None:
        info.crop_pct = float(info.crop_pct)
    return info
