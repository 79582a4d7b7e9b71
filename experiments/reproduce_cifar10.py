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
Every step is a call of the Python API (``robench.train``, ``robench.evaluate``, ``robench.compare``,
``robench.leaderboard.add_run``); ``OUT/commands.json`` records each as its equivalent ``robench``
command line, with its wall time.
`--stage report` only rewrites the comparison report and the leaderboard rows; `--stage verify`
re-runs the evaluation of the checkpoints in OUT/models into OUT/verify/ and checks that it
reproduces the committed results.csv and per_image.csv.gz byte for byte (exit status 1 if not).
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
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claims_cifar10 import ORDER, write_claims  # beside this script

import robench
from robench.io import gzip_bytes
from robench.options import flag
from robench.reports.runs import LEGACY_PER_IMAGE_FILE, PER_IMAGE_FILE

EPS = {2: 2 / 255, 4: 4 / 255, 8: 8 / 255}
Options = dict[str, Any]


@dataclass(frozen=True)
class StudyPreset:
    """Training and evaluation settings shared by every model of the study, as Python API keywords.

    ``common``/``standard``/``adversarial``: :func:`robench.train` keywords (TrainConfig fields, ``preset``);
    ``evaluate``/``autoattack``/``jpeg``: :func:`robench.evaluate` keywords (``suites``, ``limit``, ``seed``, the
    suites' settings; ``data`` for an evaluation on its own images, ``split`` for the study's dataset).
    """

    common: Options  # for every model
    standard: Options  # extra for the standard model (the IGD teacher)
    adversarial: Options  # extra for every adversarially trained model
    evaluate: Options
    autoattack: Options = field(default_factory=dict)  # the AutoAttack evaluation (empty: none)
    attack_steps: int = 10  # PGD steps of the training adversary (step size step_factor · ε / steps)
    step_factor: float = 2.5  # 2.5 for PGD (Madry), 1.25 for FGSM-RS (Wong et al.), 1 for N-FGSM (de Jorge et al.)
    # TRADES crafts its examples with its own KL attack (PGD on the KL divergence): its steps, each of ε / steps
    # (None: attack_steps, step_factor · ε / steps as above)
    trades_steps: int | None = None
    lam_warmup_above_1: float = 0.0  # IGD with λ > 1: --lam-warmup (λ = 1 trains without it)
    models: tuple[str, ...] = ("standard", "pgd-at-eps8", "igd-lam1", "igd-lam2", "pgd-at-eps4", "pgd-at-eps2",
                               "trades", "trades-igd")
    autoattack_models: tuple[str, ...] = ("pgd-at-eps8", "igd-lam1")
    jpeg: Options = field(default_factory=dict)  # a second evaluation on the study's dataset (empty: none)


EVAL_SUITES: Options = {"suites": "inequality,adversarial,corruptions", "eps": "8/255", "pgd_steps": 10,
                        "corruptions": "noise"}

