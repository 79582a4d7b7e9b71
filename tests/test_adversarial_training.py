"""PGD-AT, TRADES, IGD and TRADES+IGD: losses, the IGD gradient, mixed precision, presets, teacher checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from robench.models.checkpoint import save_checkpoint
from robench.train import METHODS
from robench.train.adversarial import IGD, PGDAT, TRADES, AttackSettings, input_gradient
from tests.conftest import tiny_model

ATTACK = AttackSettings(eps=8 / 255, steps=2, step_size=4 / 255)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    from robench.data import load_dataset

    return load_dataset("sample", limit=8).batch(0, 8)


def test_igd_loss_is_ce_plus_lambda_times_cosine_distance(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    student, teacher = tiny_model(seed=1).train(), tiny_model(seed=2)
    method = IGD(teacher, AttackSettings(eps=8 / 255, steps=0, step_size=0.0), lam=2.0)
    g = torch.Generator().manual_seed(0)
    loss, parts = method.loss(student, x, y, g, student)
    # independent computation: steps=0 and a random start → x_adv is x + U(-ε, ε); recompute from the same draw
    x_adv = (x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 8 / 255).clamp(0, 1)
    ce = F.cross_entropy(student(x_adv), y)
    teacher.eval()
    xt = x.clone().requires_grad_()
    gt = torch.autograd.grad(teacher(xt).gather(1, y[:, None]).sum(), xt)[0]
    xs = x.clone().requires_grad_()
    gs = torch.autograd.grad(student(xs).gather(1, y[:, None]).sum(), xs)[0]
    cos = F.cosine_similarity(gs.flatten(1), gt.flatten(1), dim=1)
    assert parts["igd"] == pytest.approx(float((1 - cos).mean()), rel=1e-4)
    assert float(loss.detach()) == pytest.approx(float(ce) + 2.0 * float((1 - cos).mean()), rel=1e-4)


def test_igd_term_trains_the_student_through_double_backprop(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    student, teacher = tiny_model(seed=1).train(), tiny_model(seed=2)
    method = IGD(teacher, ATTACK, lam=1.0)
    _, before = method.loss(student, x, y, torch.Generator().manual_seed(0), student)
    opt = torch.optim.SGD(student.parameters(), lr=1.0)
    for _ in range(25):  # only the IGD term: λ large, CE scaled away
        student.train()
        grad_s = input_gradient(student, x, y, create_graph=True)
        teacher_grad = input_gradient(teacher.eval(), x, y).detach()
        loss = (1 - F.cosine_similarity(grad_s.flatten(1), teacher_grad.flatten(1), dim=1)).mean()
        opt.zero_grad()
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
        opt.step()
    _, after = method.loss(student, x, y, torch.Generator().manual_seed(0), student)
    assert after["cos"] > before["cos"] + 0.05
    assert all(p.grad is None for p in teacher.parameters())


def test_igd_gradient_under_bf16_autocast_matches_float32(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    student, teacher = tiny_model(seed=1).train(), tiny_model(seed=2)
    # no PGD steps: sign() of a bf16 gradient flips entries, which is expected and not what this checks
    method = IGD(teacher, AttackSettings(eps=8 / 255, steps=0, step_size=0.0), lam=20.0)

    def grads(amp: bool) -> torch.Tensor:
        student.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss, _ = method.loss(student, x, y, torch.Generator().manual_seed(0), student)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in student.parameters()])

    state = {k: v.clone() for k, v in student.state_dict().items()}
    full = grads(False)
    student.load_state_dict(state)  # BatchNorm statistics moved in the first pass
    mixed = grads(True)
    assert F.cosine_similarity(full, mixed, dim=0) > 0.99
    student.load_state_dict(state)
    method.lam = 0.0  # the same check must fail if the cosine term's gradient were lost
    assert F.cosine_similarity(full, grads(False), dim=0) < 0.95


@pytest.mark.parametrize("cls", [PGDAT, TRADES])
def test_adversarial_losses_exceed_clean_loss(batch: tuple[torch.Tensor, torch.Tensor], cls: type) -> None:
    x, y = batch
    model = tiny_model().train()
    loss, parts = cls(ATTACK).loss(model, x, y, torch.Generator().manual_seed(0), model)
    assert torch.isfinite(loss) and "ce" in parts
    if cls is PGDAT:
        with torch.no_grad():
            assert float(loss) > float(F.cross_entropy(model(x), y))


def test_igd_lambda_warmup_scales_the_cosine_term(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """With lam_warmup w, λ at progress p is λ · min(1, p / w): CE is learned before the cosine term weighs in."""
    x, y = batch
    student, teacher = tiny_model(seed=1).train(), tiny_model(seed=2)
    method = IGD(teacher, AttackSettings(eps=8 / 255, steps=0, step_size=0.0), lam=2.0, lam_warmup=0.5)
    for progress, lam in ((0.0, 0.0), (0.25, 1.0), (0.75, 2.0)):
        method.progress = progress
        loss, parts = method.loss(student, x, y, torch.Generator().manual_seed(0), student)
        assert parts["lam"] == pytest.approx(lam)
        assert float(loss.detach()) == pytest.approx(parts["ce"] + lam * parts["igd"], rel=1e-5)


def test_eps_warmup_scales_the_attack(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """With eps warm-up w, the adversary at progress p has ε and step size times min(1, p / w): at p = 0 PGD-AT's
    loss is the clean cross-entropy, later it exceeds it."""
    x, y = batch
    model = tiny_model().eval()  # eval: the clean and the adversarial forward pass normalise alike
    attack = AttackSettings(eps=8 / 255, steps=2, step_size=4 / 255, warmup=0.5)
    assert attack.at(0.25) == AttackSettings(eps=4 / 255, steps=2, step_size=2 / 255)
    assert attack.at(0.9) == AttackSettings(eps=8 / 255, steps=2, step_size=4 / 255)
    method = PGDAT(attack)
    with torch.no_grad():
        clean = float(F.cross_entropy(model(x), y))
    for progress, eps in ((0.0, 0.0), (0.75, 8 / 255)):
        method.progress = progress
        loss, parts = method.loss(model, x, y, torch.Generator().manual_seed(0), model)
        assert parts["eps"] == pytest.approx(eps)
        assert (float(loss) == pytest.approx(clean, rel=1e-5)) == (eps == 0)
    assert "eps" not in PGDAT(ATTACK).loss(model, x, y, torch.Generator().manual_seed(0), model)[1]


def test_trainer_sets_the_warmup_progress(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    teacher = save_checkpoint(tiny_model(seed=3), tmp_path / "teacher.pt")
    base = ["train", "--method", "igd", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--epochs", "2",
            "--batch-size", "24", "--attack-steps", "1", "--eval-limit", "8", "--teacher", teacher, "--lam", "2"]
    r = cli(*base, "--lam-warmup", "0.5", "--out", tmp_path / "m.pt")
    assert r.code == 0, r.err
    lam = pd.read_csv(tmp_path / "m.pt.log.csv")["lam"].tolist()  # each epoch's mean λ over its steps
    assert 0 < lam[0] < 1 and lam[1] == pytest.approx(2.0)
    r = cli(*base, "--lam-warmup", "1", "--out", tmp_path / "bad.pt")
    assert r.code == 2 and "--lam-warmup must lie in [0, 1)" in r.err
    r = cli(*base, "--eps-warmup", "0.5", "--lam-warmup", "0", "--out", tmp_path / "e.pt")
    assert r.code == 0, r.err
    eps = pd.read_csv(tmp_path / "e.pt.log.csv")["eps"].tolist()  # each epoch's mean ε over its steps
    assert 0 < eps[0] < 4 / 255 and eps[1] == pytest.approx(8 / 255)
    r = cli(*base, "--eps-warmup", "-0.1", "--out", tmp_path / "bad.pt")
    assert r.code == 2 and "--eps-warmup must lie in [0, 1)" in r.err


@pytest.mark.parametrize("method", [m for m in METHODS if m != "standard"])  # every adversarial method
def test_train_cli_runs_each_method(cli, small_npz: Path, tmp_path: Path, method: str) -> None:  # type: ignore[no-untyped-def]
    teacher = save_checkpoint(tiny_model(seed=3), tmp_path / "teacher.pt")
    extra = ["--teacher", teacher] if "igd" in method else []
    r = cli("train", "--method", method, "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--epochs", "1",
            "--batch-size", "48", "--attack-steps", "2", "--eval-limit", "16", "--out", tmp_path / "m.pt", *extra)
    assert r.code == 0, r.err
    log = pd.read_csv(tmp_path / "m.pt.log.csv")
    assert "test_pgd_acc" in log.columns and 0 <= log["test_pgd_acc"].item() <= log["test_acc"].item() + 1e-9
    if "igd" in method:
        assert {"igd", "cos"} <= set(log.columns)


def test_teacher_checks_and_preset(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = ["train", "--method", "igd", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}", "--epochs", "1",
            "--out", tmp_path / "m.pt"]
    r = cli(*base)
    assert r.code == 2 and "--teacher" in r.err
    save_checkpoint(tiny_model(num_classes=5), tmp_path / "five.pt")
    r = cli(*base, "--teacher", tmp_path / "five.pt")
    assert r.code == 2 and "teacher has 5 classes" in r.err
    r = cli(*base, "--teacher", tmp_path / "nope.pt")
    assert r.code == 2 and "not found" in r.err
    r = cli("train", "--preset", "no-such", "--out", tmp_path / "x.pt")
    assert r.code == 2 and "unknown preset" in r.err


def test_preset_values_yield_to_explicit_options(cli, small_npz: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from robench.models.loading import load_model

    r = cli("train", "--preset", "cifar10-cpu", "--method", "standard", "--arch", "cnn_tiny", "--data", f"npz:{small_npz}",
            "--epochs", "1", "--batch-size", "48", "--eval-limit", "16", "--out", tmp_path / "m.pt")
    assert r.code == 0, r.err
    config = load_model(str(tmp_path / "m.pt")).info.training["config"]
    assert config["arch"] == "cnn_tiny" and config["epochs"] == 1  # explicit
    assert config["schedule"] == "cosine" and config["eps"] == pytest.approx(8 / 255)  # from the preset


def test_igd_fraction_takes_the_cosine_term_on_the_batch_head(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """fraction 0.5 on 8 images gives the cosine term of the full method on the first 4 (the batch is shuffled)."""
    x, y = batch
    teacher = tiny_model(seed=2)
    _, part = IGD(teacher, ATTACK, fraction=0.5).loss(tiny_model(seed=1).train(), x, y, torch.Generator().manual_seed(0),
                                                      tiny_model(seed=1).train())
    _, head = IGD(teacher, ATTACK).loss(tiny_model(seed=1).train(), x[:4], y[:4], torch.Generator().manual_seed(0),
                                        tiny_model(seed=1).train())
    _, whole = IGD(teacher, ATTACK).loss(tiny_model(seed=1).train(), x, y, torch.Generator().manual_seed(0),
                                         tiny_model(seed=1).train())
    assert part["igd"] == pytest.approx(head["igd"], rel=1e-5) and part["igd"] != pytest.approx(whole["igd"], rel=1e-3)
    with pytest.raises(Exception, match="igd-fraction"):
        IGD(teacher, ATTACK, fraction=0.0)
