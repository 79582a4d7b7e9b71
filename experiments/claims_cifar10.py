#!/usr/bin/env python
"""The reproduction study's claims table: robench's numbers beside the papers', with a verdict each.

    .venv/bin/python experiments/claims_cifar10.py --out reports/reproduction/cifar10

Reads the evaluated runs in OUT/runs (written by reproduce_cifar10.py), compares all of them on
the images every model classifies correctly (robench.reports.compare), and writes OUT/CLAIMS.md.
Every number is read from the runs' result files; every verdict is computed, not typed.

    .venv/bin/python experiments/claims_cifar10.py --out reports/reproduction/cifar10-fast \
        --beside reports/reproduction/cifar10

also writes OUT/VERDICTS.md: each study's verdicts (read back from its CLAIMS.md) side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from robench.io import write_atomic
from robench.reports.compare import comparison_table
from robench.reports.runs import Run, load_run

ORDER = ("standard", "pgd-at-eps2", "pgd-at-eps4", "pgd-at-eps8", "igd-lam1", "igd-lam2", "trades", "trades-igd",
         "pgd-at-eps8-seed1", "igd-lam1-seed1")
CLAIM_MODELS = ORDER[:8]  # the claims concern these (all in the common set); the seed twins join them below
#: Second-seed twins: when present, they join the common set and give each IGD-vs-PGD-AT measure its seed spread.
SEED_TWINS = {"pgd-at-eps8": "pgd-at-eps8-seed1", "igd-lam1": "igd-lam1-seed1"}
PAPER_GINI = {"standard": "0.58", "pgd-at-eps2": "0.67", "pgd-at-eps4": "0.69", "pgd-at-eps8": "0.73"}
IGD_HEADLINE = {"inductive_noise": 60, "inductive_occlusion": 16, "random_noise": 50, "noise_corruption": 21}


def _value(table: pd.DataFrame, scope: str, test: str, param: str, model: str) -> float:
    rows = table[(table["scope"] == scope) & (table["test"] == test) & (table["param"] == param)]
    return float(rows[model].iloc[0]) if len(rows) and model in rows else float("nan")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ratio(x: float) -> str:
    return "∞ (no image fooled by random noise)" if x == float("inf") else f"{x:.2f}"


def _verdict(ok: bool) -> str:
    return "**holds**" if ok else "**does not hold**"


def write_claims(out: Path) -> Path:
    """Compute the claims from OUT/runs and write OUT/CLAIMS.md; returns its path."""
    runs: dict[str, Run] = {n: load_run(out / "runs" / n) for n in (*CLAIM_MODELS, *SEED_TWINS.values())
                            if (out / "runs" / n / "meta.json").exists()}
    names = list(runs)
    table = comparison_table(list(runs.values()))
    n_common = int(_value(table, "common", "images", "common", names[0]))
    ina_budget = max(table[(table.scope == "common") & (table.test == "inductive_noise")]["param"], key=float)
    noise = {n: runs[n].value("noise_family", "error_rate", param="mean") for n in names}
    clean = {n: runs[n].value("accuracy", "accuracy", "all") for n in names}

    def common(test: str, param: str, model: str) -> float:
        return _value(table, "common", test, param, model)

    twins = {m: t for m, t in SEED_TWINS.items() if m in runs and t in runs}

    def spread(measure: Callable[[str], float]) -> float:
        """The seed spread of a measure: the largest |seed 0 − seed 1| of the models trained twice; NaN when no
        twin has the measure (e.g. no AutoAttack run of a second seed), where a difference is tested against 0."""
        gaps = [abs(measure(m) - measure(t)) for m, t in twins.items()]
        return max((g for g in gaps if g == g), default=float("nan"))

    def beyond(spread_value: float) -> float:
        return 0.0 if spread_value != spread_value else spread_value

    spread_note = (f"Seed spread: the largest |seed 0 − seed 1| difference of {', '.join(twins)} (each trained twice); "
                   "a difference counts only when larger than it." if twins else "One seed per model: no seed spread.")

    lines = [f"# Claims checked on CIFAR-10 ({n_common} test images all of {', '.join(names)} classify correctly)", "",
             "Models, commands and settings: [README.md](README.md); full comparison: [report/report.md](report/report.md). "
             "Attacks and Gini below are on the common-correct images unless marked; error rates in % of those images. "
             "Papers: Duan et al. (ICLR 2023) and the IGD abstract (Chen et al., arXiv 2305.09305), as summarised in "
             "methods.md.", ""]
    # 1. Gini rises with training epsilon
    ladder = [n for n in ("standard", "pgd-at-eps2", "pgd-at-eps4", "pgd-at-eps8") if n in runs]
    gini = [common("gini", "pixel", n) for n in ladder]
    gini_spread = beyond(spread(lambda n: common("gini", "pixel", n)))
    rising = all(b > a + gini_spread for a, b in zip(gini, gini[1:]))
    lines += ["## 1. Gini rises with the training ε (Duan, Table 1)", "",
              "| model | paper: global Gini (IG, ResNet-18) | robench: pixel Gini of \\|saliency\\| | regional Gini (4×4 sum) |",
              "|---|---|---|---|"]
    lines += [f"| {n} | {PAPER_GINI[n]} | {g:.3f} | {common('gini', 'region_sum', n):.3f} |" for n, g in zip(ladder, gini)]
    monotone = all(b > a for a, b in zip(gini, gini[1:]))
    shape = ("rises at every step" + (" by more than the seed spread" if twins else "") if rising else
             f"rises at every step, but not always by more than the seed spread ({gini_spread:.3f})" if monotone else
             "is not monotone")
    lines += ["", f"Verdict: {_verdict(rising)} — pixel Gini {' < '.join(f'{g:.3f}' for g in gini)} {shape} along "
              f"{' → '.join('standard' if n == 'standard' else 'ε = ' + n.removeprefix('pgd-at-eps') for n in ladder)}"
              f"{'/255' if len(ladder) > 1 else ''}. " + spread_note, ""]
    # 2. AT fooled more than standard, and more by INA than by RN
    at, std = "pgd-at-eps8", "standard"
    if at in runs and std in runs:
        ina = {m: common("inductive_noise", ina_budget, m) for m in runs}
        rn = {m: common("random_noise", ina_budget, m) for m in runs}
        fills = sorted(table[(table.scope == "common") & (table.test == "inductive_occlusion")]["param"])

        def ratio(m: str) -> float:
            return ina[m] / rn[m] if rn[m] else float("inf")

        ina_spread = beyond(spread(ina.__getitem__))
        lines += [f"## 2. AT models are fooled more by inductive attacks (budget {_pct(float(ina_budget))} of entries)", "",
                  "| measure | standard | PGD-AT ε = 8 | claim | verdict |", "|---|---|---|---|---|",
                  f"| inductive noise error | {_pct(ina[std])} | {_pct(ina[at])} | AT > standard | "
                  f"{_verdict(ina[at] > ina[std] + ina_spread)} |"]
        for fill in fills:
            a, s = common("inductive_occlusion", fill, at), common("inductive_occlusion", fill, std)
            fill_spread = beyond(spread(lambda m, f=fill: common("inductive_occlusion", f, m)))
            lines.append(f"| occlusion error, {fill} | {_pct(s)} | {_pct(a)} | AT > standard | "
                         f"{_verdict(a > s + fill_spread)} |")
        ratio_at, ratio_std = ratio(at), ratio(std)
        ratio_spread = beyond(spread(ratio)) if all(ratio(m) < float("inf") for pair in twins.items() for m in pair) else 0.0
        lines += [f"| random noise error (same budget) | {_pct(rn[std])} | {_pct(rn[at])} | — | — |",
                  f"| inductive / random noise error | {_ratio(ratio_std)} | {_ratio(ratio_at)} | AT ≫ 1, and above standard | "
                  f"{_verdict(ratio_at > 1.5 and ratio_at > ratio_std + ratio_spread)} |", "", spread_note, ""]
    # 3. IGD against its base: PGD-AT (the papers' setting), then TRADES (the IGD paper: "also trades+igd")
    def igd_section(title: str, base: str, base_label: str, igds: list[str]) -> list[str]:
        section = [title, "", f"| measure | {base_label} | " + " | ".join(igds) + (" | seed spread" if twins else "")
                   + " | paper (IGD abstract) | verdict |",
                   "|---|---|" + "---|" * len(igds) + ("---|" if twins else "") + "---|---|"]

        def row(label: str, values: dict[str, float], paper: str, lower_is_better: bool, fmt=_pct) -> str:  # type: ignore[no-untyped-def]
            measured = spread(lambda m: values.get(m, float("nan")))
            spread_value = beyond(measured)
            cells, held, failed = [], [], []
            for n in igds:
                if n not in values:
                    cells.append("–")
                    continue
                change = (values[base] - values[n]) / values[base] if values[base] else float("nan")
                cells.append(f"{fmt(values[n])} ({'−' if change >= 0 else '+'}{abs(100 * change):.0f}%)")
                ok = (values[n] < values[base] - spread_value if lower_is_better else
                      values[n] >= values[base] - max(0.02, spread_value))
                (held if ok else failed).append(n)
            verdict = _verdict(not failed) if not (held and failed) else f"**holds for {', '.join(held)} only**"
            spread_cell = (f" | {fmt(measured)}" if measured == measured else " | – (no second seed measured)") if twins else ""
            return f"| {label} | {fmt(values[base])} | " + " | ".join(cells) + f"{spread_cell} | {paper} | {verdict} |"

        every = tuple(dict.fromkeys((base, *igds, *twins, *twins.values())))  # both seeds of each twin give the spread
        section.append(row("pixel Gini", {n: common("gini", "pixel", n) for n in every}, "lower", True,
                           lambda v: f"{v:.3f}"))
        section.append(row(f"inductive noise error @ {_pct(float(ina_budget))}",
                           {n: common("inductive_noise", ina_budget, n) for n in every}, "up to −60%", True))
        for fill in sorted(table[(table.scope == "common") & (table.test == "inductive_occlusion")]["param"]):
            section.append(row(f"occlusion error, {fill}", {n: common("inductive_occlusion", fill, n) for n in every},
                               "up to −16%", True))
        rn_budget = max(table[(table.scope == "common") & (table.test == "random_noise")]["param"], key=float)
        section.append(row(f"random noise error @ {_pct(float(rn_budget))}",
                           {n: common("random_noise", rn_budget, n) for n in every}, "up to −50%", True))
        if all(pd.notna(noise[n]) for n in every):
            section.append(row("noise-corruption error (gaussian+shot+impulse, all images)", {n: noise[n] for n in every},
                               "up to −21%", True))
        section.append(row("clean accuracy (all images)", {n: clean[n] for n in every}, "kept", False))
        pgd = {n: runs[n].value("pgd", "robust_accuracy") for n in every}
        section.append(row("PGD-10 accuracy, ε = 8/255 (all images)", pgd, "kept", False))
        aa_runs = {n: out / "runs" / f"{n}-autoattack" for n in every if (out / "runs" / f"{n}-autoattack" / "meta.json").exists()}
        if base in aa_runs and len(aa_runs) > 1:
            aa = {n: load_run(p).value("autoattack", "robust_accuracy") for n, p in aa_runs.items()}
            n_aa = load_run(aa_runs[base]).meta["n_images"]
            section.append(row(f"AutoAttack accuracy, ε = 8/255 ({n_aa} images)", aa, "kept", False))
        return section + ["", f"Relative changes in brackets are against {base_label} (− = lower). \"Kept\" accuracies "
                          f"hold when within 2 points of {base_label}'s or above."
                          + (f" Seed spread: the largest |seed 0 − seed 1| difference of {', '.join(twins)} (each "
                             "trained twice); a reduction holds only when larger than it, and a kept accuracy may fall "
                             "by at most the larger of it and 2 points." if twins else " One seed per model: no seed spread."),
                          ""]

    if at in runs and (igds := [n for n in ("igd-lam1", "igd-lam2") if n in runs]):
        lines += igd_section("## 3. IGD releases the inequality and keeps robustness (vs PGD-AT ε = 8)", at,
                             "PGD-AT ε = 8", igds)
    if "trades" in runs and "trades-igd" in runs:
        lines += igd_section("## 3b. The same on TRADES (TRADES + IGD vs TRADES, β = 6, ε = 8)", "trades", "TRADES",
                             ["trades-igd"])
        if twins:
            lines[-2] += (" TRADES is trained once: the spread is PGD-AT's and IGD's, taken as the recipe's seed-to-seed "
                          "variation.")
    if (out / "igd-ablation" / "pairs.csv").exists():
        lines += _ablation_section(out / "igd-ablation")
    lines += _runs_section(out, [n for n in ORDER if (out / "runs" / n / "meta.json").exists()])
    path = out / "CLAIMS.md"
    write_atomic(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return path


#: "Markedly higher alignment": a teacher cosine at least this many times the study's IGD λ = 1 models' (issue 26)
ALIGNMENT_FACTOR = 2.0


def _ablation_section(ablation: Path) -> list[str]:
    """Claim 4 from the IGD ablation's summary.csv and pairs.csv (experiments/igd_ablation.py): does an IGD model with
    markedly higher teacher alignment lower an inductive-noise, occlusion or random-noise error (Holm-adjusted McNemar
    p < 0.05) without losing more than 2 points of AutoAttack accuracy (PGD-10 where AutoAttack was not run)?"""
    summary = pd.read_csv(ablation / "summary.csv").set_index("model")
    pairs = pd.read_csv(ablation / "pairs.csv")
    pairs = pairs[pairs["p_holm"].notna()]  # single-seed tests (the pooled rows have none)
    floor = ALIGNMENT_FACTOR * summary.loc[[m for m in ("igd-lam1", "igd-lam1-seed1") if m in summary.index],
                                           "cosine"].mean()
    twins = [(m, t) for m, t in SEED_TWINS.items() if m in summary.index and t in summary.index]

    def spread(error: str) -> float:  # the largest |seed 0 − seed 1| of the error over the models trained twice
        return max((abs(summary.loc[m, error] - summary.loc[t, error]) for m, t in twins if error in summary),
                   default=float("nan"))

    lines = ["## 4. More teacher alignment lowers the inequality errors (IGD ablation, [igd-ablation/](igd-ablation/README.md))",
             "", f"IGD models whose teacher cosine is at least {ALIGNMENT_FACTOR:g}× the study's IGD λ = 1 models' "
             f"({floor:.3f}), each against its PGD-AT baseline on their common-correct images: the errors it lowers or "
             "raises with a Holm-adjusted McNemar p < 0.05 (over every single-seed test of the ablation) and by more than "
             f"the seed spread (the largest |seed 0 − seed 1| difference of {', '.join(m for m, _ in twins) or 'none'}), "
             "and its robust accuracy beside the baseline's.", "",
             "| model | teacher cosine | baseline | lowered | raised | robust accuracy (baseline) | claim | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    def listed(rows: pd.DataFrame) -> str:
        return ", ".join(f"{r.error} {_pct(r.error_igd)} vs {_pct(r.error_baseline)}" for r in rows.itertuples()) or "none"

    held: list[str] = []
    costly: list[str] = []  # models that lower an error but lose robustness
    for model, tests in pairs.groupby("igd", sort=False):
        if model not in summary.index or not summary.loc[model, "cosine"] >= floor:
            continue
        base = tests["baseline"].iloc[0]
        significant = tests[tests["p_holm"] < 0.05]
        gap = significant["error_baseline"] - significant["error_igd"]
        beyond_spread = gap.abs() > significant["error"].map(spread).fillna(0.0)
        lowered = significant[(gap > 0) & beyond_spread]
        raised = significant[(gap < 0) & beyond_spread]
        measure = "autoattack@200" if pd.notna(summary.loc[[model, base], "autoattack@200"]).all() else "pgd10"
        attack = "AutoAttack" if measure == "autoattack@200" else "PGD-10"
        robust, robust_base = summary.loc[model, measure], summary.loc[base, measure]
        kept = robust >= robust_base - 0.02
        ok = len(lowered) > 0 and kept
        held += [model] if ok else []
        costly += [f"{model} lowers {', '.join(lowered['error'])} but loses {100 * (robust_base - robust):.1f} points of "
                   f"{attack} accuracy"] if len(lowered) and not kept else []
        lines.append(f"| {model} | {summary.loc[model, 'cosine']:.3f} | {base} | {listed(lowered)} | {listed(raised)} | "
                     f"{attack}{' (200)' if attack == 'AutoAttack' else ''} {_pct(robust)} "
                     f"({_pct(robust_base)}) | an error lower, robustness kept | {_verdict(ok)} |")
    lines += ["", f"Overall: {_verdict(bool(held))} — " + (
        f"{', '.join(held)} lower an error beyond chance at no robustness cost." if held else
        "no markedly more aligned IGD model lowers an inductive-noise, occlusion or random-noise error beyond chance "
        "at no robustness cost" + (f": {'; '.join(costly)}." if costly else
                                   "; the errors stay flat or rise as the alignment grows.")
    ), ""]
    return lines


def _runs_section(out: Path, names: list[str]) -> list[str]:
    """Every model: how it was trained (method, inner attack, device), its accuracies on each evaluation and the
    wall times, from the checkpoints' records, the per-epoch logs and the runs' meta.json (they survive resumes)."""
    lines = ["## The models", "",
             "Accuracies on all images of each evaluation: the 1,000 lossless sample images, the 10,000 JPEG test "
             "images, and the AutoAttack subset of the sample, where PGD-10 is run too (a gap of more than 5 points would "
             "mean PGD-10 overestimates the model); PGD-10 and AutoAttack at ε = 8/255. Times in minutes "
             "of wall time on the device named (the 2-core CPU was shared with other work while the study ran).", "",
             "| model | method | inner attack | device | training | epoch kept | clean / PGD-10, sample | "
             "clean / PGD-10, JPEG | AutoAttack | evaluation | AutoAttack run |",
             "|---|---|---|---|---:|---:|---|---|---|---:|---:|"]
    unrecorded = False
    for name in names:
        log = pd.read_csv(out / "models" / f"{name}.pt.log.csv")
        run = load_run(out / "runs" / name)
        training = run.meta["model"]["training"]
        config = training["config"]
        unrecorded |= "device" not in training
        extra = {kind: load_run(out / "runs" / f"{name}-{kind}") for kind in ("jpeg", "autoattack")
                 if (out / "runs" / f"{name}-{kind}" / "meta.json").exists()}
        jpeg = (f"{_pct(extra['jpeg'].value('accuracy', 'accuracy', 'all'))} / "
                f"{_pct(extra['jpeg'].value('pgd', 'robust_accuracy'))}" if "jpeg" in extra else "–")
        aa = (f"{_pct(extra['autoattack'].value('autoattack', 'robust_accuracy'))} (PGD-10 "
              f"{_pct(extra['autoattack'].value('pgd', 'robust_accuracy'))} on the same "
              f"{extra['autoattack'].meta['n_images']} images)" if "autoattack" in extra else "–")
        aa_minutes = f"{extra['autoattack'].meta['duration_s'] / 60:.1f}" if "autoattack" in extra else "–"
        lines.append(f"| {name} | {config['method']} | {_inner_attack(config)} | {training.get('device', 'cpu*')} | "
                     f"{log['seconds'].sum() / 60:.1f} | {training.get('selected_epoch', '–')} | "
                     f"{_pct(run.value('accuracy', 'accuracy', 'all'))} / {_pct(run.value('pgd', 'robust_accuracy'))} | "
                     f"{jpeg} | {aa} | {run.meta['duration_s'] / 60:.1f} | {aa_minutes} |")
    if unrecorded:
        lines += ["", "\\* trained before robench recorded the device in the checkpoint; each of these models was trained "
                  "on the 2-core CPU (no GPU was lent while they were trained)."]
    return lines + [""]


def _inner_attack(config: dict) -> str:
    """The training attack of a checkpoint's config: "N-FGSM", "PGD-2, step 4/255", "FGSM-RS, step 10/255" (PGD with
    one step), "–" for standard training."""
    if config["method"] == "standard":
        return "–"
    if config.get("inner_attack", "pgd") == "n-fgsm":  # checkpoints from before the option trained with PGD
        return "N-FGSM"
    steps = config["attack_steps"]
    return f"{'FGSM-RS' if steps == 1 else f'PGD-{steps}'}, step {255 * config['step_size']:.3g}/255"


def verdicts(claims: str) -> dict[str, str]:
    """Each verdict of a CLAIMS.md text (as write_claims writes it), keyed "SECTION. measure", with the values it
    rests on: claim 1's ladder, claim 2's standard vs AT, claim 3's base → IGD models."""
    out: dict[str, str] = {}
    section, header = "", []
    for line in claims.splitlines():
        if line.startswith("## "):
            section, header = line[3:].split(" ", 1)[0].rstrip("."), []
        elif line.startswith("Verdict: "):
            out[f"{section}. Gini rises with the training ε"] = line.removeprefix("Verdict: ").split(" along ")[0]
        elif line.startswith("| ") and not header:
            header = [c.strip() for c in line.strip("|").split("|")]
        elif line.startswith("| ") and "**" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            end = next(i for i, h in enumerate(header) if h in ("claim", "paper (IGD abstract)", "seed spread"))
            values = (f"{cells[1]} vs {cells[2]}" if section == "2" else f"teacher cosine {cells[1]}" if section == "4"
                      else " → ".join(cells[1:end]))
            subset = re.search(r" \((\d+) images\)", cells[0])  # one row across the studies' subset sizes
            measure = cells[0].replace(subset[0], "") if subset else cells[0]
            count = f"; {subset[1]} images" if subset else ""
            out[f"{section}. {measure}"] = f"{cells[-1]} ({values}{count})"
    return out