PRESETS: dict[str, StudyPreset] = {
    "cpu": StudyPreset(
        common={"arch": "cnn_small", "batch_size": 128, "lr": 0.1, "schedule": "cosine", "eval_limit": 500},
        standard={"epochs": 10},
        adversarial={"epochs": 6, "train_limit": 10000},
        attack_steps=5,
        evaluate={"split": "test", "limit": 1000, "seed": 0, **EVAL_SUITES},
        # AutoAttack costs ~2,000 forward passes per image on these models (reports/benchmarks/scaling.md):
        # on this CPU it runs on 100 of the 1,000 images, for the ε = 8/255 adversarially trained models
        autoattack={"split": "test", "limit": 100, "seed": 0, "suites": "adversarial", "eps": "8/255", "pgd_steps": 10,
                    "autoattack": True},
    ),
    # The fast recipe (docs/training.md): every model trained on all 50,000 images; evaluated on the 1,000
    # lossless sample images (all suites; AutoAttack on 500 for the ε = 8/255 models) and on the 10,000 JPEG
    # test images (clean, PGD-10, noise corruptions). Second seeds of PGD-AT ε = 8 and IGD λ = 1 give the spread.
    "fast": StudyPreset(
        common={"preset": "cifar10-fast"},
        standard={},
        adversarial={},
        attack_steps=1,
        step_factor=1.0,  # N-FGSM: one step of ε (the preset's inner attack)
        lam_warmup_above_1=0.25,  # igd-lam2 collapsed without it (failed/); the length of the learning-rate warm-up
        trades_steps=2,  # TRADES' KL attack: two steps of ε/2 (GradAlign's PGD-2 setting), guarded by the PGD-10 check
        evaluate={"data": "sample", "seed": 0, **EVAL_SUITES},
        autoattack={"data": "sample", "limit": 500, "seed": 0, "suites": "adversarial", "eps": "8/255",
                    "pgd_steps": 10, "autoattack": True},
        jpeg={"split": "test", "seed": 0, "suites": "adversarial,corruptions", "eps": "8/255", "pgd_steps": 10,
              "corruptions": "noise"},
        models=("standard", "pgd-at-eps8", "igd-lam1", "pgd-at-eps2", "pgd-at-eps4", "pgd-at-eps8-seed1",
                "igd-lam1-seed1", "igd-lam2", "trades", "trades-igd"),
        autoattack_models=("pgd-at-eps8", "pgd-at-eps8-seed1", "igd-lam1", "igd-lam1-seed1", "igd-lam2", "trades",
                           "trades-igd"),
    ),
    "reference": StudyPreset(  # docs/training.md, cifar10-reference: the papers' ResNet-18 recipe (GPU)
        common={"preset": "cifar10-reference"},
        standard={"epochs": 100},
        adversarial={"epochs": 100},
        evaluate={"split": "test", "seed": 0, **EVAL_SUITES, "autoattack": True},  # AutoAttack on all 10,000
    ),
    "smoke": StudyPreset(
        common={"arch": "cnn_tiny", "batch_size": 64, "eval_limit": 64},
        standard={"epochs": 1, "train_limit": 128},
        adversarial={"epochs": 1, "train_limit": 128, "eval_pgd_steps": 1},
        attack_steps=2,
        evaluate={"limit": 32, "seed": 0, "batch_size": 16, "suites": "inequality,adversarial", "eps": "8/255",
                  "pgd_steps": 2, "ina_budgets": "0.01", "rn_budgets": "0.01", "occlusion_fill": "0.5",
                  "occlusion_count": 2, "occlusion_radius": 1},
        models=("standard", "igd-lam1"),
    ),
}


def method_options(name: str, preset: StudyPreset, models: Path) -> Options:
    """The :func:`robench.train` keywords that make model ``name`` (e.g. ``pgd-at-eps4``, ``igd-lam2``, ``igd-lam1-seed1``).

    A ``-seedN`` suffix trains the same model from seed N (default 0); the IGD teacher stays the seed-0 standard model.
    """
    name, _, seed = name.partition("-seed")
    seeding = {"seed": int(seed or 0)}
    if name == "standard":
        return {"method": "standard", **preset.standard, **seeding}
    eps = EPS[int(name.split("-eps")[1])] if "-eps" in name else EPS[8]
    attack = {"eps": round(eps, 8), "attack_steps": preset.attack_steps,
              "step_size": round(preset.step_factor * eps / preset.attack_steps, 8), **preset.adversarial, **seeding}
    teacher = {"teacher": str(models / "standard.pt")}
    if name.startswith("trades") and preset.trades_steps:
        attack |= {"inner_attack": "pgd", "attack_steps": preset.trades_steps,
                   "step_size": round(eps / preset.trades_steps, 8)}
    if name.startswith("pgd-at"):
        return {"method": "pgd-at", **attack}
    if name.startswith("igd-lam"):
        lam = float(name.removeprefix("igd-lam"))
        warmup = {"lam_warmup": preset.lam_warmup_above_1} if lam > 1 and preset.lam_warmup_above_1 else {}
        return {"method": "igd", "lam": lam, **warmup, **teacher, **attack}
    if name == "trades":
        return {"method": "trades", "beta": 6.0, **attack}
    if name == "trades-igd":
        return {"method": "trades-igd", "beta": 6.0, "lam": 1.0, **teacher, **attack}
    raise SystemExit(f"unknown study model {name!r}")


