#!/usr/bin/env python
"""Measurements behind docs/scaling.md: passes per image, time per pass, corruption cost, throughput.

    .venv/bin/python benchmarks/bench_scaling.py --out reports/benchmarks/scaling.md

1. **Passes per image** of each suite, counted (forward and backward image-passes through the
   network) while robench's own runner evaluates `zoo:pgd-at` on 200 bundled images with the
   default settings — a robust model, so the attacks do their typical amount of work.
2. **robench's throughput** on this machine for those runs (images/s, cnn_small, 32 px).
3. **Time per pass** of a ResNet-50 (timm, random weights) at 224 px on this CPU: forward, and
   forward + backward, per image in batches of 16.
4. **Corruption generation** at 224 px: CPU seconds per image for each imagecorruptions-imaug
   corruption (severity 3) and for robench's torch noise family.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import machine, publish, set_threads, synchronizer

from robench.data import load_dataset
from robench.models.loading import load_model
from robench.runner import evaluate
from robench.suites import make_suites


class PassCounter:
    """Counts forward and backward image-passes through a module (hooks, batch rows)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.forward = self.backward = 0
        module.register_forward_hook(self._on_forward)
        module.register_full_backward_hook(self._on_backward)

    def _on_forward(self, module, inputs, output) -> None:  # type: ignore[no-untyped-def]
        self.forward += int(inputs[0].shape[0])

    def _on_backward(self, module, grad_input, grad_output) -> None:  # type: ignore[no-untyped-def]
        self.backward += int(grad_output[0].shape[0])


def count_passes(n_images: int) -> list[dict[str, float]]:
    data = load_dataset("sample", limit=n_images)
    rows = []
    for suite, options in (("clean", {}), ("inequality", {}), ("adversarial", {}),
                           ("adversarial", {"autoattack": True}), ("corruptions", {"corruptions": "all"})):
        model = load_model("zoo:pgd-at")
        counter = PassCounter(model.net)
        suite_options = {}
        if suite == "adversarial":
            from robench.suites import AdversarialConfig

            suite_options = {"adversarial": {"config": AdversarialConfig(**options)}}
        if suite == "corruptions":
            from robench.suites import CorruptionsConfig

            suite_options = {"corruptions": {"config": CorruptionsConfig(**options)}}
        suites = make_suites(suite, seed=0, suite_options=suite_options)
        start = time.perf_counter()
        evaluate(model, data, suites, out_dir=None, seed=0, batch_size=100)
        wall = time.perf_counter() - start
        label = suite + (" + AutoAttack" if options.get("autoattack") else "")
        rows.append({"suite": label, "forward": counter.forward / n_images, "backward": counter.backward / n_images,
                     "images_per_s": n_images / wall})
    return rows


def resnet50_pass_times(batch: int = 16, repeats: int = 3, device: str = "cpu") -> dict[str, float]:
    """Median seconds per image of a ResNet-50 (timm, random weights, float32) at 224 px on ``device``:
    forward under no_grad, and forward + backward to the input; the first round is a warm-up."""
    import timm

    net = timm.create_model("resnet50", pretrained=False).eval().to(device)
    x = torch.rand(batch, 3, 224, 224, device=device)
    sync = synchronizer(device)
    times: dict[str, list[float]] = {"forward": [], "forward_backward": []}
    for _ in range(repeats + 1):
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            net(x)
        sync()
        t1 = time.perf_counter()
        xg = x.clone().requires_grad_(True)
        net(xg)[:, 0].sum().backward()
        sync()
        t2 = time.perf_counter()
        times["forward"].append((t1 - t0) / batch)
        times["forward_backward"].append((t2 - t1) / batch)
    return {k: float(np.median(v[1:])) for k, v in times.items()}


