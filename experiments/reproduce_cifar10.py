#!/usr/bin/env python
"""Reproduce the papers' CIFAR-10 claims with robench: train, evaluate, compare, leaderboard.

    .venv/bin/python experiments/reproduce_cifar10.py --preset cpu --data-dir ../shared/data \
        --out reports/reproduction/cifar10

Trains a standard model, PGD-AT models at ε = 2, 4, 8/255, PGD-AT + IGD at λ = 1, 2 (teacher: the
standard model), TRADES and TRADES + IGD, all the same architecture; evaluates each with the
inequality, adversarial (PGD-10 and AutoAttack at 8/255) and noise-corruption suites on the same
test images; then writes the comparison report and adds every model to the leaderboard.

Resumable: a finished checkpoint or evaluation is kept, an interrupted one continues
(`robench train --resume`, `robench evaluate` resumes by itself); run the same command again.
`--stage report` only rewrites the comparison report and the leaderboard rows; `--stage verify`
re-runs the evaluation of the checkpoints in OUT/models into OUT/verify/ and checks that it
reproduces the committed results.csv and per_image.csv byte for byte (exit status 1 if not).
Presets: `cpu` (a 73 k-parameter CNN sized for a 2-core CPU in about two hours), `fast` (the
`cifar10-fast` training recipe on all 50,000 images, two seeds for PGD-AT ε = 8 and IGD λ = 1:
many CPU hours, run it stage by stage with `--only`), `reference`
(the papers' CIFAR ResNet-18 recipe, for a GPU), `smoke` (seconds, on any small `--data npz:PATH`; used by the tests).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from claims_cifar10 import ORDER, write_claims  # beside this script

EPS = {2: 2 / 255, 4: 4 / 255, 8: 8 / 255}


@dataclass(frozen=True)
class StudyPreset:
    """Training and evaluation settings shared by every model of the study."""

    common: tuple[str, ...]  # robench train options for every model
    standard: tuple[str, ...]  # extra options for the standard model (the IGD teacher)
    adversarial: tuple[str, ...]  # extra options for every adversarially trained model
    evaluate: tuple[str, ...]  # robench evaluate options
    autoattack: tuple[str, ...] = ()  # robench evaluate options of the AutoAttack run (empty: none)
    attack_steps: int = 10  # PGD steps of the training adversary (step size step_factor · ε / steps)
    step_factor: float = 2.5  # 2.5 for PGD (Madry), 1.25 for FGSM-RS (Wong et al.), 1 for N-FGSM (de Jorge et al.)
    models: tuple[str, ...] = ("standard", "pgd-at-eps8", "igd-lam1", "igd-lam2", "pgd-at-eps4", "pgd-at-eps2",
                               "trades", "trades-igd")
    autoattack_models: tuple[str, ...] = ("pgd-at-eps8", "igd-lam1")
    jpeg: tuple[str, ...] = ()  # robench evaluate options of a second evaluation on the dataset (empty: none)


EVAL_SUITES = ("--suite", "inequality,adversarial,corruptions", "--eps", "8/255", "--pgd-steps", "10",
               "--corruptions", "noise")

PRESETS: dict[str, StudyPreset] = {
    "cpu": StudyPreset(
        common=("--arch", "cnn_small", "--batch-size", "128", "--lr", "0.1",
                "--schedule", "cosine", "--eval-limit", "500"),
        standard=("--epochs", "10"),
        adversarial=("--epochs", "6", "--train-limit", "10000"),
        attack_steps=5,
        evaluate=("--split", "test", "--limit", "1000", "--seed", "0", *EVAL_SUITES),
        # AutoAttack costs ~2,000 forward passes per image on these models (reports/benchmarks/scaling.md):
        # on this CPU it runs on 100 of the 1,000 images, for the ε = 8/255 adversarially trained models
        autoattack=("--split", "test", "--limit", "100", "--seed", "0", "--suite", "adversarial", "--eps", "8/255",
                    "--pgd-steps", "10", "--autoattack"),
    ),
    # The fast recipe (docs/training.md): every model trained on all 50,000 images; evaluated on the 1,000
    # lossless sample images (all suites; AutoAttack on 500 for the ε = 8/255 models) and on the 10,000 JPEG
    # test images (clean, PGD-10, noise corruptions). Second seeds of PGD-AT ε = 8 and IGD λ = 1 give the spread.
    "fast": StudyPreset(
        common=("--preset", "cifar10-fast"),
        standard=(),
        adversarial=(),
        attack_steps=1,
        step_factor=1.0,  # N-FGSM: one step of ε (the preset's inner attack)
        evaluate=("--data", "sample", "--seed", "0", *EVAL_SUITES),
        autoattack=("--data", "sample", "--limit", "500", "--seed", "0", "--suite", "adversarial", "--eps", "8/255",
                    "--pgd-steps", "10", "--autoattack"),
        jpeg=("--split", "test", "--seed", "0", "--suite", "adversarial,corruptions", "--eps", "8/255",
              "--pgd-steps", "10", "--corruptions", "noise"),
        models=("standard", "pgd-at-eps8", "igd-lam1", "pgd-at-eps2", "pgd-at-eps4", "pgd-at-eps8-seed1",
                "igd-lam1-seed1", "igd-lam2", "trades", "trades-igd"),
        autoattack_models=("pgd-at-eps8", "pgd-at-eps8-seed1", "igd-lam1", "igd-lam1-seed1", "igd-lam2", "trades",
                           "trades-igd"),
    ),
    "reference": StudyPreset(  # methods.md §8: the papers' ResNet-18 recipe (GPU)
        common=("--preset", "cifar10-reference"),
        standard=("--epochs", "100"),
        adversarial=("--epochs", "100"),
        evaluate=("--split", "test", "--seed", "0", *EVAL_SUITES, "--autoattack"),  # AutoAttack on all 10,000
    ),
    "smoke": StudyPreset(
        common=("--arch", "cnn_tiny", "--batch-size", "64", "--eval-limit", "64"),
        standard=("--epochs", "1", "--train-limit", "128"),
        adversarial=("--epochs", "1", "--train-limit", "128", "--eval-pgd-steps", "1"),
        attack_steps=2,
        evaluate=("--limit", "32", "--seed", "0", "--batch-size", "16",
                  "--suite", "inequality,adversarial", "--eps", "8/255", "--pgd-steps", "2",
                  "--ina-budgets", "0.01", "--rn-budgets", "0.01", "--occlusion-fill", "0.5",
                  "--occlusion-count", "2", "--occlusion-radius", "1"),
        models=("standard", "igd-lam1"),
    ),
}


def method_options(name: str, preset: StudyPreset, models: Path) -> list[str]:
    """The `robench train` options that make model ``name`` (e.g. ``pgd-at-eps4``, ``igd-lam2``, ``igd-lam1-seed1``).

    A ``-seedN`` suffix trains the same model from seed N (default 0); the IGD teacher stays the seed-0 standard model.
    """
    name, _, seed = name.partition("-seed")
    seeding = ["--seed", seed or "0"]
    if name == "standard":
        return ["--method", "standard", *preset.standard, *seeding]
    eps = EPS[int(name.split("-eps")[1])] if "-eps" in name else EPS[8]
    attack = ["--eps", f"{eps:.8f}", "--attack-steps", str(preset.attack_steps),
              "--step-size", f"{preset.step_factor * eps / preset.attack_steps:.8f}", *preset.adversarial, *seeding]
    teacher = ["--teacher", str(models / "standard.pt")]
    if name.startswith("pgd-at"):
        return ["--method", "pgd-at", *attack]
    if name.startswith("igd-lam"):
        return ["--method", "igd", "--lam", name.removeprefix("igd-lam"), *teacher, *attack]
    if name == "trades":
        return ["--method", "trades", "--beta", "6", *attack]
    if name == "trades-igd":
        return ["--method", "trades-igd", "--beta", "6", "--lam", "1", *teacher, *attack]
    raise SystemExit(f"unknown study model {name!r}")


def robench(args: list[str], log: list[dict]) -> None:
    """Run `robench ARGS` in a subprocess, recording the command and its wall time in ``log``."""
    start = time.time()
    print("$ robench " + shlex.join(args), flush=True)
    subprocess.run([sys.executable, "-m", "robench.cli", *args], check=True)
    log.append({"command": "robench " + shlex.join(args), "seconds": round(time.time() - start, 1)})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--out", type=Path, default=Path("reports/reproduction/cifar10"))
    p.add_argument("--data", default="cifar10", help="Dataset spec for training (train split) and evaluation (test split).")
    p.add_argument("--data-dir", default=None, help="Where the CIFAR-10 data is (default $ROBENCH_DATA).")
    p.add_argument("--stage", choices=("all", "train", "report", "verify"), default="all",
                   help="all: train, evaluate, report; train: only train; report: only the report and leaderboard; "
                        "verify: re-evaluate the checkpoints and compare with the committed results.")
    p.add_argument("--leaderboard", default="reports/leaderboard.csv", help="Leaderboard CSV the models are added to.")
    p.add_argument("--only", default=None, help="Comma-separated subset of the study's models.")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    preset = PRESETS[args.preset]
    names = args.only.split(",") if args.only else list(preset.models)
    models, runs = args.out / "models", args.out / "runs"
    models.mkdir(parents=True, exist_ok=True)
    data_dir = ["--data", args.data, *(["--data-dir", args.data_dir] if args.data_dir else [])]
    log_path = args.out / "commands.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    try:
        for name in names if args.stage in ("all", "train") else []:  # each model: train, then evaluate
            ckpt = models / f"{name}.pt"
            state = Path(f"{ckpt}.state.pt")
            if not ckpt.exists() or state.exists():
                robench(["train", *preset.common, *method_options(name, preset, models), *data_dir, "--name", name,
                         "--device", args.device, "--out", str(ckpt), *(["--resume"] if state.exists() else [])], log)
            if args.stage == "train":
                continue
            for run, options in evaluations(name, preset, runs):
                if not (run / "meta.json").exists():
                    robench(["evaluate", "--model", str(ckpt), *options, *dataset(options, data_dir), "--device",
                             args.device, "--out", str(run)], log)
        if args.stage in ("all", "report"):
            done = [n for n in ORDER if n in preset.models and (runs / n / "meta.json").exists()]  # reading order
            robench(["compare", *(str(runs / n) for n in done), "--out", str(args.out / "report"),
                     "--title", f"robench reproduction study, CIFAR-10, preset {args.preset}"], log)
            attacked = [runs / f"{n}-autoattack" for n in preset.models if (runs / f"{n}-autoattack" / "meta.json").exists()]
            if attacked:
                robench(["compare", *map(str, attacked), "--out", str(args.out / "report-autoattack"), "--no-examples",
                         "--title", f"AutoAttack subset of the reproduction study, preset {args.preset}"], log)
            for name in done:
                robench(["leaderboard", "add", str(runs / name), "--name", f"repro-{args.preset}/{name}",
                         "--file", args.leaderboard], log)
            print(f"claims: {write_claims(args.out)}")
    finally:
        if args.stage != "verify":
            log_path.write_text(json.dumps(log, indent=1) + "\n")
    return verify(names, preset, models, runs, args.out / "verify", data_dir, args.device) if args.stage == "verify" else 0


def evaluations(name: str, preset: StudyPreset, runs: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """(run directory, robench evaluate options) of every evaluation of model ``name``."""
    out = [(runs / name, preset.evaluate)]
    if preset.autoattack and name in preset.autoattack_models:
        out.append((runs / f"{name}-autoattack", preset.autoattack))
    if preset.jpeg:
        out.append((runs / f"{name}-jpeg", preset.jpeg))
    return out


def dataset(options: tuple[str, ...], data_dir: list[str]) -> list[str]:
    """The study's dataset options, unless the evaluation names its own ``--data`` (the bundled sample)."""
    return [] if "--data" in options else data_dir


def verify(names: list[str], preset: StudyPreset, models: Path, runs: Path, scratch: Path, data_dir: list[str],
           device: str) -> int:
    """Re-evaluate each checkpoint into ``scratch`` and compare the result files with ``runs`` byte for byte."""
    differ = []
    for name in names:
        if not (runs / name / "meta.json").exists():
            print(f"{name}: not evaluated yet, skipped", flush=True)
            continue
        for run, options in evaluations(name, preset, runs):
            again = scratch / run.name
            shutil.rmtree(again, ignore_errors=True)
            robench(["evaluate", "--model", str(models / f"{name}.pt"), *options, *dataset(options, data_dir),
                     "--device", device, "--out", str(again)], [])
            for file in ("results.csv", "per_image.csv"):
                same = (again / file).read_bytes() == (run / file).read_bytes()
                print(f"{run.name}/{file}: {'identical' if same else 'DIFFERS'}", flush=True)
                if not same:
                    differ.append(f"{run.name}/{file}")
    print("verify: " + ("every result file reproduced byte for byte" if not differ else f"differ: {', '.join(differ)}"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
