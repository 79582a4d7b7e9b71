"""The IGD ablation's own statistics (experiments/igd_ablation.py): pooled McNemar counts, trends, the margin check."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from scipy.stats import binomtest

import robench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from igd_ablation import ERRORS, margin_ratio, pooled, trends  # noqa: E402


def test_margin_ratio_of_a_linear_model_is_its_closed_form() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(3 * 32 * 32, 10)
    model = robench.wrap(torch.nn.Sequential(torch.nn.Flatten(), linear))
    x, y = robench.load_data("sample", limit=40).batch(0, 40)
    logits = model(x).detach()
    runner_up = logits.masked_fill(torch.nn.functional.one_hot(y, 10).bool(), -torch.inf).argmax(1)
    margin = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, runner_up[:, None])[:, 0]
    g = linear.weight[y] - linear.weight[runner_up]  # the margin's gradient, constant for a linear model
    expected = (margin**2 / g.pow(2).sum(1)).detach()[margin > 0].median()
    assert margin_ratio(model, images=40, share=1.0) == pytest.approx(float(expected), rel=1e-4)
    assert margin_ratio(model, images=40, share=0.2) > margin_ratio(model, images=40, share=1.0)  # fewer entries


def test_pooled_sums_the_seeds_discordant_counts() -> None:
    row = {"error": "ina", "error_baseline": 0.1, "error_igd": 0.2}
    tests = pd.DataFrame([{**row, "igd": "m", "baseline": "b", "images": 100, "fooled_igd_only": 3,
                           "fooled_baseline_only": 9},
                          {**row, "igd": "m-seed1", "baseline": "b-seed1", "images": 300, "fooled_igd_only": 4,
                           "fooled_baseline_only": 10, "error_igd": 0.4}])
    out = pooled(tests, {"m": ("m", "m-seed1"), "absent": ("x", "x-seed1")})
    assert len(out) == 1  # a model without both seeds gives no row
    r = out.iloc[0]
    assert (r["fooled_igd_only"], r["fooled_baseline_only"], r["images"]) == (7, 19, 400)
    assert r["error_igd"] == pytest.approx((0.2 * 100 + 0.4 * 300) / 400)
    assert r["p_mcnemar"] == pytest.approx(binomtest(7, 26, 0.5).pvalue)


def test_trends_rank_the_eps8_models_only() -> None:
    names = ["standard", "pgd-at-eps2", "pgd-at-eps4", "a", "b", "c", "d"]
    cosine = [1.0, 0.9, 0.8, 0.1, 0.2, 0.3, 0.4]  # the excluded models would break the monotone relation
    table = pd.DataFrame({"model": names, "cosine": cosine, "gini": [0.5, 0.6, 0.6, 0.62, 0.6, 0.58, 0.56],
                          "clean": [0.9, 0.8, 0.7, 0.68, 0.7, 0.69, 0.71], "pgd10": [0.0, 0.2, 0.3, 0.42, 0.4, 0.3, 0.2],
                          **{error: [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4] for error in ERRORS}})
    out = trends(table).set_index(["measure", "against"])
    assert (out["models"] == 4).all()
    assert out.loc[("rn_add@20%", "cosine"), "spearman"] == pytest.approx(1.0)
    assert out.loc[("pgd10", "cosine"), "spearman"] == pytest.approx(-1.0)
    assert out.loc[("rn_add@20%", "gini"), "spearman"] == pytest.approx(-1.0)
