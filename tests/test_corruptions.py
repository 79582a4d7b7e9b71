"""ImageNet-C / CIFAR-10-C corruptions: names, torch noise versions, the reference library wrapper."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import torch
from conftest import reference_noise  # tests/ is on sys.path (no package)

from robench.corruptions import (
    ALL,
    COMMON,
    EXTRA,
    GROUPS,
    PARAMETERS,
    TORCH_CORRUPTIONS,
    corrupt_images,
    image_seed,
    make_generator,
    noise,
    parameter_table,
    resolve_corruptions,
    torch_corrupt,
)
from robench.data import load_dataset
from robench.errors import RobenchError


@pytest.fixture(scope="module")
def imagecorruptions():  # type: ignore[no-untyped-def]
    """The reference library (the corruptions extra), for the tests that compare with it directly."""
    return pytest.importorskip("imagecorruptions")

SEVERITIES = (1, 2, 3, 4, 5)
K = 5.0  # allowed difference, in standard errors of the difference (two independent samples)

# Hendrycks' CIFAR-10-C values, hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py
CIFAR10_C_SOURCE = {
    "gaussian_noise": [0.04, 0.06, .08, .09, .10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [.01, .02, .03, .05, .07],
    "speckle_noise": [.06, .1, .12, .16, .2],
}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """64 real CIFAR-10 test images, uint8 N×H×W×C."""
    return load_dataset("sample", limit=64).images


def as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def torch_change(images: np.ndarray, name: str, severity: int, table: str, seed: int) -> np.ndarray:
    """(corrupted − clean) in uint8 units from the torch version, N×H×W×C float64."""
    out = torch_corrupt(as_float(images), name, severity, table=table, generator=make_generator(seed))
    out255 = out.mul(255.0).permute(0, 2, 3, 1).double().numpy()
    assert np.array_equal(out255, np.round(out255)), "quantized output must be whole multiples of 1/255"
    return out255 - images


def moments(d: np.ndarray) -> tuple[float, float, float]:
    d = d.astype(np.float64).ravel()
    mean = d.mean()
    var = d.var()
    m4 = ((d - mean) ** 4).mean()
    return mean, var, m4


def assert_same_distribution(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Mean and variance of two samples of per-pixel changes agree within K standard errors.

    SE(mean_a − mean_b) = sqrt(var_a/n + var_b/n); SE(var_a − var_b) = sqrt((m4_a − var_a²)/n + (m4_b − var_b²)/n),
    the large-sample standard errors of a sample mean and a sample variance (m4: 4th central moment).
    """
    n = a.size
    ma, va, m4a = moments(a)
    mb, vb, m4b = moments(b)
    se_mean = math.sqrt(va / n + vb / n)
    se_var = math.sqrt(max(m4a - va**2, 0.0) / n + max(m4b - vb**2, 0.0) / n)
    assert abs(ma - mb) <= K * se_mean, f"{what}: mean {ma:.4f} vs {mb:.4f} (SE {se_mean:.4f})"
    assert abs(va - vb) <= K * se_var, f"{what}: variance {va:.3f} vs {vb:.3f} (SE {se_var:.3f})"


def assert_same_proportion(ka: int, kb: int, n: int, what: str) -> None:
    """Two binomial counts out of n agree within K standard errors of the difference."""
    pa, pb = ka / n, kb / n
    p = (ka + kb) / (2 * n)
    se = math.sqrt(2 * p * (1 - p) / n)
    assert abs(pa - pb) <= K * se, f"{what}: {pa:.5f} vs {pb:.5f} (SE {se:.5f})"


# ---------------------------------------------------------------------------------------- names


def test_names_and_groups_match_the_library(imagecorruptions) -> None:
    names = imagecorruptions.get_corruption_names
    assert list(COMMON) == names("common") and len(COMMON) == 15
    assert list(EXTRA) == names("validation") and len(EXTRA) == 4
    assert list(ALL) == names("all")
    for group in ("noise", "blur", "weather", "digital", "all"):
        assert list(GROUPS[group]) == names(group)
    assert GROUPS["extra"] == EXTRA


