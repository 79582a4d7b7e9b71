"""Budgets, inductive noise (INA) and random noise (RN): robench.attacks.budgets / noise."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robench.attacks import (
    INA_DEFAULT_FRACTIONS,
    RN_DEFAULT_FRACTIONS,
    NoiseResult,
    apply_noise,
    noise_attack,
    random_mask,
    resolve_budget,
    resolve_budgets,
    topk_mask,
)
from robench.errors import RobenchError
from tests.conftest import Recorder

MODES = ("add", "replace")
NOISES = ("gaussian", "uniform")
SELECTIONS = ("inductive", "random")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)




class ChangeDetector(nn.Module):
    """Predicts class 1 iff one of the watched flat entries differs from the reference image."""

    def __init__(self, ref: torch.Tensor, watched: list[int]):
        super().__init__()
        self.register_buffer("ref", ref.reshape(-1).clone())
        self.watched = torch.tensor(watched)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = (x.reshape(x.shape[0], -1)[:, self.watched] - self.ref[self.watched]).abs()
        changed = (diff > 1e-7).any(dim=1).float()
        return torch.stack([1.0 - changed, changed], dim=1)


def interior_images(n: int, shape=(3, 4, 4), seed: int = 0) -> torch.Tensor:
    return 0.25 + 0.5 * torch.rand((n, *shape), generator=gen(seed))


# ------------------------------------------------------------------------------------ budgets


def test_resolve_budget_fractions_and_counts():
    assert resolve_budget(0.002, 3 * 32 * 32) == 6  # 6.144
    assert resolve_budget(0.02, 3 * 224 * 224) == 3011  # 3010.56
    assert resolve_budget(0.5, 3) == 2  # 1.5 rounds half up
    assert resolve_budget(0.5, 5) == 3  # 2.5 rounds half up (not to even)
    assert resolve_budget(1e-9, 100) == 1  # at least 1
    assert resolve_budget(5000, 3 * 224 * 224) == 5000
    assert resolve_budget(100, 100) == 100


@pytest.mark.parametrize("bad", [0, -3, 101, 0.0, 1.0, 1.5, -0.1, float("nan"), True, "0.1"])
def test_resolve_budget_rejects(bad):
    with pytest.raises(RobenchError):
        resolve_budget(bad, 100)


@given(f=st.floats(min_value=1e-6, max_value=1 - 1e-6), numel=st.integers(1, 10**6))
def test_resolve_budget_property(f, numel):
    k = resolve_budget(f, numel)
    assert 1 <= k <= numel
    assert k == 1 or abs(k - f * numel) <= 0.5 + 1e-9


def test_default_fractions():
    assert len(INA_DEFAULT_FRACTIONS) == 10 and len(RN_DEFAULT_FRACTIONS) == 10
    for i, (a, b) in enumerate(zip(INA_DEFAULT_FRACTIONS, RN_DEFAULT_FRACTIONS), start=1):
        assert math.isclose(a, 0.002 * i) and math.isclose(b, 0.02 * i)
    assert resolve_budgets(0.1, 10) == [1]
    with pytest.raises(RobenchError):
        resolve_budgets([], 10)


# -------------------------------------------------------------------------------------- masks


def reference_topk(attr: torch.Tensor, k: int) -> torch.Tensor:
    """Literal per-image sort: largest signed value first, lower flat index on ties."""
    n = attr.shape[0]
    flat = attr.reshape(n, -1).tolist()
    mask = torch.zeros(n, len(flat[0]), dtype=torch.bool)
    for i, row in enumerate(flat):
        for j in sorted(range(len(row)), key=lambda e: (-row[e], e))[:k]:
            mask[i, j] = True
    return mask.view(attr.shape)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
    data=st.data(),
)
def test_topk_mask_matches_per_image_sort(shape, data):
    numel = shape[1] * shape[2] * shape[3]
    values = data.draw(st.lists(st.integers(-3, 3), min_size=shape[0] * numel,
                                max_size=shape[0] * numel))  # small range: many ties
    attr = torch.tensor(values, dtype=torch.float32).view(shape)
    k = data.draw(st.integers(1, numel))
    mask = topk_mask(attr, k)
    assert mask.shape == attr.shape and mask.dtype == torch.bool
    assert (mask.reshape(shape[0], -1).sum(dim=1) == k).all()
    assert torch.equal(mask, reference_topk(attr, k))


def test_topk_mask_uses_signed_values_per_image():
    attr = torch.zeros(2, 1, 2, 2)
    attr[0, 0, 0, 0] = -10.0  # large magnitude but negative: must not be chosen
    attr[0, 0, 1, 1] = 1.0
    attr[1] = 100.0  # per-image choice, not a batch threshold
    attr[1, 0, 0, 1] = 200.0
    mask = topk_mask(attr, 1)
    assert mask[0, 0, 1, 1] and mask[0].sum() == 1
    assert mask[1, 0, 0, 1] and mask[1].sum() == 1


def test_topk_mask_rejects_bad_k():
    with pytest.raises(RobenchError):
        topk_mask(torch.zeros(1, 1, 2, 2), 5)
    with pytest.raises(RobenchError):
        topk_mask(torch.zeros(1, 1, 2, 2), 0)


def test_random_mask_exact_count_seeded_and_uniform():
    shape = (4, 2, 3, 3)
    a = random_mask(shape, 5, gen(1))
    b = random_mask(shape, 5, gen(1))
    c = random_mask(shape, 5, gen(2))
    assert (a.reshape(4, -1).sum(1) == 5).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])  # per-image draws
    # every entry is picked with probability k / D = 5 / 18
    g = gen(3)
    freq = torch.stack([random_mask((50, 18), 5, g) for _ in range(20)]).float().mean((0, 1))
    assert (freq - 5 / 18).abs().max() < 0.08


# -------------------------------------------------------------------------------------- noise


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("selection", SELECTIONS)
def test_apply_noise_changes_exactly_the_mask(mode, noise, selection):
    x = interior_images(3)
    attr = torch.randn(x.shape, generator=gen(5))
    k = 7
    mask = topk_mask(attr, k) if selection == "inductive" else random_mask(x.shape, k, gen(6))
    out = apply_noise(x, mask, mode=mode, noise=noise, generator=gen(7))
    changed = out != x
    assert torch.equal(changed, mask)
    assert (changed.reshape(3, -1).sum(1) == k).all()
    assert out.min() >= 0 and out.max() <= 1


def test_apply_noise_leaves_unmasked_entries_bit_identical():
    x = torch.rand(2, 3, 5, 5, generator=gen(0))
    x[0, 0, 0, 0] = 0.0
    x[1, 2, 4, 4] = 1.0
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 1] = True
    for mode in MODES:
        for noise in NOISES:
            out = apply_noise(x, mask, mode=mode, noise=noise, generator=gen(1))
            assert torch.equal(out[~mask], x[~mask])


@pytest.mark.parametrize("mode", MODES)
def test_uniform_noise_within_per_image_range(mode):
    x = torch.empty(2, 3, 8, 8)
    x[0] = 0.1 + 0.2 * torch.rand(3, 8, 8, generator=gen(0))  # [0.1, 0.3]
    x[1] = 0.35 + 0.15 * torch.rand(3, 8, 8, generator=gen(1))  # [0.35, 0.5]: x + ε < 1
    full = torch.ones_like(x, dtype=torch.bool)
    out = apply_noise(x, full, mode=mode, noise="uniform", generator=gen(2))
    for i in range(2):
        lo, hi = x[i].min(), x[i].max()
        eps = out[i] if mode == "replace" else out[i] - x[i]
        assert eps.min() >= lo - 1e-6 and eps.max() <= hi + 1e-6
        assert eps.max() - eps.min() > 0.8 * (hi - lo)  # spans the range, not a point


def test_gaussian_noise_is_standard_normal_and_clamped():
    x = torch.full((4, 3, 32, 32), 0.5)
    full = torch.ones_like(x, dtype=torch.bool)
    out = apply_noise(x, full, mode="replace", noise="gaussian", generator=gen(0))
    assert out.min() == 0.0 and out.max() == 1.0
    assert abs((out == 0).float().mean().item() - 0.5) < 0.02  # P(ε < 0)
    assert abs((out == 1).float().mean().item() - 0.1587) < 0.02  # P(ε > 1)
    out = apply_noise(x, full, mode="add", noise="gaussian", generator=gen(1))
    assert out.min() == 0.0 and out.max() == 1.0
    assert abs((out == 1).float().mean().item() - 0.3085) < 0.02  # P(ε > 0.5)


def test_add_clamps_to_one():
    x = torch.full((1, 1, 4, 4), 0.95)
    mask = torch.ones_like(x, dtype=torch.bool)
    out = apply_noise(x, mask, mode="add", noise="uniform", generator=gen(0))  # ε = 0.95
    assert torch.equal(out, torch.ones_like(x))


def test_apply_noise_seeded():
    x = interior_images(2)
    mask = random_mask(x.shape, 9, gen(0))
    a = apply_noise(x, mask, noise="gaussian", generator=gen(4))
    b = apply_noise(x, mask, noise="gaussian", generator=gen(4))
    c = apply_noise(x, mask, noise="gaussian", generator=gen(5))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_apply_noise_rejects_bad_options():
    x = interior_images(1)
    mask = torch.zeros_like(x, dtype=torch.bool)
    with pytest.raises(RobenchError):
        apply_noise(x, mask, mode="multiply", generator=gen())
    with pytest.raises(RobenchError):
        apply_noise(x, mask, noise="salt", generator=gen())
    with pytest.raises(RobenchError):
        apply_noise(x, mask[:, :1], generator=gen())


# ----------------------------------------------------------------------------- noise_attack


def detector_setup(n: int = 4, shape=(2, 4, 4), watched: int = 5):
    x0 = interior_images(1, shape, seed=11)[0]
    x = x0.expand(n, *shape).clone()
    numel = math.prod(shape)
    # attribution = a different permutation per image; rank of the watched entry is known
    perms = torch.stack([torch.randperm(numel, generator=gen(20 + i)) for i in range(n)])
    attr = perms.float().view(n, *shape)
    rank = numel - 1 - perms[:, watched]  # 0-based position in the descending order
    model = ChangeDetector(x0, [watched])
    return x, attr, rank, model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("noise", NOISES)
def test_inductive_fooled_flags_on_toy_model(mode, noise):
    x, attr, rank, model = detector_setup()
    y = torch.zeros(4, dtype=torch.long)
    ks = [1, 4, 8, 16, 32]
    res = noise_attack(model, x, y, attr, ks, selection="inductive", mode=mode, noise=noise,
                       trials=2, generator=gen(0))
    expected = torch.tensor([[k > int(r) for r in rank] for k in ks])
    assert res.fooled.shape == (5, 2, 4) and res.fooled.dtype == torch.bool
    assert torch.equal(res.fooled, expected[:, None, :].expand(5, 2, 4))
    assert torch.equal(res.error_rate(), expected.double().mean(1))
    assert res.ks == tuple(ks)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("selection", SELECTIONS)
def test_attack_perturbs_exactly_k_entries(mode, noise, selection):
    x, attr, _, model = detector_setup(n=3)
    rec = Recorder(model)
    ks = [2, 5]
    noise_attack(rec, x, torch.zeros(3, dtype=torch.long), attr, ks, selection=selection,
                 mode=mode, noise=noise, trials=2, generator=gen(1), max_batch=5)
    seen = torch.cat(rec.inputs).view(len(ks), 2, *x.shape)
    for li, k in enumerate(ks):
        for t in range(2):
            changed = seen[li, t] != x
            assert (changed.reshape(3, -1).sum(1) == k).all()
            if selection == "inductive":
                assert torch.equal(changed, topk_mask(attr, k))
    if selection == "random":  # positions are redrawn per trial
        assert not torch.equal(seen[1, 0] != x, seen[1, 1] != x)


def test_random_selection_error_rate_matches_chance():
    x, _, _, model = detector_setup(n=8)
    res = noise_attack(model, x, torch.zeros(8, dtype=torch.long), None, [8, 32],
                       selection="random", trials=25, generator=gen(2))
    rates = res.error_rate()
    assert abs(rates[0].item() - 8 / 32) < 0.1  # watched entry hit with probability k / D
    assert rates[1].item() == 1.0


def test_forward_passes_are_batched_across_levels_and_trials():
    x, attr, _, model = detector_setup(n=5)
    y = torch.zeros(5, dtype=torch.long)
    rec = Recorder(model)
    res = noise_attack(rec, x, y, attr, [1, 2, 3], trials=2, generator=gen(0), max_batch=8)
    assert [b.shape[0] for b in rec.inputs] == [8, 8, 8, 6]  # ceil(3·2·5 / 8) passes
    assert res.forward_passes == 4
    rec2 = Recorder(model)
    res2 = noise_attack(rec2, x, y, attr, [1, 2, 3], trials=2, generator=gen(0), max_batch=1000)
    assert len(rec2.inputs) == 1
    assert torch.equal(torch.cat(rec.inputs), torch.cat(rec2.inputs))  # same draws
    assert torch.equal(res.fooled, res2.fooled)


@pytest.mark.parametrize("selection", SELECTIONS)
def test_noise_attack_repeats_for_a_seed(selection):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    x = interior_images(6)
    y = model(x).argmax(1)
    attr = torch.randn(x.shape, generator=gen(9))
    kw = dict(selection=selection, noise="gaussian", mode="replace", trials=3)
    a = noise_attack(model, x, y, attr, [0.2, 0.5], generator=gen(3), **kw)
    b = noise_attack(model, x, y, attr, [0.2, 0.5], generator=gen(3), **kw)
    c = noise_attack(model, x, y, attr, [0.2, 0.5], generator=gen(4), **kw)
    assert torch.equal(a.predictions, b.predictions) and torch.equal(a.fooled, b.fooled)
    assert not torch.equal(a.predictions, c.predictions)


def test_noise_attack_eval_mode_no_grad_and_bn_untouched():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    rec = Recorder(inner)
    rec.train()
    bn = inner[1]
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = interior_images(4, (3, 6, 6))
    noise_attack(rec, x, torch.zeros(4, dtype=torch.long), None, [0.1, 0.3],
                 selection="random", trials=2, generator=gen(0))
    assert rec.training and inner.training
    assert all(state == (False, False) for state in rec.states)
    for k, v in bn.state_dict().items():
        assert torch.equal(v, before[k])


def test_noise_attack_errors():
    x, attr, _, model = detector_setup(n=2)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(RobenchError):
        noise_attack(model, x, y, None, [1], selection="inductive", generator=gen())
    with pytest.raises(RobenchError):
        noise_attack(model, x, y, attr[:, :1], [1], generator=gen())
    with pytest.raises(RobenchError):
        noise_attack(model, x * 3, y, attr, [1], generator=gen())
    with pytest.raises(RobenchError):
        noise_attack(model, x, y, attr, [1], selection="gradient", generator=gen())
    with pytest.raises(RobenchError):
        noise_attack(model, x, y, attr, [1], generator=None)  # type: ignore[arg-type]
    with pytest.raises(RobenchError):
        noise_attack(model, x, y, attr, [1], trials=0, generator=gen())
    with pytest.raises(RobenchError):
        noise_attack(model, x, y[:1], attr, [1], generator=gen())


def test_noise_result_helpers_and_merge():
    fooled = torch.tensor([[[True, False], [True, True]], [[False, False], [False, True]]])
    res = NoiseResult(budgets=(0.1, 0.2), ks=(1, 2), fooled=fooled,
                      predictions=fooled.long(), selection="random", mode="add",
                      noise="gaussian", trials=2, numel=10)
    assert res.error_rates() == [0.75, 0.25]
    assert torch.equal(res.error_rate_per_trial(),
                       torch.tensor([[0.5, 1.0], [0.0, 0.5]], dtype=torch.float64))
    assert torch.equal(res.fooled_fraction(),
                       torch.tensor([[1.0, 0.5], [0.0, 0.5]], dtype=torch.float64))
    merged = NoiseResult.merge([res, res])
    assert merged.n_images == 4 and merged.error_rates() == [0.75, 0.25]
    assert res.to_dict()["error_rate"] == [0.75, 0.25]


def test_noise_attack_empty_batch():
    x, attr, _, model = detector_setup(n=1)
    res = noise_attack(model, x[:0], torch.zeros(0, dtype=torch.long), attr[:0], [1, 2],
                       generator=gen())
    assert res.fooled.shape == (2, 1, 0) and res.forward_passes == 0
    assert res.to_dict()["error_rate"] == [None, None]
