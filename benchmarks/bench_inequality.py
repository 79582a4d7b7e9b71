#!/usr/bin/env python
"""Performance targets of the inequality suite, measured as ratios of variants timed side by side.

Every comparison interleaves its variants in one process (round-robin, the order alternating
from round to round), repeats, and reports the ratio of the median times, so a loaded machine
slows both sides alike. No absolute timing is a target.

    .venv/bin/python benchmarks/bench_inequality.py --out reports/benchmarks/inequality.md

Targets (from the issue):

1. the whole suite on a batch of real CIFAR-10 images costs at most 1.3x the bare forward and
   backward passes it needs (the floor: the exact batch sizes the suite sent through the model,
   recorded by a forward hook and replayed on random inputs in a bare loop);
2. attribution at least as fast as Captum for the same method and steps;
3. Gini at least 10x faster than Quantus ``Sparseness`` on the same maps;
4. the suite at least 10x faster than the reference scripts' way: one image at a time, with the
   attribution recomputed before each attack;
5. peak memory bounded by the batch size, not the dataset size (1,000 vs 10,000 images, each in
   its own subprocess).

The helpers are imported by ``benchmarks/test_bench_inequality.py`` (pytest-benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("ROBENCH_PROGRESS", "0")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from robench.attacks import default_max_radius, inductive_occlusion, noise_attack  # noqa: E402
from robench.attribution import attribute  # noqa: E402
from robench.data import ImageSet, load_dataset  # noqa: E402
from robench.metrics import (  # noqa: E402
    default_block_size,
    gini_with_flags,
    lorenz_on_grid,
    pixel_gini,
    regional_gini,
    transform_attribution,
)
from robench.models.modes import eval_mode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Timings, child_json, interleave, machine, set_threads, synchronizer  # noqa: E402,F401

from robench.devices import full_float32, resolve_device  # noqa: E402
from robench.models.registry import create_model  # noqa: E402
from robench.models.wrapper import ModelInfo, RobenchModel  # noqa: E402
from robench.runner import evaluate  # noqa: E402
from robench.schema import number_label  # noqa: E402
from robench.settings import config_record  # noqa: E402
from robench.suites import InequalityConfig, make_suites  # noqa: E402
from robench.suites.inequality import LORENZ_GRID, InequalitySuite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ROBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
FOREIGN = SHARED / "foreign-checkpoints" / "resnet20-12fca82f.th"
USER_ARCH = ROOT / "examples" / "user_arch"

#: Reduced suite settings for the memory runs (target 5): 3 + 3 noise budgets, one fill.
MEMORY_CONFIGS: dict[str, dict[str, Any]] = {
    "reduced": dict(ina_budgets=(0.002, 0.01, 0.02), rn_budgets=(0.02, 0.1, 0.2), occlusion_fill=(0.5,)),
    "tiny": dict(ina_budgets=(0.01,), rn_budgets=(0.1,), occlusion_fill=(0.5,), occlusion_count=2),
}


# ------------------------------------------------------------------------------------------
# models and data
# ------------------------------------------------------------------------------------------


def tiny_model(seed: int = 0) -> RobenchModel:
    """A randomly initialised cnn_tiny with CIFAR-10 metadata (the tests' helper)."""
    torch.manual_seed(seed)
    net = create_model("cnn_tiny", num_classes=10, in_chans=3)
    info = ModelInfo(name="tiny", arch="cnn_tiny", num_classes=10, input_size=(3, 32, 32),
                     mean=(0.5,) * 3, std=(0.25,) * 3)
    return RobenchModel(net, info).eval()


def real_model() -> tuple[RobenchModel, str]:
    """The third-party trained ResNet-20 when its checkpoint exists, else cnn_tiny (and why)."""
    if FOREIGN.exists():
        from robench.models.loading import load_model

        model = load_model(str(FOREIGN), arch="cifar_resnet20:resnet20", arch_path=str(USER_ARCH),
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        return model, f"ResNet-20 (trained, third-party checkpoint {FOREIGN.name})"
    return tiny_model(), f"cnn_tiny (random init; {FOREIGN} not found)"


def model_device(model: torch.nn.Module) -> torch.device:
    """The device the model's parameters are on (where the benchmarks put their inputs)."""
    return next(model.parameters()).device


def on_device(model: torch.nn.Module, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` moved to the model's device."""
    dev = model_device(model)
    return tuple(t.to(dev) for t in tensors)


def sample_data(n: int | None = None) -> ImageSet:
    """The first ``n`` images of the bundled lossless CIFAR-10 test sample (all 1,000 by default)."""
    data = load_dataset("sample")
    return data if n is None else data.subset(np.arange(n))


def tiled_data(n: int) -> ImageSet:
    """An ``n``-image set made by tiling the 1,000-image sample (for the memory runs)."""
    base = load_dataset("sample")
    reps = -(-n // len(base))
    images = np.empty((n, *base.images.shape[1:]), dtype=np.uint8)  # one allocation, no tiled temporary
    for start in range(0, n, len(base)):
        stop = min(n, start + len(base))
        images[start:stop] = base.images[: stop - start]
    labels = np.tile(base.labels, reps)[:n].copy()
    return ImageSet(images, labels, base.classes, np.arange(n, dtype=np.int64),
                    {"name": "cifar10-sample-tiled", "n": n})


# ------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# target 1: the suite against the bare passes it needs
# ------------------------------------------------------------------------------------------


def suites_for(config: InequalityConfig, seed: int = 0) -> list:
    return make_suites("inequality", seed=seed, suite_options={"inequality": {"config": replace(config)}})


def run_suite(model: RobenchModel, data: ImageSet, config: InequalityConfig, batch_size: int, seed: int = 0):
    """The whole suite as ``robench evaluate`` runs it (clean + inequality), no output files."""
    return evaluate(model, data, suites_for(config, seed), out_dir=None, seed=seed, batch_size=batch_size,
                    device=model_device(model))


class PassRecorder:
    """Records ``(batch size, grad enabled)`` of every forward call of ``model`` while active."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.calls: list[tuple[int, bool]] = []
        self._handle = None

    def __enter__(self) -> PassRecorder:
        def hook(_module, args):
            self.calls.append((int(args[0].shape[0]), torch.is_grad_enabled()))

        self._handle = self.model.register_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._handle is not None
        self._handle.remove()

    def summary(self) -> dict[str, int]:
        fwd = [b for b, g in self.calls if not g]
        grad = [b for b, g in self.calls if g]
        return {"forward_calls": len(fwd), "forward_images": sum(fwd),
                "grad_calls": len(grad), "grad_images": sum(grad)}


def replay_passes(model: torch.nn.Module, layout: list[tuple[int, bool]], image_shape: tuple[int, int, int],
                  inputs: torch.Tensor | None = None) -> None:
    """The floor: exactly the recorded passes, on random inputs, in a bare loop.

    No-grad calls are ``model(x)`` under ``torch.no_grad()``; grad calls are a forward plus the
    backward of one logit per row to the input (what a saliency map costs).
    """
    if inputs is None:
        inputs = floor_inputs(layout, image_shape)
    with eval_mode(model):
        for size, grad in layout:
            if grad:
                with torch.enable_grad():
                    inp = inputs[:size].detach().requires_grad_(True)
                    out = model(inp)
                    torch.autograd.grad(out[:, 0].sum(), inp)
            else:
                with torch.no_grad():
                    model(inputs[:size])


def floor_inputs(layout: list[tuple[int, bool]], image_shape: tuple[int, int, int], seed: int = 0,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Random [0, 1] inputs on ``device``, large enough for the biggest recorded batch (slices are contiguous)."""
    biggest = max(size for size, _ in layout)
    return torch.rand((biggest, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)


def expected_image_forwards(per_image: pd.DataFrame, config: InequalityConfig) -> int:
    """Image-forwards (no grad) the suite should spend, from its own per-image columns:
    1 (compatibility check) + N clean + L_ina·T·N' + L_rn·T·N' + the occlusion queries."""
    attacked = int(per_image["correct"].sum())
    noise = (len(config.ina_budgets) + len(config.rn_budgets)) * config.trials * attacked
    occlusion = sum(int(np.nansum(per_image[f"ioa[{fill:g}]_queries"])) for fill in config.occlusion_fill)
    return 1 + len(per_image) + noise + occlusion


def target_suite_vs_floor(model: RobenchModel, n_images: int, repeats: int, config: InequalityConfig) -> dict[str, Any]:
    data = sample_data(n_images)
    with PassRecorder(model) as rec:  # also the suite's warm-up
        ev = run_suite(model, data, config, batch_size=n_images)
    layout = list(rec.calls)
    counts = rec.summary()
    expected = expected_image_forwards(ev.per_image, config)
    inputs = floor_inputs(layout, data.image_shape, device=model_device(model))
    replay_passes(model, layout, data.image_shape, inputs)  # the floor's warm-up
    t = interleave({"suite": lambda: run_suite(model, data, config, batch_size=n_images),
                    "floor": lambda: replay_passes(model, layout, data.image_shape, inputs)},
                   repeats, warmup=False, sync=synchronizer(model_device(model)))
    ratio = t.ratio("suite", "floor")
    return {
        "id": 1, "name": "suite / floor of its forward+backward passes", "ratio": ratio, "target": "<= 1.3",
        "pass": ratio <= 1.3, "timings": t.times, "round_ratios": t.round_ratios("suite", "floor"),
        "cpu_ratio": t.cpu_ratio("suite", "floor"), "cpu_times": t.cpu,
        "details": {"images": n_images, "attacked": int(ev.per_image["correct"].sum()), **counts,
                    "expected_forward_images": expected,
                    "layout_matches_suite_counts": expected == counts["forward_images"],
                    "config": config_record(config)},
    }


# ------------------------------------------------------------------------------------------
# target 2: attribution against Captum
# ------------------------------------------------------------------------------------------


def attribution_pairs(model: RobenchModel, x: torch.Tensor, y: torch.Tensor, method: str,
                      steps: int = 50, internal_batch_size: int = 128) -> dict[str, Callable[[], torch.Tensor]]:
    """``{"robench": f, "captum": g}`` computing the same attribution (see the module docstring)."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    from robench.attribution import integrated_gradients, saliency, smoothgrad

    n = x.shape[0]
    if method == "saliency":
        sal = Saliency(model)
        return {"robench": lambda: saliency(model, x, y),
                "captum": lambda: sal.attribute(x, target=y, abs=False)}
    if method == "integrated_gradients":
        ig = IntegratedGradients(model)
        return {"robench": lambda: integrated_gradients(model, x, y, steps=steps, method="gausslegendre",
                                                        internal_batch_size=internal_batch_size),
                "captum": lambda: ig.attribute(x, baselines=0.0, target=y, n_steps=steps, method="gausslegendre",
                                               internal_batch_size=internal_batch_size)}
    if method == "smoothgrad":
        nt = NoiseTunnel(Saliency(model))
        per_batch = max(1, internal_batch_size // n)  # Captum counts samples per batch, robench inputs
        gen = torch.Generator(x.device).manual_seed(0)
        return {"robench": lambda: smoothgrad(model, x, y, samples=steps, sigma=0.2, squared=True,
                                              internal_batch_size=per_batch * n, generator=gen),
                "captum": lambda: nt.attribute(x, nt_type="smoothgrad_sq", nt_samples=steps, stdevs=0.2,
                                               nt_samples_batch_size=per_batch, target=y, abs=False)}
    raise ValueError(method)


def target_attribution(model: RobenchModel, repeats: int, sal_images: int, ig_images: int,
                       ig_steps: int = 50, ibs: int = 128, sg_samples: int = 20) -> dict[str, Any]:
    rows = []
    for method, n, steps in (("saliency", sal_images, 1), ("integrated_gradients", ig_images, ig_steps),
                             ("smoothgrad", ig_images, sg_samples)):
        x, y = on_device(model, *sample_data(n).batch(0, n))
        pair = attribution_pairs(model, x, y, method, steps=steps, internal_batch_size=ibs)
        a, b = pair["robench"](), pair["captum"]()
        if method == "smoothgrad":  # different noise draws: compare scale only
            agree = float((a.mean() / b.mean()).item())
            agree_desc = f"mean ratio robench/captum {agree:.3f} (different noise draws)"
        else:
            err = float(((a - b).abs().max() / b.abs().max()).item())
            agree_desc = f"max |robench - captum| / max |captum| = {err:.1e}"
        t = interleave(pair, repeats, sync=synchronizer(model_device(model)))
        ratio = t.ratio("captum", "robench")
        rows.append({"method": method, "images": n, "steps": steps, "internal_batch_size": ibs if steps > 1 else None,
                     "ratio": ratio, "timings": t.times, "round_ratios": t.round_ratios("captum", "robench"),
                     "cpu_ratio": t.cpu_ratio("captum", "robench"), "cpu_times": t.cpu,
                     "agreement": agree_desc, "pass": ratio >= 1.0})
    return {"id": 2, "name": "Captum / robench attribution time", "target": ">= 1", "rows": rows,
            "pass": all(r["pass"] for r in rows), "ratio": min(r["ratio"] for r in rows)}


# ------------------------------------------------------------------------------------------
# target 3: Gini against Quantus Sparseness
# ------------------------------------------------------------------------------------------


def gini_pair(attr: torch.Tensor, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
    """``{"robench": pixel Gini of |attr|, "quantus": Sparseness(abs=True, normalise=False)}``."""
    import quantus

    metric = quantus.Sparseness(abs=True, normalise=False, disable_warnings=True, display_progressbar=False)
    a_np = attr.numpy()
    return {"robench": lambda: pixel_gini(attr, "abs"),
            # Quantus adds 1e-7 to its a_batch in place, so it gets a fresh copy each call
            "quantus": lambda: metric(model=None, x_batch=x, y_batch=y, a_batch=a_np.copy(),
                                      channel_first=True, batch_size=len(y))}


def target_gini(model: RobenchModel, repeats: int, cifar_maps: int = 128, big_maps: int = 16) -> dict[str, Any]:
    x, y = sample_data(cifar_maps).batch(0, cifar_maps)
    from robench.attribution import saliency

    cases = [(f"|saliency| of {cifar_maps} CIFAR-10 images (3x32x32)", saliency(model, *on_device(model, x, y)).cpu(), x, y)]
    gen = torch.Generator().manual_seed(0)
    big = torch.randn((big_maps, 3, 224, 224), generator=gen)
    cases.append((f"{big_maps} random maps of 3x224x224", big, torch.rand(big.shape, generator=gen),
                  torch.zeros(big_maps, dtype=torch.long)))
    rows = []
    for desc, attr, xs, ys in cases:
        pair = gini_pair(attr, xs.numpy(), ys.numpy())
        diff = float(np.abs(np.asarray(pair["quantus"](), dtype=np.float64) - pair["robench"]().double().numpy()).max())
        t = interleave(pair, repeats)
        ratio = t.ratio("quantus", "robench")
        rows.append({"case": desc, "ratio": ratio, "timings": t.times, "round_ratios": t.round_ratios("quantus", "robench"),
                     "cpu_ratio": t.cpu_ratio("quantus", "robench"), "cpu_times": t.cpu,
                     "agreement": f"max |Gini difference| = {diff:.1e} (Quantus adds 1e-7 to every entry)",
                     "pass": ratio >= 10})
    return {"id": 3, "name": "Quantus Sparseness / robench Gini time", "target": ">= 10", "rows": rows,
            "pass": all(r["pass"] for r in rows), "ratio": min(r["ratio"] for r in rows)}


# ------------------------------------------------------------------------------------------
# target 4: the reference scripts' way, one image at a time
# ------------------------------------------------------------------------------------------


def per_image_reference(model: RobenchModel, data: ImageSet, config: InequalityConfig, seed: int = 0) -> pd.DataFrame:
    """The reference scripts' way of running the suite: one image at a time (every forward has
    batch size 1: attacks get one image and ``max_batch=1``), each attack run computing its own
    attribution as a separate script would (Gini, INA, RN and every occlusion fill: 1 + 2 + F
    attributions per correctly classified image), plus the clean forward that decides whether
    the image is attacked. Same settings and robench functions as the suite; returns the same
    per-image columns, summarised with the suite's own ``summarize``.
    """
    cfg = config
    c, h, w = data.image_shape
    b_sum, b_avg = default_block_size(h, "sum"), min(default_block_size(h, "avgpool"), h, w)
    radius = cfg.occlusion_radius or default_max_radius(h)
    nan = float("nan")

    def attr_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return attribute(cfg.attribution, model, x, y, **cfg.attribution_options.keywords())

    rows = []
    with eval_mode(model):
        for i in range(len(data)):
            x, y = on_device(model, *data.batch(i, i + 1))
            gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
            with torch.no_grad():
                logits = model(x)
            correct = bool(logits.argmax(1).item() == y.item())
            row: dict[str, Any] = {"index": int(data.index[i]), "label": int(y.item()),
                                   "prediction": int(logits.argmax(1).item()), "correct": correct}
            # Gini script
            a = attr_of(x, y)
            values = transform_attribution(a, cfg.gini_value)
            g, zero = gini_with_flags(values)
            _, shares = lorenz_on_grid(values.flatten(1), grid_size=LORENZ_GRID)
            row["gini_pixel"] = float(g[0])
            row["gini_region_sum"] = float(regional_gini(a, region="sum", block=b_sum, value=cfg.gini_value)[0])
            row["gini_region_avgpool"] = float(regional_gini(a, region="avgpool", block=b_avg, value=cfg.gini_value)[0])
            row["attribution_all_zero"] = bool(zero[0])
            shares_np = np.asarray(torch.as_tensor(shares).cpu(), dtype=np.float64)
            for j in range(1, LORENZ_GRID - 1):
                row[f"lorenz@{j / (LORENZ_GRID - 1):.2f}"] = shares_np[0, j]
            for selection, budgets, prefix in (("inductive", cfg.ina_budgets, "ina"), ("random", cfg.rn_budgets, "rn")):
                if correct:  # INA script, RN script: each computes its attribution
                    res = noise_attack(model, x, y, attr_of(x, y), budgets, selection=selection, mode=cfg.noise_mode,
                                       noise=cfg.noise, trials=cfg.trials, generator=gen, max_batch=1)
                    fooled = res.fooled.float().mean(1).cpu().numpy()
                for level, budget in enumerate(budgets):
                    row[f"{prefix}@{number_label(budget)}"] = float(fooled[level, 0]) if correct else nan
            for fill in cfg.occlusion_fill:  # one occlusion script run per fill
                tag = f"ioa[{fill:g}]"
                if correct:
                    occ = inductive_occlusion(model, x, y, attr_of(x, y), max_count=cfg.occlusion_count,
                                              max_radius=radius, fill=fill, order=cfg.occlusion_order, max_batch=1)
                    ok = bool(occ.fooled[0])
                    row[f"{tag}_fooled"] = float(ok)
                    row[f"{tag}_area"] = float(occ.area[0]) if ok else nan
                    row[f"{tag}_queries"] = float(occ.queries[0])
                else:
                    row[f"{tag}_fooled"] = row[f"{tag}_area"] = row[f"{tag}_queries"] = nan
            rows.append(row)
    per_image = pd.DataFrame(rows)
    suite = InequalitySuite(seed, replace(cfg))
    suite.prepare(data)
    suite.summarize(per_image, data.classes)
    return per_image


def target_per_image(model: RobenchModel, n_images: int, repeats: int, config: InequalityConfig) -> dict[str, Any]:
    """Reference loop vs suite, plus the bare replay of each one's passes (their floors): the floor
    ratio is what batching alone can buy on this machine, whatever the code around the passes."""
    data = sample_data(n_images)
    with PassRecorder(model) as rec_ref:  # warm-up, the reference's passes, and a faithfulness check
        ref = per_image_reference(model, data, config)
    with PassRecorder(model) as rec_suite:
        ev = run_suite(model, data, config, batch_size=n_images)
    checks = []
    for fill in config.occlusion_fill:
        tag = f"ioa[{fill:g}]"
        a = ref[f"{tag}_queries"].to_numpy()
        b = ev.per_image[f"{tag}_queries"].to_numpy()
        checks.append(int(np.sum((a == b) | (np.isnan(a) & np.isnan(b)))))
    gini_diff = float(np.abs(ref["gini_pixel"].to_numpy() - ev.per_image["gini_pixel"].to_numpy()).max())
    ref_layout, suite_layout = list(rec_ref.calls), list(rec_suite.calls)
    inputs = floor_inputs(suite_layout, data.image_shape, device=model_device(model))
    for layout in (ref_layout, suite_layout):
        replay_passes(model, layout, data.image_shape, inputs)  # the floors' warm-up
    t = interleave({"per_image": lambda: per_image_reference(model, data, config),
                    "suite": lambda: run_suite(model, data, config, batch_size=n_images),
                    "per_image_floor": lambda: replay_passes(model, ref_layout, data.image_shape, inputs),
                    "suite_floor": lambda: replay_passes(model, suite_layout, data.image_shape, inputs)},
                   repeats, warmup=False, sync=synchronizer(model_device(model)))
    ratio = t.ratio("per_image", "suite")
    return {"id": 4, "name": f"per-image reference loop / suite ({config.attribution})", "ratio": ratio, "target": ">= 10",
            "pass": ratio >= 10, "timings": t.times, "round_ratios": t.round_ratios("per_image", "suite"),
            "cpu_ratio": t.cpu_ratio("per_image", "suite"), "cpu_times": t.cpu,
            "details": {"images": n_images, "attacked": int(ev.per_image["correct"].sum()),
                        "reference_passes": rec_ref.summary(), "suite_passes": rec_suite.summary(),
                        "floor_ratio": t.ratio("per_image_floor", "suite_floor"),
                        "floor_cpu_ratio": t.cpu_ratio("per_image_floor", "suite_floor"),
                        "reference_overhead": t.ratio("per_image", "per_image_floor"),
                        "suite_overhead": t.ratio("suite", "suite_floor"),
                        "occlusion_queries_equal": f"{min(checks)}/{n_images} images (worst fill)",
                        "max_gini_pixel_difference": f"{gini_diff:.1e}", "config": config_record(config)}}


# ------------------------------------------------------------------------------------------
# target 5: peak memory, 1,000 vs 10,000 images, each in its own process
# ------------------------------------------------------------------------------------------


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _vm_hwm_mb() -> float:
    """Peak RSS of this process's own address space (``VmHWM``), NaN where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def rss_child(n: int, preset: str, threads: int, batch_size: int) -> dict[str, Any]:
    """Run in a fresh process: the suite on ``n`` tiled images with cnn_tiny; peak RSS in MiB."""
    set_threads(threads)
    model = tiny_model()
    data = tiled_data(n)
    config = InequalityConfig(**MEMORY_CONFIGS[preset])
    before = _max_rss_mb()
    t0 = time.perf_counter()
    ev = run_suite(model, data, config, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    return {"images": n, "peak_rss_mb_before_suite": before, "peak_rss_mb": _max_rss_mb(), "vm_hwm_mb": _vm_hwm_mb(),
            "seconds": seconds,
            "attacked": int(ev.per_image["correct"].sum()), "dataset_mb": data.images.nbytes / 2**20,
            "per_image_table_mb": ev.per_image.memory_usage(deep=True).sum() / 2**20}


def measure_rss(n: int, preset: str, threads: int, batch_size: int) -> dict[str, Any]:
    """Peak RSS of a fresh process running :func:`rss_child` (:func:`benchlib.child_json`)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(n), "--rss-preset", preset,
           "--threads", str(threads), "--batch-size", str(batch_size)]
    return child_json(cmd, f"memory child for {n} images")


def target_memory(sizes: tuple[int, int], preset: str, threads: int, batch_size: int) -> dict[str, Any]:
    small, large = (measure_rss(n, preset, threads, batch_size) for n in sizes)
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    return {"id": 5, "name": f"peak RSS {sizes[1]:,} / {sizes[0]:,} images", "ratio": ratio, "target": "<= 1.2",
            "pass": ratio <= 1.2, "runs": [small, large],
            "details": {"model": "cnn_tiny (random init)", "batch_size": batch_size,
                        "config": config_record(InequalityConfig(**MEMORY_CONFIGS[preset]))}}


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def _fmt_times(times: dict[str, list[float]]) -> str:
    return "; ".join(f"{k}: median {statistics.median(v):.3f} s ({', '.join(f'{s:.3f}' for s in v)})"
                     for k, v in times.items())


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else ""


def _verdict(item: dict[str, Any], target: str) -> str:
    """PASS/FAIL on the median ratio; a FAIL whose per-round ratios reach the target is marked
    as within the run-to-run noise."""
    if item["pass"]:
        return "PASS"
    op, value = target.split()
    rounds = item.get("round_ratios") or []
    reach = any((r >= float(value)) if op == ">=" else (r <= float(value)) for r in rounds)
    return "FAIL (within noise: some rounds meet it)" if reach else "FAIL"


def _cpu(item: dict[str, Any]) -> str:
    return f"{item['cpu_ratio']:.2f}" if "cpu_ratio" in item else "–"


def render(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        "# Inequality suite: performance targets",
        "",
        "Produced by:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"- Date: {m['date']}",
        f"- Machine: `nproc` = {m['nproc']}, CPU `{m['cpu']}`, {m['platform']}, Python {m['python']}",
        f"- Device for targets 1, 2 and 4: `{meta.get('device', 'cpu')}` (GPU: {m.get('gpu', 'none')}); "
        "targets 3 and 5 are CPU measurements. On a GPU every timed variant ends with `torch.cuda.synchronize()`, "
        "and everything runs in full float32 (TF32 off), as `robench evaluate` does.",
        f"- torch {m['torch']}, `torch.set_num_threads({meta['threads']})` for every variant; "
        f"load average at start {m['loadavg']} (the machine was shared with other jobs)",
        f"- Model for targets 1–4: {meta['model']}",
        f"- Each comparison interleaves its variants in one process (order reversed every other round), "
        f"{meta['repeats']} timed rounds ({meta['attribution_repeats']} for attribution) after a warm-up; the "
        "ratio is of the median wall times, the spread is the range of the per-round wall-time ratios, and the "
        "CPU-time ratio (median `time.process_time()`, which with one torch thread is the work itself, less "
        "disturbed by other jobs) is a cross-check. Only ratios are targets: absolute times on this loaded "
        "machine are not meaningful.",
        f"- Total run time: {meta['elapsed_s']:.0f} s",
        "",
        "| # | measurement | ratio (wall) | per-round spread | CPU-time ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "rows" in r:
            for row in r["rows"]:
                label = row.get("method") or row.get("case")
                lines.append(f"| {r['id']} | {r['name']}: {label} | {row['ratio']:.2f} | {_spread(row['round_ratios'])} "
                             f"| {_cpu(row)} | {r['target']} | {_verdict(row, r['target'])} |")
        else:
            lines.append(f"| {r['id']} | {r['name']} | {r['ratio']:.3f} | {_spread(r.get('round_ratios', []))} "
                         f"| {_cpu(r)} | {r['target']} | {_verdict(r, r['target'])} |")
    lines += ["", "## Details", ""]
    for r in results:
        lines.append(f"### {r['id']}. {r['name']}")
        lines.append("")
        if r["id"] == 1:
            d = r["details"]
            lines += [
                f"The whole suite (`evaluate` with `clean,inequality`, default `InequalityConfig`, one batch of "
                f"{d['images']} real CIFAR-10 images, {d['attacked']} classified correctly and attacked) against the "
                "floor: every forward call the suite made, recorded with a forward pre-hook on the model, replayed "
                "with the same batch sizes on random inputs in a bare loop (`torch.no_grad()` forward; for the "
                "attribution's grad-enabled call a forward plus `autograd.grad` of one logit per row to the input).",
                "",
                f"- Recorded: {d['forward_calls']} no-grad forward calls carrying {d['forward_images']} images, "
                f"{d['grad_calls']} forward+backward call(s) carrying {d['grad_images']} images.",
                f"- Cross-check from the suite's own per-image output (1 compatibility check + clean + noise levels × "
                f"attacked + occlusion queries): {d['expected_forward_images']} images — "
                f"{'matches' if d['layout_matches_suite_counts'] else 'DOES NOT match'} the recording.",
                f"- Times: {_fmt_times(r['timings'])}",
                "",
            ]
        elif r["id"] == 2:
            lines.append("Same method, steps and internal batch size on real CIFAR-10 images "
                         "(robench `saliency` vs `captum.attr.Saliency(abs=False)`; `integrated_gradients` "
                         "gausslegendre, zero baseline vs `IntegratedGradients`; `smoothgrad` squared, σ = 0.2 vs "
                         "`NoiseTunnel(Saliency)` `smoothgrad_sq`, `nt_samples_batch_size` = internal batch / images).")
            lines.append("")
            if any(_verdict(row, r["target"]) != "PASS" for row in r["rows"]):
                lines += ["Both libraries run the same forward/backward passes with the same batch sizes, so the "
                          "ratios can only scatter around 1; a median below 1 whose per-round ratios reach 1 is "
                          "run-to-run noise on this shared machine (more rounds: `--attribution-repeats`).", ""]
            for row in r["rows"]:
                ibs = f", internal batch {row['internal_batch_size']}" if row["internal_batch_size"] else ""
                lines.append(f"- {row['method']} ({row['images']} images, steps/samples {row['steps']}{ibs}): "
                             f"ratio {row['ratio']:.2f}; {row['agreement']}; {_fmt_times(row['timings'])}")
            lines.append("")
        elif r["id"] == 3:
            lines.append("robench `pixel_gini(attr, \"abs\")` vs `quantus.Sparseness(abs=True, normalise=False)` "
                         "called with the same signed maps (`model=None`, `channel_first=True`, one batch).")
            lines.append("")
            for row in r["rows"]:
                lines.append(f"- {row['case']}: ratio {row['ratio']:.1f}; {row['agreement']}; {_fmt_times(row['timings'])}")
            lines.append("")
        elif r["id"] == 4:
            d = r["details"]
            lines += [
                f"`per_image_reference` in the script: for each of {d['images']} images "
                f"({d['attacked']} attacked), one image at a time — clean forward, then as separate reference "
                "scripts would: attribution + Gini/Lorenz; attribution + INA; attribution + RN; and per occlusion "
                "fill attribution + IOA — calling robench's own `attribute`, `noise_attack` and "
                "`inductive_occlusion` with that single image and `max_batch=1` (every forward has batch size 1), "
                "then the suite's `summarize`. Same default config as the suite.",
                "",
                f"- Passes: reference {d['reference_passes']['forward_calls']} no-grad calls / "
                f"{d['reference_passes']['forward_images']} images and {d['reference_passes']['grad_calls']} "
                f"forward+backward calls / {d['reference_passes']['grad_images']} images; suite "
                f"{d['suite_passes']['forward_calls']} / {d['suite_passes']['forward_images']} and "
                f"{d['suite_passes']['grad_calls']} / {d['suite_passes']['grad_images']}.",
                f"- Floors (each one's recorded passes replayed bare, interleaved with the two runs): "
                f"per-image floor / suite floor = **{d['floor_ratio']:.2f}** — the most that batching the same "
                f"passes can gain on this machine with {meta['threads']} thread(s) (CPU-time ratio "
                f"{d['floor_cpu_ratio']:.2f}); reference / its floor = "
                f"{d['reference_overhead']:.2f}, suite / its floor = {d['suite_overhead']:.2f}.",
                *([f"- The measured ratio is within 25 % of the floor ratio: both loops run close to their own "
                   "passes, so the distance to the target is what batching buys for this model on this machine "
                   f"with {meta['threads']} thread(s), not time spent around the passes."]
                  if abs(r["ratio"] / d["floor_ratio"] - 1) <= 0.25 else []),
                f"- Faithfulness: occlusion queries equal to the suite's on {d['occlusion_queries_equal']}; "
                f"max pixel-Gini difference {d['max_gini_pixel_difference']}.",
                f"- Times: {_fmt_times(r['timings'])}",
                "",
            ]
        elif r["id"] == 5:
            d = r["details"]
            cfg = d["config"]
            lines += [
                f"Each size in its own subprocess (`--rss-child`), model {d['model']}, batch size {d['batch_size']}, "
                f"reduced config: INA budgets {list(cfg['ina_budgets'])}, RN budgets {list(cfg['rn_budgets'])}, "
                f"occlusion fills {list(cfg['occlusion_fill'])}, occlusion count {cfg['occlusion_count']}, "
                "other settings default; the larger set is the 1,000-image sample tiled. Peak RSS = "
                "`getrusage(RUSAGE_SELF).ru_maxrss` of the child after setup (imports, model, data) and at the end "
                "of the run, cross-checked with `VmHWM` from `/proc/self/status`. The children are started "
                "through `sh`, because Linux carries the RSS high-water mark across `exec`: a child exec'd "
                "straight from the (large) parent reports the parent's RSS as its own `ru_maxrss`.",
                "",
                "| images | peak RSS after setup (MiB) | peak RSS at end (MiB) | VmHWM at end (MiB) | uint8 images (MiB) | per-image table (MiB) | attacked | suite time (s) |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for run in r["runs"]:
                lines.append(f"| {run['images']:,} | {run['peak_rss_mb_before_suite']:.0f} | {run['peak_rss_mb']:.0f} | "
                             f"{run['vm_hwm_mb']:.0f} | "
                             f"{run['dataset_mb']:.1f} | {run['per_image_table_mb']:.1f} | {run['attacked']} | "
                             f"{run['seconds']:.0f} |")
            small, large = r["runs"]
            growth = (large["peak_rss_mb"] - large["peak_rss_mb_before_suite"]) - (
                small["peak_rss_mb"] - small["peak_rss_mb_before_suite"])
            data_growth = large["dataset_mb"] - small["dataset_mb"]
            lines += ["", f"Ratio of peak RSS {r['ratio']:.3f} (+{large['peak_rss_mb'] - small['peak_rss_mb']:.0f} MiB "
                      f"for {large['images'] / small['images']:g}× the images, of which {data_growth:.0f} MiB are the "
                      f"larger uint8 image array itself); the suite's own growth (end − after setup) differs by "
                      f"{growth:+.0f} MiB between the two sizes.", ""]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the markdown report here")
    p.add_argument("--json", type=Path, help="also write the raw measurements as JSON")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for every variant (default 1: on a small shared machine more threads "
                        "contend with other jobs and time very unevenly)")
    p.add_argument("--device", default="cpu",
                   help="where targets 1, 2 and 4 run (cpu, cuda, cuda:1, ...); targets 3 and 5 are CPU measurements")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per comparison (after a warm-up)")
    p.add_argument("--attribution-repeats", type=int, default=11,
                   help="timed rounds for target 2 (cheap, and its variants do the same work, so noise decides)")
    p.add_argument("--targets", default="1,2,3,4,5", help="comma-separated subset of targets to run")
    p.add_argument("--suite-images", type=int, default=64, help="target 1: images in the batch")
    p.add_argument("--reference-images", type=int, default=32, help="target 4: images")
    p.add_argument("--reference-attributions", default="saliency,integrated_gradients",
                   help="target 4: attribution methods to compare with (saliency: IGD's default; "
                        "integrated_gradients, 50 steps: Duan's reference scripts)")
    p.add_argument("--ig-reference-images", type=int, default=8, help="target 4 with integrated gradients: images")
    p.add_argument("--memory-sizes", default="1000,10000", help="target 5: the two dataset sizes")
    p.add_argument("--memory-preset", default="reduced", choices=sorted(MEMORY_CONFIGS))
    p.add_argument("--batch-size", type=int, default=128, help="target 5: evaluation batch size")
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rss-preset", default="reduced", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.rss_child is not None:
        print(json.dumps(rss_child(args.rss_child, args.rss_preset, args.threads, args.batch_size)))
        return 0

    started = time.perf_counter()
    command = " ".join([os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable,
                        shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])])
    info = machine()
    set_threads(args.threads)
    model, model_desc = real_model()
    model = model.to(resolve_device(args.device))
    wanted = {int(t) for t in args.targets.split(",") if t.strip()}
    config = InequalityConfig()
    results: list[dict[str, Any]] = []

    def log(r: dict[str, Any]) -> None:
        verdict = "PASS" if r["pass"] else "FAIL"
        print(f"[{time.perf_counter() - started:6.0f} s] target {r['id']}: {r['name']}: {r['ratio']:.2f} "
              f"(target {r['target']}) {verdict}", flush=True)
        for row in r.get("rows", []):
            print(f"           {row.get('method') or row.get('case')}: {row['ratio']:.2f}", flush=True)
        results.append(r)

    if 3 in wanted:
        log(target_gini(model, args.repeats))
    with full_float32(model_device(model)):  # what evaluate uses, for the reference loops and floors too
        if 2 in wanted:
            log(target_attribution(model, args.attribution_repeats, sal_images=64, ig_images=8))
        if 1 in wanted:
            log(target_suite_vs_floor(model, args.suite_images, args.repeats, config))
        if 4 in wanted:
            for method in args.reference_attributions.split(","):
                images = args.reference_images if method == "saliency" else args.ig_reference_images
                log(target_per_image(model, images, args.repeats, replace(config, attribution=method)))
    if 5 in wanted:
        sizes = tuple(int(s) for s in args.memory_sizes.split(","))
        assert len(sizes) == 2, "--memory-sizes takes two sizes"
        log(target_memory(sizes, args.memory_preset, args.threads, args.batch_size))
    results.sort(key=lambda r: r["id"])

    meta = {"command": command, "machine": info, "device": str(model_device(model)), "threads": args.threads,
            "repeats": args.repeats,
            "attribution_repeats": args.attribution_repeats,
            "model": model_desc, "elapsed_s": time.perf_counter() - started}
    report = render(results, meta)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