def test_resolve_corruptions() -> None:
    assert resolve_corruptions("noise") == ["gaussian_noise", "shot_noise", "impulse_noise"]
    assert resolve_corruptions("all") == list(ALL)
    assert resolve_corruptions("gaussian_noise,fog") == ["gaussian_noise", "fog"]
    assert resolve_corruptions(" Noise , fog,gaussian_noise ") == ["gaussian_noise", "shot_noise", "impulse_noise", "fog"]
    assert resolve_corruptions("extra") == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    for bad in ("gausian_noise", "noise,fgo", "", " , "):
        with pytest.raises(RobenchError) as err:
            resolve_corruptions(bad)
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------- parameter tables


def test_parameter_table_by_size_and_override() -> None:
    assert parameter_table(32) == "cifar10-c"
    assert parameter_table(63) == "cifar10-c"
    assert parameter_table(64) == "imagenet-c"
    assert parameter_table(224) == "imagenet-c"
    assert parameter_table(32, override="imagenet-c") == "imagenet-c"
    assert parameter_table(224, override="CIFAR10-C") == "cifar10-c"
    with pytest.raises(RobenchError):
        parameter_table(32, override="tiny-imagenet-c")


def test_imagenet_table_is_the_librarys(imagecorruptions) -> None:  # type: ignore[no-untyped-def]
    """The ImageNet-C table equals the ``c = [...]`` lists in the installed library's source."""
    for name in TORCH_CORRUPTIONS:
        source = inspect.getsource(getattr(imagecorruptions, name))
        listed = re.search(r"c = \[([^\]]*)\]", source)
        assert listed is not None, name
        values = [float(v) for v in listed.group(1).split(",")]
        assert list(PARAMETERS["imagenet-c"][name]) == values, name


def test_cifar_table_is_hendrycks() -> None:
    for name in TORCH_CORRUPTIONS:
        assert list(PARAMETERS["cifar10-c"][name]) == CIFAR10_C_SOURCE[name], name


# ------------------------------------------------------------- torch versions vs the reference


@pytest.fixture(params=["levels", "formulas"])
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which CPU computation runs: the exact-level sampler (the default for uint8 inputs) or the torch formulas."""
    if request.param == "formulas":
        monkeypatch.setattr(noise, "_levels", lambda *args, **kwargs: None)
    return request.param


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_torch_matches_library_imagenet_c(images: np.ndarray, name: str, severity: int, cpu_path: str) -> None:
    lib = corrupt_images(images, name, severity, seed=11).astype(np.float64) - images
    tor = torch_change(images, name, severity, "imagenet-c", seed=12)
    assert_same_distribution(lib, tor, f"{name} s{severity}")
    if name == "impulse_noise":
        n = lib.size
        assert_same_proportion(int((lib != 0).sum()), int((tor != 0).sum()), n, "changed fraction")
        changed = int((lib != 0).sum()) + int((tor != 0).sum())
        salt = (lib > 0).sum() / max((lib != 0).sum(), 1), (tor > 0).sum() / max((tor != 0).sum(), 1)
        se = math.sqrt(0.25 * 2 / (changed / 2))
        assert abs(salt[0] - salt[1]) <= K * se, f"salt share {salt}"
        # values that change become 0 or 255, in both
        assert set(np.unique((images + tor)[tor != 0])) <= {0.0, 255.0}
        assert set(np.unique((images + lib)[lib != 0])) <= {0.0, 255.0}


def cifar_reference(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Hendrycks' make_cifar_c.py noise functions (values above), per image, then np.uint8 like its saving."""
    rng = np.random.default_rng(seed)
    c = CIFAR10_C_SOURCE[name][severity - 1]
    return np.stack([reference_noise(np.array(img) / 255.0, name, c, rng) for img in images])


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_torch_matches_cifar10_c_reference(images: np.ndarray, name: str, severity: int, cpu_path: str) -> None:
    ref = cifar_reference(images, name, severity, seed=21).astype(np.float64) - images
    tor = torch_change(images, name, severity, "cifar10-c", seed=22)
    assert_same_distribution(ref, tor, f"{name} s{severity} (CIFAR-10-C)")


def test_tables_differ_measurably(images: np.ndarray) -> None:
    """The check above can tell the two tables apart (CIFAR-10-C gaussian s5 σ=.10 vs ImageNet-C s1 σ=.08)."""
    lib = corrupt_images(images, "gaussian_noise", 1, seed=11).astype(np.float64) - images
    tor = torch_change(images, "gaussian_noise", 5, "cifar10-c", seed=12)
    with pytest.raises(AssertionError):
        assert_same_distribution(lib, tor, "different parameters")


