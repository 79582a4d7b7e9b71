"""`robench train`: outputs, log, metadata, determinism, resume after an interruption, errors, augmentation."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import robench.train.trainer as trainer
from robench.data import load_dataset
from robench.devices import describe_device, resolve_device
from robench.models.loading import load_model
from robench.train.augment import random_crop_flip

LOG_COLUMNS = {"loss", "ce", "epoch", "lr", "test_acc", "seconds"}


@pytest.fixture(scope="module")
def npz128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """128 real CIFAR-10 images (the bundled sample) as an npz dataset."""
    data = load_dataset("sample", limit=128)
    path = tmp_path_factory.mktemp("data") / "s128.npz"
    np.savez(path, x=np.asarray(data.images), y=data.labels, classes=np.array(data.classes))
    return path


@pytest.fixture(scope="module")
def learnable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trivially learnable 2-class problem: dark noisy images are class 0, bright ones class 1."""
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 32)
    base = np.where(y == 1, 190, 60)[:, None, None, None]
    x = np.clip(base + rng.normal(0, 25, size=(64, 16, 16, 3)), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("data") / "easy.npz"
    np.savez(path, x=x, y=y, classes=np.array(["dark", "bright"]))
    return path


def train_args(data: Path, out: Path, *extra: object, epochs: int = 2) -> list[object]:
    return ["train", "--method", "standard", "--arch", "cnn_tiny", "--data", f"npz:{data}", "--epochs", epochs,
            "--batch-size", 32, "--eval-limit", 32, "--device", "cpu", "--out", out, *extra]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 0
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs between {a.name} and {b.name}"


def differ(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return any(not torch.equal(wa[k], wb[k]) for k in wa)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("robench: error:"), err
    return lines[0]


# ---------------------------------------------------------------------------------------------- outputs


def test_train_writes_checkpoints_log_and_metadata(cli, npz128: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.pt"
    r = cli(*train_args(npz128, out))
    assert r.code == 0, r.err
    assert "trained m" in r.out and "selected epoch" in r.out
    last, log_path, state = tmp_path / "m-last.pt", tmp_path / "m.pt.log.csv", tmp_path / "m.pt.state.pt"
    assert out.is_file() and last.is_file() and log_path.is_file()
    assert not state.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-last.pt", "m.pt", "m.pt.log.csv"]  # no temp files left

    log = pd.read_csv(log_path)
    assert set(log.columns) == LOG_COLUMNS and len(log) == 2
    assert log["epoch"].tolist() == [1, 2]
    assert log["lr"].tolist() == pytest.approx([0.1, 0.05])  # cosine over 2 epochs, recorded before stepping
    assert np.isfinite(log["loss"]).all() and (log["loss"] > 0).all()
    assert log["loss"].tolist() == pytest.approx(log["ce"].tolist())  # standard training: the loss is the CE
    assert (log["seconds"] >= 0).all()
    assert set(np.round(log["test_acc"] * 32, 6)) <= set(range(33))  # a fraction of the 32 evaluation images

    model = load_model(str(out))
    info = model.info
    assert info.arch == "cnn_tiny" and info.num_classes == 10 and info.input_size == (3, 32, 32)
    assert info.classes == load_dataset("sample").classes and info.name == "m"
    cfg = info.training["config"]
    assert cfg["method"] == "standard" and cfg["arch"] == "cnn_tiny" and cfg["epochs"] == 2 and cfg["seed"] == 0
    assert cfg["batch_size"] == 32 and cfg["eval_limit"] == 32 and cfg["data"] == f"npz:{npz128}"
    assert info.training["dataset"]["name"] == "s128" and info.training["dataset"]["n"] == 128
    assert {"robench", "torch"} <= set(info.training) 
    assert info.training["device"] == describe_device(resolve_device("auto"))  # cpu here; "cuda (NAME)" on a GPU
    selected = info.training["selected_epoch"]
    assert selected == int(np.argmax(log["test_acc"].to_numpy())) + 1  # the first epoch with the best accuracy
    last_model = load_model(str(last))
    assert [row["epoch"] for row in last_model.info.training["log"]] == [1, 2]
    assert last_model.info.training["log"][1]["loss"] == pytest.approx(log["loss"][1])
    if selected == 2:
        assert_same_weights(out, last)
    else:
        assert differ(out, last)

    # the logged test accuracy is the last model's clean accuracy on the seeded 32-image evaluation subset
    test_set = load_dataset(f"npz:{npz128}", "test", limit=32, seed=0)
    x, y = test_set.batch(0, len(test_set))
    with torch.no_grad():
        acc = float((last_model(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(log["test_acc"].iloc[-1])


def test_training_learns_an_easy_problem(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "easy.pt"
    r = cli("train", "--arch", "cnn_tiny", "--data", f"npz:{learnable}", "--epochs", 4, "--batch-size", 16,
            "--lr", 0.05, "--eval-limit", 64, "--device", "cpu", "--out", out, "--schedule", "constant")
    assert r.code == 0, r.err
    log = pd.read_csv(f"{out}.log.csv")
    assert log["lr"].tolist() == pytest.approx([0.05] * 4)
    loss = log["loss"].tolist()
    assert all(math.isfinite(v) for v in loss)
    assert loss[-1] < 0.5 * loss[0], loss
    assert log["test_acc"].max() == 1.0
    model = load_model(str(out))
    assert model.info.classes == ["dark", "bright"] and model.info.input_size == (3, 16, 16)


def test_last_checkpoint_name_keeps_dots_in_the_stem(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run.v1.pt"
    assert cli(*train_args(learnable, out, epochs=1)).code == 0
    assert (tmp_path / "run.v1-last.pt").is_file()
    assert not (tmp_path / "run.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.v1-last.pt", "run.v1.pt", "run.v1.pt.log.csv"]


def test_safetensors_output(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.safetensors"
    assert cli(*train_args(learnable, out, epochs=1)).code == 0
    assert (tmp_path / "m-last.safetensors").is_file() and (tmp_path / "m.safetensors.log.csv").is_file()
    model = load_model(str(out))
    assert model.info.arch == "cnn_tiny" and model.info.training["config"]["epochs"] == 1


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_weights_and_other_seeds_differ(cli, npz128: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        r = cli(*train_args(npz128, tmp_path / name / "m.pt", "--seed", seed, epochs=1))
        assert r.code == 0, r.err
    assert_same_weights(tmp_path / "a" / "m.pt", tmp_path / "b" / "m.pt")
    assert differ(tmp_path / "a" / "m.pt", tmp_path / "c" / "m.pt")
    log_a, log_b = pd.read_csv(tmp_path / "a" / "m.pt.log.csv"), pd.read_csv(tmp_path / "b" / "m.pt.log.csv")
    assert log_a["loss"].tolist() == log_b["loss"].tolist()


def test_initial_weights_do_not_depend_on_the_global_rng(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(123)
    assert cli(*train_args(learnable, tmp_path / "x" / "m.pt", "--lr", 1e-9, epochs=1)).code == 0
    torch.manual_seed(456)
    assert cli(*train_args(learnable, tmp_path / "y" / "m.pt", "--lr", 1e-9, epochs=1)).code == 0
    assert_same_weights(tmp_path / "x" / "m.pt", tmp_path / "y" / "m.pt")


# ---------------------------------------------------------------------------------------------- resume


def interrupt_in_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Make the ``epoch``-th call of the epoch loop raise KeyboardInterrupt (as Ctrl-C would)."""
    real = trainer.TrainStep.epoch
    calls = {"n": 0}

    def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.TrainStep, "epoch", wrapped)


@pytest.mark.parametrize("schedule,method", [("cosine", "standard"), ("plateau", "standard"), ("cosine", "pgd-at"),
                                             ("onecycle", "pgd-at")])
def test_resume_after_interruption_gives_identical_weights(cli, npz128: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch, schedule: str,
                                                           method: str) -> None:
    # pgd-at: the PGD random starts come from the saved generator too (the last --method given wins)
    extra = ("--schedule", schedule, "--method", method, "--attack-steps", 1, "--eval-pgd-steps", 1)
    if schedule == "onecycle":  # the fast recipe: per-batch schedule, Nesterov, whitening fitted from data, N-FGSM
        extra += ("--arch", "airbench_s", "--nesterov", "--channels-last", "--inner-attack", "n-fgsm")
    whole = tmp_path / "whole" / "m.pt"
    assert cli(*train_args(npz128, whole, *extra)).code == 0

    part = tmp_path / "part" / "m.pt"
    state = Path(f"{part}.state.pt")
    with monkeypatch.context() as m:
        interrupt_in_epoch(m, 2)
        r = cli(*train_args(npz128, part, *extra))
    assert r.code == 130
    assert "interrupted" in r.err and "resume" in r.err
    assert state.is_file()
    assert len(pd.read_csv(f"{part}.log.csv")) == 1
    assert (tmp_path / "part" / "m-last.pt").is_file()

    torch.manual_seed(999)  # the global RNG is in some other state now: resume must not depend on it
    r = cli(*train_args(npz128, part, *extra, "--resume"))
    assert r.code == 0, r.err
    assert not state.exists()
    assert_same_weights(whole, part)
    assert_same_weights(tmp_path / "whole" / "m-last.pt", tmp_path / "part" / "m-last.pt")
    log_whole, log_part = pd.read_csv(f"{whole}.log.csv"), pd.read_csv(f"{part}.log.csv")
    cols = ["epoch", "loss", "ce", "lr", "test_acc"]
    pd.testing.assert_frame_equal(log_whole[cols], log_part[cols])
    info_whole, info_part = load_model(str(whole)).info, load_model(str(part)).info
    assert info_part.training["selected_epoch"] == info_whole.training["selected_epoch"]
    assert len(info_part.training["log"]) == info_whole.training["selected_epoch"] == len(info_whole.training["log"])


def test_existing_state_requires_resume(cli, npz128: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.pt"
    with monkeypatch.context() as m:
        interrupt_in_epoch(m, 2)
        assert cli(*train_args(npz128, out)).code == 130
    state = Path(f"{out}.state.pt")
    before = state.read_bytes()
    r = cli(*train_args(npz128, out))
    assert r.code == 2
    line = one_error_line(r.err)
    assert "m.pt.state.pt exists" in line and "--resume" in line
    assert state.read_bytes() == before  # left alone for a later --resume


def test_resume_without_state_is_an_error(cli, npz128: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli(*train_args(npz128, tmp_path / "m.pt", "--resume"))
    assert r.code == 2
    assert "no state file" in one_error_line(r.err)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("content", [b"garbage, not a torch file", b"PK\x03\x04 truncated zip"])
def test_resume_from_a_damaged_state_is_an_error(cli, npz128: Path, tmp_path: Path, content: bytes) -> None:  # type: ignore[no-untyped-def]
    Path(f"{tmp_path / 'm.pt'}.state.pt").write_bytes(content)
    r = cli(*train_args(npz128, tmp_path / "m.pt", "--resume"))
    assert r.code == 2
    assert "cannot resume from" in one_error_line(r.err)


def test_resume_with_another_architecture_is_an_error(cli, npz128: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m.pt"
    with monkeypatch.context() as m:
        interrupt_in_epoch(m, 2)
        assert cli(*train_args(npz128, out)).code == 130
    args = train_args(npz128, out, "--resume")
    args[args.index("cnn_tiny")] = "cnn_small"
    r = cli(*args)
    assert r.code == 2
    assert "cannot resume from" in one_error_line(r.err)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--method", "pgd-magic", "unknown training method 'pgd-magic'; choose from standard"),
    ("--arch", "no_such_net_xyz", "unknown architecture 'no_such_net_xyz'"),
    ("--schedule", "linear", "unknown schedule 'linear'; choose from cosine, plateau, constant"),
    ("--epochs", "0", "--epochs must be at least 1"),
    ("--batch-size", "0", "--batch-size must be at least 1"),
    ("--lr", "0", "--lr must be positive"),
    ("--select-tolerance", "1.5", "--select-tolerance must lie in [0, 1)"),
])
def test_bad_settings_are_one_line_errors(cli, npz128: Path, tmp_path: Path, option: str, value: str,  # type: ignore[no-untyped-def]
                                          message: str) -> None:
    args = train_args(npz128, tmp_path / "m.pt")
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    r = cli(*args)
    assert r.code == 2
    assert message in one_error_line(r.err)
    assert list(tmp_path.iterdir()) == []


def _log(*epochs: tuple[float, float]) -> list[dict[str, float]]:
    """Training-log rows from (clean, PGD) test accuracies, epochs numbered from 1."""
    return [{"epoch": i + 1, "test_acc": clean, "test_pgd_acc": robust} for i, (clean, robust) in enumerate(epochs)]


def test_selection_keeps_the_best_pgd_epoch_or_a_later_cleaner_one_within_the_tolerance() -> None:
    log = _log((0.60, 0.380), (0.66, 0.398), (0.68, 0.396), (0.69, 0.390), (0.70, 0.3975))
    assert trainer.select_epoch(log, by_pgd=True) == 2  # the best PGD, whatever the clean accuracy
    assert trainer.select_epoch(log, by_pgd=False) == 5  # standard training: the best clean accuracy
    # within half a point of the best PGD (0.398): epochs 3 and 5 qualify, each cleaner than the one kept
    # before it; epoch 4 (0.8 points below) does not
    assert trainer.select_epoch(log, by_pgd=True, tolerance=0.005) == 5
    assert trainer.select_epoch(log[:4], by_pgd=True, tolerance=0.005) == 3
    # a new best PGD is kept even when it is less clean
    assert trainer.select_epoch([*log, {"epoch": 6, "test_acc": 0.5, "test_pgd_acc": 0.41}], True, 0.005) == 6
    # ties: the first best epoch stays without a tolerance, as before the option existed
    assert trainer.select_epoch(_log((0.6, 0.4), (0.7, 0.4)), by_pgd=True) == 1
    assert trainer.select_epoch(_log((0.6, 0.4), (0.5, 0.4), (0.7, 0.4)), by_pgd=False) == 3


def test_selection_skips_an_epoch_whose_attack_raised_the_accuracy() -> None:
    """PGD accuracy above clean accuracy (igd-lam2-full-long's epochs 21-25: 30.8% clean, 46.7% PGD-10) means the
    attack failed, not that the model is robust: such an epoch is neither kept nor the best to beat."""
    log = _log((0.70, 0.35), (0.31, 0.47), (0.66, 0.36))
    assert trainer.select_epoch(log, by_pgd=True) == 3
    assert trainer.select_epoch(log[:2], by_pgd=True) == 1
    assert trainer.select_epoch(log, by_pgd=False) == 1


def test_training_on_a_test_only_dataset_is_an_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("train", "--arch", "cnn_tiny", "--data", "sample", "--epochs", 1, "--out", tmp_path / "m.pt")
    assert r.code == 2
    assert "test images only" in one_error_line(r.err)


def test_diverging_loss_is_an_error(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would print lines of its own before the one-line error
        r = cli(*train_args(learnable, tmp_path / "m.pt", "--lr", 1e30, "--momentum", 0, epochs=3))
    assert r.code == 2
    assert "lower --lr" in one_error_line(r.err)


# ---------------------------------------------------------------------------------------------- augment


def literal_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """One image at a time: zero-pad, crop at the drawn offsets, then flip; draws in the same order."""
    n, c, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        padded = torch.zeros(c, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
        padded[:, padding:padding + h, padding:padding + w] = x[i]
        crop = padded[:, int(dy[i]):int(dy[i]) + h, int(dx[i]):int(dx[i]) + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


@pytest.mark.parametrize(("shape", "dtype", "padding"), [
    ((12, 3, 8, 8), torch.float32, 4),
    ((7, 2, 5, 9), torch.float64, 4),   # non-square: rows and columns must not be swapped
    ((6, 1, 6, 4), torch.float32, 2),
    ((3, 3, 4, 4), torch.float32, 0),
])
def test_random_crop_flip_matches_a_literal_implementation(shape: tuple[int, ...], dtype: torch.dtype,
                                                           padding: int) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=dtype) + 0.1  # no zeros in the input
    got = random_crop_flip(x, torch.Generator().manual_seed(5), padding)
    want = literal_crop_flip(x, torch.Generator().manual_seed(5), padding)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert torch.equal(got, want)
    if padding == 0:  # no shift: each image is itself or its mirror image
        assert all(torch.equal(got[i], x[i]) or torch.equal(got[i], x[i].flip(-1)) for i in range(shape[0]))


def test_random_crop_flip_draws_and_consumes_the_generator() -> None:
    x = torch.rand(64, 3, 8, 8) + 0.1
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    out = random_crop_flip(x, g1)
    literal_crop_flip(x, g2)
    assert torch.equal(g1.get_state(), g2.get_state())  # the same draws, no more, no fewer
    assert not torch.equal(out, random_crop_flip(x, g1))  # the next call draws new offsets
    unchanged = sum(torch.equal(out[i], x[i]) for i in range(64))
    assert unchanged < 8  # P(no shift and no flip) = 1/162 per image
    mirrored = sum(torch.equal(out[i], x[i].flip(-1)) for i in range(64))
    assert mirrored < 8
    zero_cols = (out == 0).all(dim=(1, 2)).any(dim=1)  # a zero column means a horizontal shift
    assert 0 < int(zero_cols.sum()) < 64
    # every kept pixel comes from the same image (values shift, never mix across images)
    for i in range(64):
        kept = out[i][out[i] != 0]
        assert torch.isin(kept, x[i]).all()


def test_fine_tuning_starts_from_the_init_checkpoint(cli, learnable: Path, npz128: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--init: the run starts from the checkpoint's weights and takes its architecture and normalisation."""
    start = tmp_path / "start.pt"
    assert cli(*train_args(learnable, start, epochs=1)).code == 0
    tuned = tmp_path / "tuned.pt"
    other = ["--lr", "1e-9", "--momentum", "0", "--weight-decay", "0", "--eval-data", f"npz:{learnable}"]
    result = cli("train", "--method", "standard", "--init", start, "--data", f"npz:{learnable}", "--epochs", 1,
                 "--batch-size", 32, "--eval-limit", 16, "--device", "cpu", "--out", tuned, *other)
    assert result.code == 0, result.err
    before, after = weights(start), weights(tuned)
    model = load_model(str(tuned))
    assert model.info.arch == "cnn_tiny" and model.info.training["config"]["init"] == str(start)
    moved = [k for k in before if before[k].is_floating_point() and "running" not in k
             and not torch.allclose(before[k], after[k], atol=1e-6)]
    assert not moved  # a learning rate of 1e-9 leaves the initial weights in place
    assert len(pd.read_csv(f"{tuned}.log.csv")) == 1


def test_freeze_bn_keeps_the_batchnorm_statistics(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    start = tmp_path / "start.pt"
    assert cli(*train_args(learnable, start, epochs=1)).code == 0
    runs = {}
    for name, extra in (("frozen", ["--freeze-bn"]), ("free", [])):
        out = tmp_path / f"{name}.pt"
        assert cli("train", "--method", "standard", "--init", start, "--data", f"npz:{learnable}", "--epochs", 1,
                   "--batch-size", 32, "--eval-limit", 16, "--device", "cpu", "--out", out, *extra).code == 0
        runs[name] = weights(out)
    stats = [k for k in weights(start) if "running_mean" in k or "running_var" in k]
    assert stats and all(torch.equal(weights(start)[k], runs["frozen"][k]) for k in stats)
    assert not all(torch.equal(weights(start)[k], runs["free"][k]) for k in stats)


def test_freeze_bn_survives_the_attacks_of_adversarial_training(cli, learnable: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    start = tmp_path / "start.pt"
    assert cli(*train_args(learnable, start, epochs=1)).code == 0
    out = tmp_path / "frozen-at.pt"
    assert cli("train", "--method", "pgd-at", "--attack-steps", 2, "--eval-pgd-steps", 1, "--init", start, "--data",
               f"npz:{learnable}", "--epochs", 1, "--batch-size", 32, "--eval-limit", 16, "--device", "cpu",
               "--out", out, "--freeze-bn").code == 0
    stats = [k for k in weights(start) if "running_mean" in k or "running_var" in k]
    assert stats and all(torch.equal(weights(start)[k], weights(out)[k]) for k in stats)
