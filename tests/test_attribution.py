"""Attribution methods against Captum and analytic references, plus mode/side-effect checks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from robench.attribution import (
    ATTRIBUTIONS,
    IG_METHODS,
    attribute,
    completeness_gap,
    ig_steps,
    input_x_gradient,
    integrated_gradients,
    saliency,
    smoothgrad,
)
from robench.errors import RobenchError


@pytest.fixture(scope="module")
def captum_attr():  # type: ignore[no-untyped-def]
    """Captum's attribution module (a dev extra): only the tests that compare with Captum need it."""
    return pytest.importorskip("captum.attr")


class TinyCNN(nn.Module):
    """Conv + BatchNorm + activation + linear head; ``mean`` buffer like a robench wrapper."""

    def __init__(self, act: nn.Module | None = None, with_mean: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), act or nn.ReLU(),
            nn.AvgPool2d(2))
        self.head = nn.Linear(4 * 4 * 4, 5)
        if with_mean:
            self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "mean"):
            x = (x - self.mean) / 0.25
        return self.head(self.features(x).flatten(1))


def make_model(dtype=torch.float64, act=None, with_mean=False, seed=0) -> TinyCNN:
    torch.manual_seed(seed)
    m = TinyCNN(act, with_mean).to(dtype)
    m.train()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            m(torch.rand(16, 3, 8, 8, dtype=dtype) * 2)
    return m.eval()


def make_batch(n=3, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g, dtype=dtype), torch.arange(n) % 5


def captum_call(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


# ---------------------------------------------------------------- Captum equivalence


def test_saliency_equals_captum(captum_attr):
    m = make_model()
    x, t = make_batch()
    want = captum_call(lambda: captum_attr.Saliency(m).attribute(x.clone(), target=t, abs=False))
    got = saliency(m, x, t)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert (got < 0).any() and (got > 0).any()  # signed


def test_input_x_gradient_equals_captum(captum_attr):
    m = make_model()
    x, t = make_batch()
    want = captum_call(lambda: captum_attr.InputXGradient(m).attribute(x.clone(), target=t))
    torch.testing.assert_close(input_x_gradient(m, x, t), want.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "method,ibs",
    [(m, None) for m in IG_METHODS]
    + [("gausslegendre", 2), ("gausslegendre", 7), ("riemann_trapezoid", 2),
       ("riemann_left", 7)])
def test_integrated_gradients_equals_captum(method, ibs, captum_attr):
    """ibs=2 < N: one step over image slices; ibs=7: two steps over all 3 images a chunk."""
    m = make_model()
    x, t = make_batch()
    steps = 9
    ig = captum_attr.IntegratedGradients(m)
    want = captum_call(lambda: ig.attribute(x.clone(), target=t, n_steps=steps, method=method,
                                            internal_batch_size=None if ibs is None else 3 * 2))
    got = integrated_gradients(m, x, t, steps=steps, method=method, internal_batch_size=ibs)
    assert got.shape == x.shape and got.dtype == x.dtype
    # Captum rounds its step weights to float32; everything else is float64.
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want.detach().to(got.dtype), rtol=1e-6, atol=1e-7 * scale)


def test_ig_steps_match_captum_parameters():
    from captum.attr._utils.approximation_methods import approximation_parameters

    for method in IG_METHODS:
        sizes, alphas = approximation_parameters(method)
        a, w = ig_steps(11, method)
        assert list(a) == pytest.approx(alphas(11), abs=0, rel=0)
        assert list(w) == pytest.approx(sizes(11), rel=1e-15)


def test_integrated_gradients_float32_matches_captum(captum_attr):
    m = make_model(torch.float32)
    x, t = make_batch(dtype=torch.float32)
    want = captum_call(lambda: captum_attr.IntegratedGradients(m).attribute(
        x.clone(), target=t, n_steps=20))
    got = integrated_gradients(m, x, t, steps=20)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want.detach().float(), rtol=1e-4, atol=1e-5)


