"""Running suites over a dataset: one pass of batches, per-image results, resumable, written atomically.

Layout of an output directory::

    results.csv       long format, one row per suite/test/variant/param/metric
    per_image.csv.gz  one row per image: index, label, prediction, correct, then suite columns (CSV, gzip
                      without time stamp: equal tables give equal bytes; robench.run.PER_IMAGE_FILE)
    meta.json         versions, seed, device, options, checkpoint sha256, dataset identity
    .partial/         per-batch results of an unfinished run (removed when the run completes)

A run interrupted at any point and started again with the same settings skips the batches it
had finished; per-batch random generators are seeded from (seed, batch start), so the resumed
run computes exactly what an uninterrupted one would. Each saved batch keeps the seconds it took,
so ``duration_s`` in meta.json is the whole evaluation's time across attempts (batches saved by
robench versions before this record count 0).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench._version import __version__
from robench.data.imageset import ImageSet
from robench.devices import full_float32
from robench.distributed import DistContext
from robench.errors import OtherRunError, RobenchError, SettingError
from robench.io import json_text, write_atomic
from robench.models.modes import eval_mode
from robench.models.wrapper import RobenchModel
from robench.progress import make_progress
from robench.run import Run, load_run, recorded_signature, write_results
from robench.suites import summary_table
from robench.suites.base import Batch, Suite

PARTIAL = ".partial"
log = logging.getLogger(__name__)  # warnings as one stderr line, as robench.models.efficientnet_layout explains
BATCH_SECONDS = "_batch_seconds"  # key of a partial batch file holding the seconds the batch took


def check_compatible(model: RobenchModel, data: ImageSet, device: torch.device) -> None:
    """Refuse model/data pairs that cannot give meaningful results, before any work starts.

    Compares channels and size with the model's metadata, then runs one image through the model
    to check that the output is N×K with K equal to the dataset's class count.
    """
    c, h, w = data.image_shape
    info = model.info
    if info.input_size is not None:
        mc, mh, mw = info.input_size
        if mc != c:
            raise RobenchError(f"the model takes {mc}-channel images but the dataset has {c} channels")
        if (mh, mw) != (h, w):
            raise RobenchError(
                f"the model expects {mh}×{mw} images but the dataset's are {h}×{w}; "
                "pass --image-size for image folders, or --input-size if the model accepts other sizes"
            )
    if len(info.mean) not in (1, c):
        raise RobenchError(f"the model normalises {len(info.mean)} channels but the images have {c}")
    x, _ = data.batch(0, 1, device)
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(x)
    except Exception as exc:  # any failure of the user's network on this input is a mismatch
        raise RobenchError(f"the model fails on a {c}×{h}×{w} image from the dataset: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RobenchError(f"the model's output should be logits of shape N×classes, got {shape}")
    k = out.shape[1]
    if info.num_classes is not None and info.num_classes != k:
        raise RobenchError(f"the model's metadata says {info.num_classes} classes but it outputs {k}")
    if k != len(data.classes):
        raise RobenchError(f"the model outputs {k} classes but the dataset has {len(data.classes)}")
    info.num_classes = k


def environment() -> dict[str, Any]:
    """Versions and platform, recorded with every result."""
    import timm

    return {"robench": __version__, "torch": torch.__version__, "timm": timm.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "python": sys.version.split()[0], "platform": platform.platform()}


def default_batch_size(height: int, width: int) -> int:
    """Images per evaluation batch when none is given: 128 up to 64×64 px, else the largest power of two
    ≤ 2^20 / (H·W) (16 at 224 px), so a batch's tensors, its resume granularity and its progress steps
    do not grow with the resolution."""
    if height * width <= 64 * 64:
        return 128
    return 1 << max(0, (2**20 // (height * width)).bit_length() - 1)


def evaluate(model: RobenchModel, data: ImageSet, suites: list[Suite], *, out_dir: Path | None, seed: int = 0,
             batch_size: int | None = None, device: torch.device | None = None, options: dict[str, Any] | None = None,
             overwrite: bool = False, dist_ctx: DistContext | None = None,
             model_loading: dict[str, Any] | None = None) -> Run:
    """Run ``suites`` on ``data`` and (with ``out_dir``) write results atomically; resumes unfinished runs.

    Under ``torchrun`` (``dist_ctx`` with several ranks) rank r runs batches r, r + world, …, each
    with the same per-batch seed as in one process; rank 0 gathers the per-image rows and writes
    the same files a single process would. Other ranks return an empty :class:`Run`. ``model_loading`` (how the
    model was loaded, :meth:`robench.settings.LoadOptions.record`) goes to meta.json as it is.
    """
    ctx = dist_ctx or DistContext(0, 1, device or torch.device("cpu"))
    device = ctx.device
    if batch_size is None:
        batch_size = default_batch_size(*data.image_shape[1:])
    if batch_size < 1:
        raise SettingError("batch_size", f"must be at least 1, got {batch_size}", sep=" ")
    model = model.to(device)
    check_compatible(model, data, device)
    for suite in suites:
        suite.prepare(data)
    meta = {
        "robench_results": 1,
        "environment": environment(),
        "seed": seed,
        "device": str(device),
        "batch_size": batch_size,
        "options": options or {},
        **({"model_loading": model_loading} if model_loading is not None else {}),
        "model": model.info.to_dict(),
        "dataset": dict(data.identity, fingerprint=data.fingerprint(), classes=data.classes,
                        image_shape=list(data.image_shape)),
        "suites": {s.name: s.options() for s in suites},
    }
    if device.type == "cuda":
        meta["float32"] = "full float32 (TF32 off; robench.devices.full_float32)"
    signature = _signature(meta)
    finished = None
    if out_dir is not None and not overwrite and ctx.is_main:
        finished = load_finished(out_dir, signature)
    if ctx.broadcast(finished is not None):
        return finished if finished is not None else Run.empty(meta)
    partial = None
    if out_dir is not None:  # rank 0 checks and cleans the directory; the others then use (or create) it
        error: RobenchError | None = None
        if ctx.is_main:
            try:
                partial = _prepare_out_dir(out_dir, signature, overwrite)
            except RobenchError as exc:
                error = exc
        if (error := ctx.broadcast(error)) is not None:
            raise error
        partial = partial or _join_out_dir(out_dir, signature)
    started = time.time()
    starts = list(range(0, len(data), batch_size))[ctx.rank::ctx.world]
    with full_float32(device):
        parts = ctx.gather(_run_batches(model, data, suites, partial, seed, batch_size, starts, device))
    meta.update(signature=signature, world_size=ctx.world)
    if not ctx.is_main:
        return Run.empty(meta)
    ordered = sorted((item for rank_parts in parts or [] for item in rank_parts), key=lambda item: item[0])
    per_image = pd.concat([part for _, part, _ in ordered], ignore_index=True)
    earlier_s = sum(seconds for _, _, seconds in ordered)  # batches finished by interrupted earlier attempts
    results = summary_table(suites, per_image, data.classes)
    meta.update(duration_s=round(time.time() - started + earlier_s, 3), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                n_images=len(per_image))
    meta = json.loads(json_text(meta))  # as meta.json holds it (tuples as lists): the same Run whether saved or not
    if out_dir is not None:
        write_results(out_dir, results, per_image, meta)
        shutil.rmtree(out_dir / PARTIAL, ignore_errors=True)
    return Run(out_dir, meta, results, per_image)


def _signature(meta: dict[str, Any]) -> str:
    """Hash of everything that determines the results (not timings or the command line's spelling)."""
    keys = ("seed", "batch_size", "model", "dataset", "suites", "device")
    return hashlib.sha256(json.dumps({k: meta[k] for k in keys}, sort_keys=True, default=str).encode()).hexdigest()


def _prepare_out_dir(out_dir: Path, signature: str, overwrite: bool) -> Path:
    """Check the output directory before work starts; return the folder for per-batch results."""
    meta_path, partial = out_dir / "meta.json", out_dir / PARTIAL
    if out_dir.exists() and not out_dir.is_dir():
        raise RobenchError(f"--out {out_dir} exists and is not a directory")
    if meta_path.exists() and not overwrite:
        if recorded_signature(out_dir) != signature:
            raise OtherRunError(f"{out_dir} already holds results of a different run; choose another --out or pass --overwrite")
    if partial.exists():
        sig_file = partial / "signature"
        if overwrite or not sig_file.exists() or sig_file.read_text() != signature:
            shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True, exist_ok=True)
        if not (partial / "signature").exists():
            (partial / "signature").write_text(signature)
    except OSError as exc:
        raise RobenchError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from None
    return partial


