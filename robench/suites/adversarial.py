"""The ``adversarial`` suite (README, "Suites"): l∞ robust accuracy under PGD (foolbox) and, when the
``autoattack`` extra is installed, AutoAttack (standard), with checks that flag gradient masking.

Per image and ε it records whether the model still classifies the attacked image correctly
(an image misclassified when clean counts as not robust). Sanity checks, reported as rows with
metric ``masking_flag`` (1 = suspicious): robust accuracy must not rise with ε, PGD must not be
weaker than FGSM at the same ε, and a very large ε must drive accuracy to about 0.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench.data.imageset import ImageSet
from robench.metrics import bootstrap_ci
from robench.models.wrapper import RobenchModel
from robench.schema import eps_label, large_eps_column, robust_column
from robench.settings import AdversarialConfig
from robench.suites.base import SUITES, Batch, FiniteLogits, checked_predictions, result_row

LARGE_EPS = 0.5  # [0, 1] units: an l∞ ball this size contains images of every class


@SUITES.register("adversarial")
class AdversarialSuite:
    """Robust accuracy per ε (PGD through foolbox; AutoAttack optional) and gradient-masking checks."""

    name = "adversarial"

    def __init__(self, seed: int = 0, config: AdversarialConfig | None = None) -> None:
        self.seed = seed
        self.config = config or AdversarialConfig()
        self.config.validate()

    def options(self) -> dict[str, Any]:
        return {**asdict(self.config), "large_eps": LARGE_EPS, "attack_library": "foolbox LinfPGD / FGSM"}

    def restore(self, recorded: dict[str, Any]) -> None:
        return None  # nothing depends on the data

    def prepare(self, data: ImageSet) -> None:
        return None

    def run_batch(self, model: RobenchModel, batch: Batch) -> dict[str, np.ndarray]:
        import foolbox as fb

        cfg = self.config
        fmodel = fb.PyTorchModel(FiniteLogits(model, "adversarial images"), bounds=(0, 1), device=batch.x.device)
        clean = batch.correct
        columns: dict[str, np.ndarray] = {}
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=batch.generator, device=batch.generator.device))
        with torch.random.fork_rng(devices=[]):  # foolbox draws random starts from torch's global RNG
            torch.manual_seed(seed)
            for eps in cfg.eps:
                robust = clean.clone()
                attack = fb.attacks.LinfPGD(rel_stepsize=cfg.pgd_rel_stepsize, steps=cfg.pgd_steps, random_start=True)
                for _ in range(cfg.pgd_restarts):
                    _, _, success = attack(fmodel, batch.x, batch.y, epsilons=eps)
                    robust &= ~success
                columns[robust_column("pgd", eps).name] = robust.cpu().numpy()
                if cfg.masking_checks:
                    _, _, success = fb.attacks.FGSM()(fmodel, batch.x, batch.y, epsilons=eps)
                    columns[robust_column("fgsm", eps).name] = (clean & ~success).cpu().numpy()
            if cfg.masking_checks:
                attack = fb.attacks.LinfPGD(abs_stepsize=LARGE_EPS / 10, steps=20, random_start=True)
                _, _, success = attack(fmodel, batch.x, batch.y, epsilons=LARGE_EPS)
                columns[large_eps_column().name] = (clean & ~success).cpu().numpy()
            if cfg.autoattack:
                columns.update(self._autoattack(model, batch, seed))
        return columns

    def _autoattack(self, model: RobenchModel, batch: Batch, seed: int) -> dict[str, np.ndarray]:
        from pyautoattack import AutoAttack

        out = {}
        for eps in self.config.eps:
            adversary = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device=batch.x.device)
            x_adv, _ = adversary.run_standard_evaluation(batch.x, batch.y, batch_size=len(batch.y))
            with torch.no_grad():
                predicted = checked_predictions(model(x_adv), "AutoAttack images")
                out[robust_column("autoattack", eps).name] = (predicted == batch.y).cpu().numpy()
        return out

    def summarize(self, per_image: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
        cfg = self.config
        rows: list[dict[str, Any]] = []
        variant = f"linf/steps={cfg.pgd_steps}/restarts={cfg.pgd_restarts}"
        pgd_acc = {}
        for eps in cfg.eps:
            for attack in ("pgd", "fgsm", "autoattack"):
                col = robust_column(attack, eps)
                if col.name not in per_image:
                    continue
                flags = per_image[col.name].to_numpy(dtype=float)
                name = {"pgd": variant, "fgsm": "linf/fgsm", "autoattack": "linf/standard"}[attack]
                rows.append(result_row(self.name, col.test, name, col.param, "robust_accuracy", flags.mean(), len(flags),
                                       bootstrap_ci(flags, seed=self.seed)))
                if attack == "pgd":
                    pgd_acc[eps] = flags.mean()
        if cfg.masking_checks:
            ordered = [pgd_acc[e] for e in sorted(pgd_acc)]
            rises = any(b > a + 1e-9 for a, b in zip(ordered, ordered[1:]))
            weaker = any(pgd_acc[e] > per_image[robust_column("fgsm", e).name].mean() + 1e-9 for e in cfg.eps)
            large = per_image[large_eps_column().name].to_numpy(dtype=float).mean()
            n = len(per_image)
            rows += [
                result_row(self.name, "sanity", "accuracy_rises_with_eps", "", "masking_flag", float(rises), n),
                result_row(self.name, "sanity", "pgd_weaker_than_fgsm", "", "masking_flag", float(weaker), n),
                result_row(self.name, "sanity", "large_eps_accuracy", eps_label(LARGE_EPS), "robust_accuracy", large, n),
                result_row(self.name, "sanity", "large_eps_accuracy_above_0.05", eps_label(LARGE_EPS), "masking_flag",
                           float(large > 0.05), n),
            ]
        return rows