# --------------------------------------------------------------------- torch versions: contract


@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_torch_determinism(images: np.ndarray, name: str) -> None:
    x = as_float(images[:8])
    a = torch_corrupt(x, name, 3, table="imagenet-c", generator=make_generator(5))
    b = torch_corrupt(x, name, 3, table="imagenet-c", generator=make_generator(5))
    c = torch_corrupt(x, name, 3, table="imagenet-c", generator=make_generator(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_torch_range_shape_dtype(images: np.ndarray, name: str, dtype: torch.dtype) -> None:
    x = as_float(images[:4]).to(dtype)
    before = x.clone()
    for quantize in (True, False):
        out = torch_corrupt(x, name, 5, table="imagenet-c", generator=make_generator(0), quantize=quantize)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert out.min() >= 0 and out.max() <= 1
        scaled = out * 255  # k/255 times 255 gives k back exactly in float32 and float64
        if quantize:
            assert torch.equal(scaled, scaled.round())
        elif name in ("gaussian_noise", "speckle_noise"):  # shot noise at c=3 is 85·k, impulse keeps values
            assert not torch.equal(scaled, scaled.round())
    assert torch.equal(x, before), "the input must not be modified"


def test_torch_quantize_truncates_like_the_library() -> None:
    """np.uint8 truncates: an untouched value of 100.9/255 becomes 100/255 (rounding would give 101)."""
    x = torch.full((1, 1, 64, 64), 100.9 / 255)
    out = torch_corrupt(x, "impulse_noise", 1, table="imagenet-c", generator=make_generator(0))
    unchanged = out[(out > 0) & (out < 1)]
    assert torch.allclose(unchanged * 255, torch.full_like(unchanged, 100.0))


def test_torch_errors(images: np.ndarray) -> None:
    x = as_float(images[:2])
    g = make_generator(0)
    for kwargs in (
        {"name": "fog", "severity": 1},  # no torch version
        {"name": "gausian_noise", "severity": 1},
        {"name": "gaussian_noise", "severity": 0},
        {"name": "gaussian_noise", "severity": 6},
        {"name": "gaussian_noise", "severity": 2.0},
    ):
        with pytest.raises(RobenchError):
            torch_corrupt(x, kwargs["name"], kwargs["severity"], table="imagenet-c", generator=g)
    with pytest.raises(RobenchError):
        torch_corrupt(x, "gaussian_noise", 1, table="tiny-c", generator=g)
    with pytest.raises(RobenchError):
        torch_corrupt((x * 255).to(torch.uint8), "gaussian_noise", 1, table="imagenet-c", generator=g)
    with pytest.raises(RobenchError):
        torch_corrupt(x[0], "gaussian_noise", 1, table="imagenet-c", generator=g)
    assert torch_corrupt(x, "gaussian_noise", np.int64(2), table="imagenet-c", generator=g).shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_torch_runs_on_cuda(images: np.ndarray, name: str) -> None:
    x = as_float(images[:8]).cuda()
    a = torch_corrupt(x, name, 3, table="cifar10-c", generator=make_generator(1, "cuda"))
    b = torch_corrupt(x, name, 3, table="cifar10-c", generator=make_generator(1, "cuda"))
    assert a.is_cuda and torch.equal(a, b)
    with pytest.raises(RobenchError):
        torch_corrupt(x, name, 3, table="cifar10-c", generator=make_generator(1))


# ---------------------------------------------------------------------------- library wrapper


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "fog"])
def test_library_repeats_across_workers_and_seeds(images: np.ndarray, name: str) -> None:
    state = np.random.get_state()
    a = corrupt_images(images[:12], name, 3, seed=7)
    assert np.array_equal(a, corrupt_images(images[:12], name, 3, seed=7))
    assert np.array_equal(a, corrupt_images(images[:12], name, 3, seed=7, workers=2, chunk_size=5))
    assert not np.array_equal(a, corrupt_images(images[:12], name, 3, seed=8))
    assert not np.array_equal(a, corrupt_images(images[:12], name, 4, seed=7))
    # an image's result depends on its position, not on the call it came in
    part = corrupt_images(images[5:9], name, 3, seed=7, positions=np.arange(5, 9))
    assert np.array_equal(part, a[5:9])
    assert a.shape == images[:12].shape and a.dtype == np.uint8
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2] == after[2], "global RNG state must be restored"


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "snow"])
def test_library_wrapper_is_the_library(images: np.ndarray, name: str, imagecorruptions) -> None:
    """Each image equals imagecorruptions.corrupt seeded with image_seed (global RNG and, for impulse, seed=)."""
    out = corrupt_images(images[:3], name, 2, seed=9)
    for i in range(3):
        s = image_seed(9, name, 2, i)
        np.random.seed(s)
        kwargs = {"seed": s} if name == "impulse_noise" else {}
        assert np.array_equal(out[i], imagecorruptions.corrupt(images[i], 2, name, **kwargs))