def test_integrated_gradients_completeness():
    m = make_model(act=nn.Softplus())  # smooth: Gauss-Legendre converges fast
    x, t = make_batch(4)
    for baseline in ("zero", torch.full((1, 3, 1, 1), 0.3, dtype=torch.float64)):
        attr = integrated_gradients(m, x, t, steps=50, baseline=baseline)
        gap = completeness_gap(m, x, t, attr, baseline=baseline)
        with torch.no_grad():
            b = torch.zeros_like(x) if isinstance(baseline, str) else baseline.expand_as(x)
            delta = m(x)[torch.arange(4), t] - m(b)[torch.arange(4), t]
        assert delta.abs().min() > 1e-3  # the check is not trivially 0 = 0
        assert gap.abs().max() < 1e-8 * delta.abs().max()
    # a ReLU net is only piecewise smooth: the gap shrinks with more steps
    m = make_model()
    gaps = [completeness_gap(m, x, t, integrated_gradients(m, x, t, steps=s,
                                                           method="riemann_trapezoid"))
            for s in (8, 256)]
    assert gaps[1].abs().max() < gaps[0].abs().max()
    # a deliberately wrong attribution fails the check
    wrong = integrated_gradients(m, x, t, steps=256) * 1.1
    assert completeness_gap(m, x, t, wrong).abs().max() > 1e-3


def test_integrated_gradients_mean_baseline(captum_attr):
    m = make_model(with_mean=True)
    x, t = make_batch()
    got = integrated_gradients(m, x, t, baseline="mean", steps=8)
    base = m.mean.expand_as(x).contiguous()
    want = captum_call(lambda: captum_attr.IntegratedGradients(m).attribute(
        x.clone(), baselines=base, target=t, n_steps=8))
    torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-7 * want.abs().max().item())
    assert not torch.allclose(got, integrated_gradients(m, x, t, baseline="zero", steps=8))
    plain = make_model()
    with pytest.raises(RobenchError, match="mean"):
        integrated_gradients(plain, x, t, baseline="mean")
    with pytest.raises(RobenchError, match="zero"):
        integrated_gradients(plain, x, t, baseline="black")
    with pytest.raises(RobenchError, match="broadcast"):
        integrated_gradients(plain, x, t, baseline=torch.zeros(2, 3, 8, 8))
    with pytest.raises(RobenchError, match="gausslegendre"):
        integrated_gradients(plain, x, t, method="simpson")


# ---------------------------------------------------------------- SmoothGrad


class Quadratic(nn.Module):
    """logit_k(x) = sum_i W_ki x_i^2, so d logit_k / dx = 2 W_k x (analytic SmoothGrad)."""

    def __init__(self, d: int = 12, k: int = 3) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(k, d, generator=torch.Generator().manual_seed(0),
                                          dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x) @ self.w.T