def command_line(command: str, options: Options, positional: tuple[str, ...] = ()) -> str:
    """The ``robench COMMAND`` line equivalent to an API call with ``options`` (one name per setting)."""
    words = ["robench", *command.split(), *positional]
    for key, value in options.items():
        if key == "suites":
            key = "suite"
        if isinstance(value, bool):
            words.append(flag(key) if value else flag(f"no_{key}"))
        elif value is not None:
            words += [flag(key), ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return shlex.join(words)


def logged(log: list[dict], command: str, options: Options, call: Callable[[], Any],
           positional: tuple[str, ...] = ()) -> Any:
    """Run ``call`` (a Python API call), recording its command-line equivalent and wall time in ``log``."""
    start = time.time()
    line = command_line(command, options, positional)
    print(f"$ {line}", flush=True)
    result = call()
    log.append({"command": line, "seconds": round(time.time() - start, 1)})
    return result


def train(name: str, preset: StudyPreset, models: Path, study_data: Options, device: str, log: list[dict]) -> None:
    """Train model ``name`` into MODELS/NAME.pt, resuming an interrupted run."""
    ckpt = models / f"{name}.pt"
    state = Path(f"{ckpt}.state.pt")
    options = {**preset.common, **method_options(name, preset, models), **study_data, "name": name, "device": device,
               "out": str(ckpt), **({"resume": True} if state.exists() else {})}
    logged(log, "train", options, lambda: robench.train(**options))


def evaluate(ckpt: Path, options: Options, study_data: Options, device: str, run: Path, log: list[dict] | None) -> None:
    """Evaluate ``ckpt`` with the evaluation ``options`` into ``run`` (on the study's dataset unless they name one)."""
    given = {"model": str(ckpt), **options, **({} if "data" in options else study_data), "device": device,
             "out": str(run)}
    call = dict(given)
    model, data, suites = call.pop("model"), call.pop("data"), call.pop("suites")
    data_options = {k: call.pop(k) for k in ("split", "data_dir") if k in call}
    run_it = lambda: robench.evaluate(model, data, suites, data_options=data_options, **call)  # noqa: E731
    if log is None:
        print(f"$ {command_line('evaluate', given)}", flush=True)
        run_it()
    else:
        logged(log, "evaluate", given, run_it)


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
    p.add_argument("--evaluations", default="sample,autoattack,jpeg",
                   help="Which evaluations to run (comma-separated): sample (the main one), autoattack, jpeg; "
                        "the others are left for a later run of the same command.")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    wanted = set(args.evaluations.split(","))
    if not wanted <= set(KINDS):
        raise SystemExit(f"--evaluations takes {', '.join(KINDS)}; got {args.evaluations!r}")
    preset = PRESETS[args.preset]
    names = args.only.split(",") if args.only else list(preset.models)
    models, runs = args.out / "models", args.out / "runs"
    models.mkdir(parents=True, exist_ok=True)
    study_data = {"data": args.data, **({"data_dir": args.data_dir} if args.data_dir else {})}
    log_path = args.out / "commands.json"
    log: list[dict] = []  # this invocation's calls, appended to the file's at the end (another invocation may run)
    try:
        for name in names if args.stage in ("all", "train") else []:  # each model: train, then evaluate
            ckpt = models / f"{name}.pt"
            if not ckpt.exists() or Path(f"{ckpt}.state.pt").exists():
                train(name, preset, models, study_data, args.device, log)
            if args.stage == "train":
                continue
            for run, options in evaluations(name, preset, runs, wanted):
                if not (run / "meta.json").exists():
                    evaluate(ckpt, options, study_data, args.device, run, log)
        if args.stage in ("all", "report"):
            report(args, preset, runs, log)
    finally:
        if args.stage != "verify" and log:
            earlier = json.loads(log_path.read_text()) if log_path.exists() else []
            log_path.write_text(json.dumps(earlier + log, indent=1) + "\n")
    return verify(names, preset, models, runs, args.out / "verify", study_data, args.device) if args.stage == "verify" else 0


def report(args: argparse.Namespace, preset: StudyPreset, runs: Path, log: list[dict]) -> None:
    """The comparison reports, the leaderboard rows and CLAIMS.md from the finished evaluations."""
    done = [n for n in ORDER if n in preset.models and (runs / n / "meta.json").exists()]  # reading order
    title = f"robench reproduction study, CIFAR-10, preset {args.preset}"
    dirs = tuple(str(runs / n) for n in done)
    logged(log, "compare", {"out": str(args.out / "report"), "title": title},
           lambda: robench.compare(dirs, out=args.out / "report", title=title), dirs)
    attacked = tuple(str(runs / f"{n}-autoattack") for n in preset.models
                     if (runs / f"{n}-autoattack" / "meta.json").exists())
    if attacked:
        title_aa = f"AutoAttack subset of the reproduction study, preset {args.preset}"
        logged(log, "compare", {"out": str(args.out / "report-autoattack"), "examples": False, "title": title_aa},
               lambda: robench.compare(attacked, out=args.out / "report-autoattack", title=title_aa, examples=False),
               attacked)
    for name in done:
        row = f"repro-{args.preset}/{name}"
        messages = logged(log, "leaderboard add", {"name": row, "file": args.leaderboard},
                          lambda n=name, r=row: robench.leaderboard.add_run(runs / n, name=r, path=args.leaderboard),
                          (str(runs / name),))
        print("\n".join(messages), flush=True)
    print(f"claims: {write_claims(args.out)}")


KINDS = ("sample", "autoattack", "jpeg")


def evaluations(name: str, preset: StudyPreset, runs: Path, kinds: Collection[str] = KINDS) -> list[tuple[Path, Options]]:
    """(run directory, evaluation options) of every evaluation of model ``name`` (of the ``kinds`` given)."""
    out = [(runs / name, preset.evaluate)] if "sample" in kinds else []
    if preset.autoattack and name in preset.autoattack_models and "autoattack" in kinds:
        out.append((runs / f"{name}-autoattack", preset.autoattack))
    if preset.jpeg and "jpeg" in kinds:
        out.append((runs / f"{name}-jpeg", preset.jpeg))
    return out


def committed_bytes(run: Path, file: str) -> bytes:
    """The bytes of ``run``'s result ``file`` as robench writes it now: a committed plain per_image.csv (a run
    written before the table was compressed) is compressed the way robench compresses it."""
    if file == PER_IMAGE_FILE and not (run / file).exists() and (run / LEGACY_PER_IMAGE_FILE).exists():
        return gzip_bytes((run / LEGACY_PER_IMAGE_FILE).read_bytes())
    return (run / file).read_bytes()


def verify(names: list[str], preset: StudyPreset, models: Path, runs: Path, scratch: Path, study_data: Options,
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
            evaluate(models / f"{name}.pt", options, study_data, device, again, None)
            for file in ("results.csv", PER_IMAGE_FILE):
                same = (again / file).read_bytes() == committed_bytes(run, file)
                print(f"{run.name}/{file}: {'identical' if same else 'DIFFERS'}", flush=True)
                if not same:
                    differ.append(f"{run.name}/{file}")
    print("verify: " + ("every result file reproduced byte for byte" if not differ else f"differ: {', '.join(differ)}"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