def _join_out_dir(out_dir: Path, signature: str) -> Path:
    """A non-zero rank's folder for per-batch results (rank 0 prepared it; on another machine, create it)."""
    partial = out_dir / PARTIAL
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RobenchError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from None
    if not (partial / "signature").exists():
        write_atomic(partial / "signature", lambda tmp: tmp.write_text(signature))
    return partial


def _run_batches(model: RobenchModel, data: ImageSet, suites: list[Suite], partial: Path | None, seed: int,
                 batch_size: int, starts: list[int], device: torch.device) -> list[tuple[int, pd.DataFrame, float]]:
    """Per-image rows of the batches starting at ``starts``, as (start, frame, seconds) triples.

    Finished batches of an interrupted run are read back from ``partial`` with the seconds they took
    then (0 for batches saved before robench recorded them); batches run now count 0 here, since
    this process's wall time covers them. The progress bar moves within a batch as its suites report
    their share done (each suite one equal part of the batch), so its rate and ETA are live at 224 px.
    """
    parts: list[tuple[int, pd.DataFrame, float]] = []
    with make_progress() as progress, eval_mode(model):
        task = progress.add_task("evaluating", total=sum(min(batch_size, len(data) - s) for s in starts))
        done = 0
        for start in starts:
            stop = min(start + batch_size, len(data))
            part_path = partial / f"batch-{start:09d}.npz" if partial is not None else None
            if part_path is not None and part_path.exists():
                with np.load(part_path, allow_pickle=False) as arrays:
                    seconds = float(arrays[BATCH_SECONDS]) if BATCH_SECONDS in arrays.files else 0.0
                    frame = pd.DataFrame({k: arrays[k] for k in arrays.files if k != BATCH_SECONDS})
                parts.append((start, frame, seconds))
            else:
                def report(suite: int, share: float, first: int = done, size: int = stop - start) -> None:
                    progress.update(task, completed=first + size * (suite + share) / max(1, len(suites)))

                batch_started = time.time()
                part = _run_batch(model, data, suites, start, stop, seed, device, report)
                if start == starts[0] and len(starts) > 1:  # one batch: the end-of-run warning says it
                    _hint_on_first_batch(model, part, len(data.classes))
                if part_path is not None:
                    seconds = time.time() - batch_started
                    write_atomic(part_path, lambda tmp: _save_part(tmp, part, seconds))  # called at once
                parts.append((start, part, 0.0))
            done += stop - start
            progress.update(task, completed=done)
    return parts


