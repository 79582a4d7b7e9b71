"""Checkpoint files: recognising their format, reading them safely, writing robench's own.

robench's format is a plain dict ``{"robench_checkpoint": 1, "meta": {...}, "state_dict": {...}}``
saved with ``torch.save`` (readable with ``weights_only=True``) or, for ``.safetensors`` files,
the state dict with the metadata as JSON under the header key ``"robench"``.
"""

from __future__ import annotations

import json
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


class FileFormat(str, Enum):
    """How a checkpoint file is laid out on disk, read from its first bytes."""

    TORCH_SAVE = "torch.save"
    TORCHSCRIPT = "torchscript"
    EXPORT = "torch.export"
    SAFETENSORS = "safetensors"


def sniff_format(path: Path) -> FileFormat:
    """Recognise a checkpoint's format from its content (not its suffix)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise RobenchError(f"cannot read checkpoint {path}: the archive is truncated or corrupt ({exc})") from None
        if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
            return FileFormat.EXPORT
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return FileFormat.TORCHSCRIPT
        if any(n.endswith("/data.pkl") for n in names):
            return FileFormat.TORCH_SAVE
    elif len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < size:
        return FileFormat.SAFETENSORS
    elif head[:1] == b"\x80":  # a pickle protocol header: torch's legacy (non-zip) format
        return FileFormat.TORCH_SAVE
    raise RobenchError(
        f"{path} is not a checkpoint robench can read (expected a robench or PyTorch checkpoint, "
        ".safetensors, a TorchScript archive or a torch.export .pt2 program)"
    )


def torch_load_safe(path: Path, trust: bool = False) -> Any:
    """``torch.load`` on the CPU, with ``weights_only=True`` unless ``trust`` is given.

    A file that needs arbitrary unpickling is refused with a message naming ``--trust-checkpoint``.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise RobenchError(
                f"{path} contains pickled Python objects (e.g. a whole nn.Module) that could run arbitrary "
                "code when loaded; pass --trust-checkpoint only if you trust where it came from"
            ) from None
        raise RobenchError(f"cannot read checkpoint {path}: the file is corrupt ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RobenchError(f"cannot read checkpoint {path}: the file is truncated or corrupt ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The tensors of a ``.safetensors`` file and robench's metadata from its header (or None)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise RobenchError(f"cannot read safetensors file {path}: {_first_line(exc)}") from None
    meta = json.loads(header["robench"]) if "robench" in header else None
    return tensors, meta


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside a loaded checkpoint (``state_dict``/``model``/``state_dict_ema`` keys)."""
    while isinstance(obj, dict) and not _is_state_dict(obj):
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], dict)), None)
        if inner is None:
            break
        obj = inner
    if not (isinstance(obj, dict) and _is_state_dict(obj)):
        raise RobenchError(f"{path} holds no state dict (no tensors under 'state_dict', 'model' or 'state_dict_ema')")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


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
    """Load ``state`` into ``net`` strictly; on mismatch, one line listing what differs."""
    state = match_prefixes(state, set(net.state_dict().keys()))
    own = net.state_dict()
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


def save_checkpoint(model: RobenchModel, path: str | Path) -> Path:
    """Write ``model`` in robench's format (``.safetensors`` by suffix, else ``torch.save``), atomically."""
    path = Path(path)
    meta = json.loads(json.dumps(model.info.to_dict(), default=str))  # plain types only: weights_only-safe
    for key in ("path", "sha256", "source"):
        meta.pop(key)
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"robench": json.dumps(meta)})
        else:
            torch.save({"robench_checkpoint": FORMAT_VERSION, "meta": meta, "state_dict": state}, tmp)
    return path


def info_from_meta(meta: dict[str, Any]) -> ModelInfo:
    """Rebuild a :class:`ModelInfo` from a checkpoint's metadata dict."""
    try:
        return ModelInfo(
            name=str(meta["name"]),
            arch=meta.get("arch"),
            num_classes=meta.get("num_classes"),
            input_size=tuple(meta["input_size"]) if meta.get("input_size") else None,
            mean=tuple(float(v) for v in meta["mean"]),
            std=tuple(float(v) for v in meta["std"]),
            classes=meta.get("classes"),
            training=dict(meta.get("training") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RobenchError(f"the checkpoint's robench metadata is malformed ({exc!r})") from None