def write_verdicts_beside(out: Path, studies: dict[str, Path]) -> Path:
    """OUT/VERDICTS.md: every study's verdicts side by side (from their CLAIMS.md), one row per claim measure."""
    found = {label: verdicts((path / "CLAIMS.md").read_text()) for label, path in studies.items()}
    keys = list(dict.fromkeys(k for v in found.values() for k in v))
    lines = ["# The claims' verdicts, study beside study", "",
             "Generated by `experiments/claims_cifar10.py --out " + str(out) + " " +
             " ".join(f"--beside {p}" for p in list(studies.values())[1:]) + "` from each study's CLAIMS.md: "
             "the same claims, computed by the same code on models of different quality. Claim 2 shows standard vs "
             "PGD-AT ε = 8; claim 3 shows PGD-AT ε = 8 → the IGD models (3b: TRADES → TRADES + IGD).", "",
             "| claim: measure | " + " | ".join(f"[{label}]({Path(os.path.relpath(p, out)) / 'CLAIMS.md'})"
                                               for label, p in studies.items()) + " |",
             "|---|" + "---|" * len(studies)]
    lines += [f"| {k} | " + " | ".join(v.get(k, "–") for v in found.values()) + " |" for k in keys]
    path = out / "VERDICTS.md"
    write_atomic(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("reports/reproduction/cifar10"))
    p.add_argument("--beside", type=Path, action="append", default=[],
                   help="Another study whose CLAIMS.md verdicts go beside OUT's in OUT/VERDICTS.md (repeatable).")
    args = p.parse_args()
    print(write_claims(args.out).read_text())
    if args.beside:
        studies = {_study_label(args.out): args.out, **{_study_label(b): b for b in args.beside}}
        print(f"verdicts beside: {write_verdicts_beside(args.out, studies)}")
    return 0


def _study_label(study: Path) -> str:
    """A study's column heading: its models' architecture (airbench_s, cnn_small), from the standard model's run."""
    return load_run(study / "runs" / "standard").meta["model"]["arch"] + " study"


if __name__ == "__main__":
    sys.exit(main())