@pytest.mark.slow
def test_library_every_corruption_runs_and_repeats(images: np.ndarray) -> None:
    img = images[:1]
    for name in ALL:
        a = corrupt_images(img, name, 2, seed=3)
        assert a.shape == img.shape and a.dtype == np.uint8, name
        assert np.array_equal(a, corrupt_images(img, name, 2, seed=3)), name


def test_library_small_and_odd_images(images: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    for shape in ((2, 8, 8, 3), (2, 16, 16, 3), (2, 28, 28, 1), (2, 31, 32, 3)):
        with pytest.raises(RobenchError) as err:
            corrupt_images(rng.integers(0, 256, shape, dtype=np.uint8), "gaussian_noise", 1, seed=0)
        assert "32" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RobenchError):
        corrupt_images(rng.integers(0, 256, (2, 32, 32, 4), dtype=np.uint8), "gaussian_noise", 1, seed=0)
    with pytest.raises(RobenchError):
        corrupt_images(images.astype(np.float32), "gaussian_noise", 1, seed=0)
    with pytest.raises(RobenchError):
        corrupt_images(images[:2], "gausian_noise", 1, seed=0)
    with pytest.raises(RobenchError):
        corrupt_images(images[:2], "gaussian_noise", 6, seed=0)
    gray = images[:4, :, :, :1].copy()
    out = corrupt_images(gray, "gaussian_noise", 3, seed=0)
    assert out.shape == gray.shape and out.dtype == np.uint8 and not np.array_equal(out, gray)
    # the kept channel carries full-strength noise (not a 3-channel average)
    d = out.astype(np.float64) - gray
    assert 0.8 * 0.18 * 255 < d.std() < 1.05 * 0.18 * 255


@pytest.mark.parametrize("name", TORCH_CORRUPTIONS)
def test_cpu_output_does_not_depend_on_the_thread_count(images: np.ndarray, name: str) -> None:
    x = as_float(images[:70])  # three chunks, the last one partial
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 3):
            torch.set_num_threads(threads)
            outs.append(torch_corrupt(x, name, 3, table="imagenet-c", generator=make_generator(3)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])
    # each chunk has its own stream: the chunks' noise differs
    delta = outs[0] - x
    assert not torch.equal(delta[:32], delta[32:64])


def test_cpu_chunks_keep_their_order_and_raise_from_any_thread() -> None:
    x = torch.zeros(200, 1, 2, 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert noise._on_chunks(x, lambda part, i: (part.start, i)) == [(32 * i, i) for i in range(7)]

        def fail_on_chunk_5(part: slice, i: int) -> None:
            if i == 5:
                raise RuntimeError("chunk 5")

        for _ in range(3):  # whichever thread takes chunk 5
            with pytest.raises(RuntimeError, match="chunk 5"):
                noise._on_chunks(x, fail_on_chunk_5)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("quantize", [True, False])
def test_torch_empty_batch_and_inputs_that_require_grad(quantize: bool) -> None:
    empty = torch.zeros(0, 3, 8, 8)
    out = torch_corrupt(empty, "shot_noise", 2, table="imagenet-c", generator=make_generator(0), quantize=quantize)
    assert out.shape == empty.shape and out.dtype == empty.dtype
    x = torch.randint(0, 256, (2, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float().div(255)
    plain = torch_corrupt(x, "gaussian_noise", 2, table="imagenet-c", generator=make_generator(1), quantize=quantize)
    tracked = torch_corrupt(x.clone().requires_grad_(), "gaussian_noise", 2, table="imagenet-c",
                            generator=make_generator(1), quantize=quantize)
    assert torch.equal(plain, tracked) and not tracked.requires_grad