def test_smoothgrad_matches_analytic_expectation():
    m = Quadratic()
    x = torch.rand(2, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.tensor([0, 2])
    sigma, samples = 0.2, 4000
    w = m.w.detach()[t]
    mu, s = 2 * w * x, 2 * w * sigma  # per-sample gradient ~ N(mu, s^2)
    g = torch.Generator().manual_seed(0)
    sq = smoothgrad(m, x, t, samples=samples, sigma=sigma, generator=g)
    se_sq = ((2 * s**4 + 4 * mu**2 * s**2) / samples).sqrt()
    assert ((sq - (mu**2 + s**2)).abs() <= 5 * se_sq).all()
    plain = smoothgrad(m, x, t, samples=samples, sigma=sigma, squared=False, generator=g)
    assert ((plain - mu).abs() <= 5 * s.abs() / samples**0.5).all()
    # the noise is really there: far from the noiseless saliency^2 relative to the error
    assert ((sq - mu**2).abs() > 5 * se_sq).any()


def test_smoothgrad_matches_captum_noise_tunnel_statistically(captum_attr):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    x = torch.rand(2, 6, dtype=torch.float64)
    t = torch.tensor([1, 2])
    sigma, M = 0.3, 3000
    ours = smoothgrad(m, x, t, samples=M, sigma=sigma,
                      generator=torch.Generator().manual_seed(1))
    # per-sample spread from M single-sample runs of our own implementation
    single = smoothgrad(m, x.repeat(M, 1), t.repeat(M), samples=1, sigma=sigma,
                        generator=torch.Generator().manual_seed(2)).view(M, 2, 6)
    se = single.std(0) / M**0.5
    torch.manual_seed(3)
    nt = captum_attr.NoiseTunnel(captum_attr.Saliency(m))
    theirs = captum_call(lambda: nt.attribute(x.clone(), nt_type="smoothgrad_sq", nt_samples=M,
                                              stdevs=sigma, target=t, abs=False))
    z = (ours - theirs.detach()) / (2**0.5 * se + 1e-300)
    assert z.abs().max() < 6
    torch.testing.assert_close(single.mean(0), ours, rtol=0.1, atol=6 * se.max().item())


def test_smoothgrad_reproducible_and_chunk_independent():
    m = make_model()
    x, t = make_batch()
    a = smoothgrad(m, x, t, samples=5, generator=torch.Generator().manual_seed(7))
    b = smoothgrad(m, x, t, samples=5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    for ibs in (1, 2, 4, 7):
        c = smoothgrad(m, x, t, samples=5, internal_batch_size=ibs,
                       generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(c, a, rtol=1e-12, atol=1e-15)
    d = smoothgrad(m, x, t, samples=5, generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(a, d)
    assert (a >= 0).all()


def test_smoothgrad_tiny_sigma_approaches_saliency():
    m = make_model(act=nn.Softplus())
    x, t = make_batch()
    sal = saliency(m, x, t)
    g = torch.Generator().manual_seed(0)
    scale = sal.abs().max().item()
    torch.testing.assert_close(smoothgrad(m, x, t, samples=3, sigma=1e-7, generator=g), sal**2,
                               rtol=1e-5, atol=1e-6 * scale**2)
    torch.testing.assert_close(
        smoothgrad(m, x, t, samples=3, sigma=1e-7, squared=False, generator=g), sal,
        rtol=1e-5, atol=1e-6 * scale)
    # and not trivially: at sigma = 0.2 the maps differ clearly
    far = smoothgrad(m, x, t, samples=3, sigma=0.2, generator=g)
    assert (far - sal**2).abs().max() > 1e-2 * scale**2


# ---------------------------------------------------------------- side effects, modes


def options(name: str) -> dict:
    """Small, deterministic options per method (fresh generator each call)."""
    return {
        "saliency": {},
        "input_x_gradient": {},
        "integrated_gradients": {"steps": 4, "internal_batch_size": 5},
        "smoothgrad": {"samples": 3, "internal_batch_size": 4,
                       "generator": torch.Generator().manual_seed(0)},
    }[name]


@pytest.mark.parametrize("name", sorted(ATTRIBUTIONS))
@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_and_no_side_effects(name, training):
    m = make_model(dtype=torch.float32)
    m.train(training)
    x, t = make_batch(dtype=torch.float32)
    x_before = x.clone()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m.head.weight.grad = torch.full_like(m.head.weight, 3.0)  # pre-existing grad: keep it
    out = attribute(name, m, x, t, **options(name))
    assert m.training is training
    assert all(mod.training is training for mod in m.modules())
    for k, v in m.state_dict().items():  # BN running stats and num_batches_tracked unchanged
        assert torch.equal(v, state[k]), k
    assert torch.equal(m.head.weight.grad, torch.full_like(m.head.weight, 3.0))
    assert m.head.bias.grad is None and m.features[0].weight.grad is None
    assert torch.equal(x, x_before) and not x.requires_grad and x.grad is None
    assert out.shape == x.shape and out.dtype == torch.float32 and not out.requires_grad
    # eval-mode semantics: identical to the result computed on a model already in eval
    m.eval()
    torch.testing.assert_close(out, attribute(name, m, x, t, **options(name)))


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", sorted(ATTRIBUTIONS))
def test_mode_restored_on_exception(name):
    m = Exploding().train()
    with pytest.raises(RuntimeError, match="boom"):
        attribute(name, m, torch.rand(2, 4), torch.tensor([0, 1]))
    assert m.training


@pytest.mark.parametrize("name", ["saliency", "input_x_gradient", "integrated_gradients"])
def test_batch_independent_and_works_under_no_grad(name):
    """(SmoothGrad is left out: its noise draw depends on the batch shape.)"""
    m = make_model()
    x, t = make_batch(4)
    kw = options(name)
    full = attribute(name, m, x, t, **kw)
    with torch.no_grad():
        alone = attribute(name, m, x[1:2], t[1:2], **kw)
    torch.testing.assert_close(full[1:2], alone, rtol=1e-10, atol=1e-12)


def test_registry_and_validation_errors():
    m = make_model()
    x, t = make_batch()
    assert set(ATTRIBUTIONS) == {"saliency", "integrated_gradients", "input_x_gradient",
                                 "smoothgrad"}
    with pytest.raises(RobenchError, match="integrated_gradients.*saliency"):
        attribute("gradcam", m, x, t)
    with pytest.raises(RobenchError, match="n_steps.*valid options: baseline"):
        attribute("integrated_gradients", m, x, t, n_steps=3)
    torch.testing.assert_close(attribute("saliency", m, x, t), saliency(m, x, t))
    with pytest.raises(ValueError, match="labels"):
        saliency(m, x, t[:2])
    with pytest.raises(ValueError, match="target labels"):
        saliency(m, x, torch.tensor([0, 1, 9]))
    with pytest.raises(TypeError):
        saliency(m, (x * 255).to(torch.uint8), t)
