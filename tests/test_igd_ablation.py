"""The IGD ablation's own statistics (experiments/igd_ablation.py): the McNemar test and the margin check."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binom

import robench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from igd_ablation import margin_ratio, mcnemar  # noqa: E402


def test_mcnemar_counts_discordant_images_and_gives_the_exact_p() -> None:
    a = pd.Series([1, 1, 1, 0, 0, 1, np.nan, 0] + [0] * 10 + [1] * 3)
    b = pd.Series([0, 0, 0, 1, 0, 1, 1, np.nan] + [1] * 10 + [0] * 3)
    only_a, only_b, p = mcnemar(a, b)  # NaN: not attacked in one model, left out
    assert (only_a, only_b) == (6, 11)
    assert p == pytest.approx(2 * binom.cdf(6, 17, 0.5))  # two-sided exact test on the 17 discordant images
    assert mcnemar(pd.Series([1, 0]), pd.Series([1, 0]))[2] == 1.0


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