def corruption_times(n_images: int = 2) -> dict[str, float]:
    from imagecorruptions import get_corruption_names

    from robench.corruptions.library import corrupt_images
    from robench.corruptions.noise import torch_corrupt

    data = load_dataset("sample", limit=n_images)
    big = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(data.images)).permute(0, 3, 1, 2).float(),
                                          size=(224, 224), mode="bilinear").round().clamp(0, 255).byte()
    images = big.permute(0, 2, 3, 1).numpy()
    out = {}
    for name in get_corruption_names("all"):
        c0 = time.process_time()
        corrupt_images(images, name, 3, seed=0)
        out[name] = (time.process_time() - c0) / n_images
    x = big.float() / 255
    for name in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"):
        # untimed first call: it compiles the CPU sampler (about 1 s, once per process) and builds the table
        torch_corrupt(x, name, 3, table="imagenet-c", generator=torch.Generator().manual_seed(0))
        c0 = time.process_time()
        torch_corrupt(x, name, 3, table="imagenet-c", generator=torch.Generator().manual_seed(0))
        out[f"torch {name}"] = (time.process_time() - c0) / n_images
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path)
    p.add_argument("--pass-times-on", metavar="DEVICE",
                   help="only measure the ResNet-50 pass times, on this device (e.g. cuda), with --batch")
    p.add_argument("--batch", type=int, default=128, help="batch size for --pass-times-on")
    args = p.parse_args()
    set_threads(args.threads)
    m = machine()
    if args.pass_times_on:
        return publish_pass_times(args.pass_times_on, args.batch, m, args.out)
    passes = count_passes(args.images)
    rn50 = resnet50_pass_times()
    corr = corruption_times()
    lines = ["# Scaling measurements", "",
             f"`.venv/bin/python benchmarks/bench_scaling.py --images {args.images} --threads {args.threads}` on "
             f"{m['cpu']} ({m['nproc']} cores, {args.threads} torch threads), torch {m['torch']}, {m['date']}, "
             f"load average {m['loadavg']} (the machine was shared with a training job: wall times are upper bounds).",
             "", "## Passes per image (zoo:pgd-at, default settings, counted by hooks on the network)", "",
             "| suite | forward image-passes | backward image-passes | robench throughput, cnn_small 32 px (images/s) |",
             "|---|---|---|---|"]
    lines += [f"| {r['suite']} | {r['forward']:.1f} | {r['backward']:.1f} | {r['images_per_s']:.1f} |" for r in passes]
    lines += ["", "## ResNet-50 at 224 px on this CPU (timm, random weights, batch 16)", "",
              f"- forward: {rn50['forward'] * 1000:.0f} ms per image",
              f"- forward + backward (input gradient): {rn50['forward_backward'] * 1000:.0f} ms per image",
              "", "## Corruption generation at 224 px (CPU seconds per image, severity 3)", "",
              "| corruption | s / image |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in corr.items()]
    lines += ["", f"Sum over the 19 library corruptions: {sum(v for k, v in corr.items() if not k.startswith('torch')):.2f} "
              "s per image per severity."]
    publish("\n".join(lines) + "\n", args.out)
    return 0


def publish_pass_times(device: str, batch: int, m: dict[str, str], out: Path | None) -> int:
    """The ResNet-50 pass times alone on ``device`` (a GPU's section of docs/scaling.md)."""
    rn50 = resnet50_pass_times(batch=batch, repeats=5, device=device)
    where = m["gpu"] if device.startswith("cuda") else f"{m['cpu']} ({m['nproc']} cores)"
    lines = [f"# ResNet-50 pass times on {where}", "",
             f"`python benchmarks/bench_scaling.py --pass-times-on {device} --batch {batch}`, torch {m['torch']}, "
             f"{m['date']}.", "",
             f"timm `resnet50`, random weights, float32, 224 px, batch {batch}, median of 5 rounds after a warm-up "
             "(each round ends with a device synchronisation).", "",
             f"- forward: {rn50['forward'] * 1000:.3f} ms per image ({1 / rn50['forward']:.0f} images/s)",
             f"- forward + backward (input gradient): {rn50['forward_backward'] * 1000:.3f} ms per image "
             f"({1 / rn50['forward_backward']:.0f} images/s)", ""]
    publish("\n".join(lines), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