def _hint_on_first_batch(model: RobenchModel, part: pd.DataFrame, classes: int) -> None:
    """Log a warning naming what to check when the first batch is classified near chance (before hours of attacks)."""
    from robench.models.probe import chance_hint

    hint = chance_hint(model.info, float(part["correct"].mean()), len(part), classes)
    if hint is not None:
        log.warning(f"robench: warning: {hint}")


def _save_part(path: Path, part: pd.DataFrame, seconds: float) -> None:
    with open(path, "wb") as f:  # an open file keeps np.savez from appending ".npz" to the temp name
        np.savez(f, **{k: part[k].to_numpy() for k in part.columns}, **{BATCH_SECONDS: np.float64(seconds)})


def _run_batch(model: RobenchModel, data: ImageSet, suites: list[Suite], start: int, stop: int, seed: int,
               device: torch.device, report: Callable[[int, float], None] = lambda suite, share: None) -> pd.DataFrame:
    """The per-image columns of images ``start:stop``; ``report(i, share)`` as suite i gets through its work."""
    x, y = data.batch(start, stop, device)
    with torch.no_grad():
        logits = model(x).float()
    if not torch.isfinite(logits).all():
        raise RobenchError(f"the model outputs NaN or Inf on images {start}..{stop - 1}: its results would be invalid")
    generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)
    batch = Batch(x=x, y=y, index=data.index[start:stop], logits=logits, generator=generator)
    probs = logits.softmax(1)
    columns: dict[str, Any] = {
        "index": batch.index,
        "label": y.cpu().numpy(),
        "prediction": logits.argmax(1).cpu().numpy(),
        "correct": batch.correct.cpu().numpy(),
        "confidence": probs.max(1).values.double().cpu().numpy(),  # float64, as the written table reads back
        "true_class_prob": probs.gather(1, y[:, None])[:, 0].double().cpu().numpy(),
    }
    for i, suite in enumerate(suites):
        batch.report = partial(report, i)  # report(i, share)
        columns.update(suite.run_batch(model, batch))
        report(i, 1.0)
    return pd.DataFrame(columns)


def load_finished(out_dir: Path, signature: str) -> Run | None:
    """The run already in ``out_dir`` if it is complete and has this signature."""
    if recorded_signature(out_dir) != signature:
        return None
    try:
        return load_run(out_dir)
    except (OSError, ValueError, RobenchError):
        return None
