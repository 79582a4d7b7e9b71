"""The fast recipe (`cifar10-fast`): patch whitening, one-cycle schedule, N-FGSM, per-method preset settings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from robench.attacks.pgd import n_fgsm
from robench.data import load_dataset
from robench.models.architectures import PatchWhitening
from robench.models.loading import load_model
from robench.models.registry import create_model
from robench.train.config import preset
from robench.train.trainer import _make_scheduler
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    x, _ = load_dataset("sample", limit=200).batch(0, 200)
    return x


def test_whitening_gives_patches_identity_covariance(images: torch.Tensor) -> None:
    """Direct check: the whitened 2×2 patches of the fitting images have zero mean and covariance ≈ I."""
    layer = PatchWhitening(3, eps=0.0)
    layer.init_from_data(images)
    out = layer(images.double().float())
    first_half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()  # the other 12 channels are negations
    assert torch.allclose(out[:, 12:], -out[:, :12], atol=1e-5)
    assert first_half.mean(0).abs().max() < 1e-3
    assert torch.allclose(torch.cov(first_half.T), torch.eye(12, dtype=torch.float64), atol=2e-2)


def test_whitening_is_frozen_and_saved(images: torch.Tensor) -> None:
    net = create_model("airbench_s")
    net.init_from_data(images)
    assert "whiten.weight" in net.state_dict() and "whiten.bias" in net.state_dict()
    assert not any(name.startswith("whiten") for name, _ in net.named_parameters())
    assert net.whiten.weight.abs().sum() > 0


def test_onecycle_schedule_warms_up_then_decays_to_zero() -> None:
    from robench.train.config import TrainConfig

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
    sched = _make_scheduler(opt, TrainConfig(out="x.pt", epochs=2, schedule="onecycle", warmup=0.25, lr=0.4), 10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0 and lrs[5] == pytest.approx(0.4) and lrs[-1] == pytest.approx(0.4 / 15)
    assert all(a < b for a, b in zip(lrs[:5], lrs[1:6])) and all(a > b for a, b in zip(lrs[5:], lrs[6:]))


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_onecycle_schedule_of_a_few_steps_trains_at_a_positive_rate(steps: int) -> None:
    from robench.train.config import TrainConfig  # a one-batch smoke run once divided by zero after its last step

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
    sched = _make_scheduler(opt, TrainConfig(out="x.pt", epochs=1, schedule="onecycle", warmup=0.9, lr=0.4), steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) > 0 and opt.param_groups[0]["lr"] >= 0


def test_plateau_schedule_waits_patience_epochs_before_dropping() -> None:
    from robench.train.config import TrainConfig
    from robench.train.trainer import _step_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = _make_scheduler(opt, TrainConfig(out="x.pt", schedule="plateau", plateau_patience=2, lr=0.1), 10)
    lrs = []
    for loss in (1.0, 1.0, 1.0, 1.0, 0.5):  # no improvement after the first epoch
        _step_scheduler(sched, loss)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01])  # the third epoch without improvement drops it


def test_reference_preset_follows_the_igd_authors_recipe() -> None:
    ref = preset("cifar10-reference", "igd")
    assert (ref["epochs"], ref["batch_size"], ref["schedule"], ref["plateau_patience"]) == (150, 128, "plateau", 10)
    assert (ref["inner_attack"], ref["attack_steps"], ref["igd_fraction"]) == ("pgd", 10, 1.0)
    assert ref["step_size"] == pytest.approx(2 / 255) and ref["label_smoothing"] == 0.0


def test_n_fgsm_is_one_unprojected_step_from_wide_noise(images: torch.Tensor) -> None:
    model = tiny_model().eval()
    x, y = images[:16], torch.zeros(16, dtype=torch.long)
    eps = 8 / 255
    adv = n_fgsm(model, x, y, eps=eps, step_size=eps, generator=torch.Generator().manual_seed(0))
    assert adv.min() >= 0 and adv.max() <= 1
    delta = (adv - x).abs()
    assert delta.max() <= 3 * eps + 1e-6 and delta.max() > 2 * eps  # beyond the ε-ball: no projection
    # the same noise, then one signed-gradient step of ε: written out independently
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    start = (x + (noise * 2 - 1) * 2 * eps).clamp(0, 1).requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(start), y, reduction="sum"), start)
    assert torch.allclose(adv, (start + eps * grad.sign()).clamp(0, 1), atol=1e-6)


def test_preset_sets_label_smoothing_for_standard_training_only() -> None:
    assert preset("cifar10-fast", "standard")["label_smoothing"] == 0.2 and preset("cifar10-fast")["epochs"] == 20
    adversarial = preset("cifar10-fast", "pgd-at")
    assert "label_smoothing" not in adversarial and "methods" not in adversarial
    assert adversarial["inner_attack"] == "n-fgsm" and adversarial["step_size"] == pytest.approx(8 / 255)


@pytest.mark.parametrize("method,extra", [("standard", ["--arch", "airbench_s"]),
                                          ("pgd-at", ["--arch", "airbench_s", "--inner-attack", "pgd"])])
def test_fast_preset_trains_every_method_kind(cli, small_npz: Path, tmp_path: Path, method: str,  # type: ignore[no-untyped-def]
                                              extra: list[str]) -> None:
    out = tmp_path / "m.pt"
    r = cli("train", "--preset", "cifar10-fast", "--method", method, "--data", f"npz:{small_npz}", "--epochs", "2",
            "--batch-size", "32", "--eval-limit", "16", "--eval-pgd-steps", "2", "--device", "cpu", "--out", out, *extra)
    assert r.code == 0, r.err
    model = load_model(str(out))
    config = model.info.training["config"]
    assert config["arch"] == "airbench_s" and config["schedule"] == "onecycle" and config["nesterov"]
    assert config["label_smoothing"] == (0.2 if method == "standard" else 0.0)
    assert model.net.whiten.weight.abs().sum() > 0  # fitted from the training images, and saved
    log = pd.read_csv(f"{out}.log.csv")
    assert len(log) == 2 and log["lr"].iloc[-1] == 0  # one cycle ends at 0


def test_trades_refuses_another_inner_attack(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("train", "--method", "trades", "--inner-attack", "n-fgsm", "--arch", "cnn_tiny", "--data",
            f"npz:{small_npz}", "--epochs", "1", "--out", tmp_path / "m.pt")
    assert r.code == 2 and "own KL attack" in r.err
    r = cli("train", "--inner-attack", "fgsm", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--epochs", "1",
            "--out", tmp_path / "m.pt")
    assert r.code == 2 and "unknown inner attack" in r.err
