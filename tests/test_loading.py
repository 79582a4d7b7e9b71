"""load_model: every supported checkpoint kind loads with the same predictions, and bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robench.errors import RobenchError
from robench.io import sha256_file
from robench.models.checkpoint import save_checkpoint
from robench.models.loading import load_model
from tests.conftest import tiny_model

X = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    with torch.no_grad():
        return torch.allclose(a(X), b(X), atol=1e-5)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_robench_format_round_trip(tmp_path: Path, suffix: str) -> None:
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / f"m{suffix}")
    loaded = load_model(str(path))
    assert same_outputs(model, loaded)
    assert loaded.info.arch == "cnn_tiny" and loaded.info.mean == (0.5, 0.5, 0.5) and loaded.info.std == (0.25,) * 3
    assert loaded.info.input_size == (3, 32, 32) and loaded.info.num_classes == 10
    assert loaded.info.sha256 == sha256_file(path)
    assert not loaded.training


def test_robench_pt_is_loadable_with_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model(), tmp_path / "m.pt")
    obj = torch.load(path, weights_only=True)
    assert obj["robench_checkpoint"] == 1 and "state_dict" in obj


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "state_dict_ema"])
@pytest.mark.parametrize("prefix", ["", "module.", "model.", "module.model."])
def test_bare_state_dict_with_robench_arch(tmp_path: Path, wrap: str | None, prefix: str) -> None:
    model = tiny_model()
    state = {prefix + k: v for k, v in model.net.state_dict().items()}
    torch.save(state if wrap is None else {wrap: state, "epoch": 3}, tmp_path / "sd.pth")
    loaded = load_model(str(tmp_path / "sd.pth"), arch="cnn_tiny", mean=(0.5,) * 3, std=(0.25,) * 3)
    assert same_outputs(model, loaded)
    assert loaded.info.num_classes == 10  # inferred from the classifier's shape


@pytest.mark.parametrize("layout", ["oval", "eran", "tuple", "flat_scalars"])
def test_state_dict_in_a_list_or_beside_figures(tmp_path: Path, layout: str, cli) -> None:  # type: ignore[no-untyped-def]
    """Published layouts: OVAL's ``{'state_dict': [sd], 'err', 'epoch', ...}``, ERAN's
    ``{'acc': tensor, 'state_dict': [sd]}``, a tuple, and scalar figures among the weights."""
    model = tiny_model()
    state = model.net.state_dict()
    obj = {
        "oval": {"state_dict": [state], "err": torch.tensor(0.24), "epoch": 55, "sampler_indices": []},
        "eran": {"acc": torch.tensor(0.61), "state_dict": [state]},
        "tuple": {"model": (state,), "best_prec1": 92.8},
        "flat_scalars": {**state, "acc": torch.tensor(0.61), "err": torch.tensor(0.39)},
    }[layout]
    torch.save(obj, tmp_path / "sd.pth")
    loaded = load_model(str(tmp_path / "sd.pth"), arch="cnn_tiny", mean=(0.5,) * 3, std=(0.25,) * 3)
    assert same_outputs(model, loaded)
    r = cli("evaluate", "--model", tmp_path / "sd.pth", "--arch", "cnn_tiny", "--limit", "8")
    assert r.code == 0, r.err


def test_ambiguous_or_wrong_layouts_are_one_line_errors(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    state = tiny_model().net.state_dict()
    torch.save({"state_dict": [state, state]}, tmp_path / "two.pth")
    r = cli("evaluate", "--model", tmp_path / "two.pth", "--arch", "cnn_tiny", "--limit", "8")
    assert r.code == 2 and r.err.startswith("robench: error:") and len(r.err.strip().splitlines()) == 1
    assert "a list of 2 dicts" in r.err
    torch.save({**state, "fc.scale": torch.tensor(1.0)}, tmp_path / "extra.pth")  # a dotted name is a weight
    with pytest.raises(RobenchError, match=r"1 unexpected \(e.g. fc.scale\)"):
        load_model(str(tmp_path / "extra.pth"), arch="cnn_tiny")
    torch.save({"state_dict": [1, 2]}, tmp_path / "none.pth")
    with pytest.raises(RobenchError, match="holds no state dict"):
        load_model(str(tmp_path / "none.pth"), arch="cnn_tiny")


def test_bare_state_dict_with_timm_arch_and_timm_normalisation(tmp_path: Path) -> None:
    import timm

    net = timm.create_model("test_resnet", num_classes=10).eval()
    torch.save(net.state_dict(), tmp_path / "timm.pth")
    loaded = load_model(str(tmp_path / "timm.pth"), arch="test_resnet")
    assert loaded.info.mean == tuple(net.pretrained_cfg["mean"])
    with torch.no_grad():
        expected = net((X - loaded.mean) / loaded.std)
        assert torch.allclose(loaded(X), expected, atol=1e-5)


def test_timm_spec_with_local_weights(tmp_path: Path) -> None:
    import timm

    net = timm.create_model("test_resnet", num_classes=10).eval()
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "w.pth")
    loaded = load_model("timm:test_resnet", weights=str(tmp_path / "w.pth"))
    assert loaded.info.num_classes == 10 and loaded.info.input_size == (3, 160, 160)
    assert loaded.info.sha256 == sha256_file(tmp_path / "w.pth")
    with torch.no_grad():
        assert torch.allclose(loaded(X), net((X - 0.5) / 0.5), atol=1e-5)


def test_timm_num_classes_overlay_is_refused(tmp_path: Path) -> None:
    import timm

    torch.save(timm.create_model("test_resnet", num_classes=10).state_dict(), tmp_path / "w.pth")
    with pytest.raises(RobenchError, match="re-initialise"):
        load_model("timm:test_resnet", weights=str(tmp_path / "w.pth"), num_classes=5)
    with pytest.raises(RobenchError, match="re-initialise"):
        load_model("timm:test_resnet", num_classes=10)  # hub weights have 1000 classes


def test_timm_hub_offline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: the env var is too late
    with pytest.raises(RobenchError, match="--weights"):
        load_model("timm:test_resnet")


def test_torchscript_archive(tmp_path: Path) -> None:
    model = tiny_model()
    torch.jit.script(model.net).save(str(tmp_path / "m.ts"))
    loaded = load_model(str(tmp_path / "m.ts"), mean=(0.5,) * 3, std=(0.25,) * 3)
    assert loaded.info.source == "torchscript" and same_outputs(model, loaded)


@pytest.mark.parametrize("dynamic", [True, False])
def test_torch_export_program(tmp_path: Path, dynamic: bool) -> None:
    model = tiny_model()
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic else None
    program = torch.export.export(model, (torch.rand(2, 3, 32, 32),), dynamic_shapes=shapes)
    torch.export.save(program, str(tmp_path / "m.pt2"))
    loaded = load_model(str(tmp_path / "m.pt2"))  # the wrapper's normalisation is inside the program
    assert loaded.info.source == "torch.export" and loaded.info.input_size == (3, 32, 32)
    loaded.train()  # must not raise: exported programs cannot switch modes
    assert same_outputs(model, loaded.eval())


class Payload(torch.nn.Module):
    """A module whose unpickling would create a marker file."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_touch_and_build, (self.marker,))


def _touch_and_build(marker: str) -> Payload:
    Path(marker).write_text("payload ran")
    return Payload.__new__(Payload)


def test_pickled_payload_refused_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    torch.save(Payload(str(marker)), tmp_path / "evil.pt")
    with pytest.raises(RobenchError, match="--trust-checkpoint"):
        load_model(str(tmp_path / "evil.pt"))
    assert not marker.exists()


def test_pickled_module_with_trust(tmp_path: Path) -> None:
    model = tiny_model()
    torch.save(model.net, tmp_path / "whole.pt")
    loaded = load_model(str(tmp_path / "whole.pt"), trust_checkpoint=True, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert loaded.info.source == "pickled-module" and same_outputs(model, loaded)


def test_bad_files(tmp_path: Path) -> None:
    good = save_checkpoint(tiny_model(), tmp_path / "good.pt")
    (tmp_path / "random.pt").write_bytes(b"\x17" + np.random.default_rng(7).bytes(4095))  # fixed: not a pickle opcode
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = {
        str(tmp_path / "missing.pt"): "not found",
        str(tmp_path / "random.pt"): "not a checkpoint",
        str(tmp_path / "trunc.pt"): "truncated or corrupt",
        str(tmp_path): "not a file",
    }
    for spec, message in cases.items():
        with pytest.raises(RobenchError, match=message):
            load_model(spec)


def test_mismatched_architecture_lists_the_difference(tmp_path: Path) -> None:
    torch.save(tiny_model().net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(RobenchError, match=r"do not match architecture 'cnn_small'.*missing"):
        load_model(str(tmp_path / "sd.pt"), arch="cnn_small")


def test_bare_state_dict_needs_arch_and_known_names(tmp_path: Path) -> None:
    torch.save(tiny_model().net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(RobenchError, match="--arch"):
        load_model(str(tmp_path / "sd.pt"))
    with pytest.raises(RobenchError, match="unknown architecture"):
        load_model(str(tmp_path / "sd.pt"), arch="no_such_net")
    with pytest.raises(RobenchError, match="unknown timm model"):
        load_model("timm:no_such_net")
    with pytest.raises(RobenchError, match="cannot import module"):
        load_model(str(tmp_path / "sd.pt"), arch="no_such_pkg.mod:build")


def test_nan_weights_refused(tmp_path: Path) -> None:
    model = tiny_model()
    with torch.no_grad():
        model.net.fc.weight[0, 0] = float("nan")
    path = save_checkpoint(model, tmp_path / "nan.pt")
    with pytest.raises(RobenchError, match="NaN"):
        load_model(str(path))


def test_overrides_apply(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model(), tmp_path / "m.pt")
    loaded = load_model(str(path), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), input_size=(3, 40, 40))
    assert loaded.info.mean == (0.1, 0.2, 0.3) and loaded.info.input_size == (3, 40, 40)
    assert torch.allclose(loaded.std.flatten(), torch.tensor([0.4, 0.5, 0.6]))
    with pytest.raises(RobenchError, match="positive"):
        load_model(str(path), std=(0.0, 1.0, 1.0))


def _robustness_library_checkpoint(path: Path, net: torch.nn.Module, mean: tuple[float, ...],
                                   std: tuple[float, ...]) -> Path:
    """What MadryLab's ``robustness`` library saves: an ``AttackerModel`` under DataParallel
    (network twice, normaliser buffers twice) plus optimizer state and epoch."""
    m, s = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    sd: dict[str, torch.Tensor] = {"module.normalizer.new_mean": m, "module.normalizer.new_std": s,
                                   "module.attacker.normalize.new_mean": m, "module.attacker.normalize.new_std": s}
    for k, v in net.state_dict().items():
        sd[f"module.model.{k}"] = v
        sd[f"module.attacker.model.{k}"] = v
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "schedule": None,
                "epoch": 90}, path)
    return path


def test_robustness_library_checkpoint(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    mean, std = (0.4, 0.45, 0.5), (0.2, 0.25, 0.3)
    path = _robustness_library_checkpoint(tmp_path / "resnet18_linf_eps4.0.ckpt", net, mean, std)
    model = load_model(str(path), arch="resnet18")
    assert model.info.source == "robustness-library"
    assert model.info.mean == pytest.approx(mean) and model.info.std == pytest.approx(std)
    x = torch.rand(2, 3, 32, 32)
    expected = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(model(x), expected)
    assert load_model(str(path), arch="resnet18", mean=(0.5,) * 3, std=(0.5,) * 3).info.mean == (0.5,) * 3
    # without the attacker copy it is an ordinary state dict whose normaliser keys do not fit the network
    sd = torch.load(path, weights_only=True)["model"]
    plain = {k: v for k, v in sd.items() if not k.startswith("module.attacker.")}
    torch.save(plain, tmp_path / "plain.pt")
    with pytest.raises(RobenchError, match="unexpected"):
        load_model(str(tmp_path / "plain.pt"), arch="resnet18")
    r = cli("evaluate", "--model", path, "--arch", "resnet18", "--input-size", "3,32,32", "--data", "sample",
            "--limit", 8, "--suite", "clean", "--out", tmp_path / "run")
    assert r.code == 0, r.err


@pytest.mark.parametrize("kind", ["torchscript", "torch.export"])
@pytest.mark.parametrize("channels", [1, 4])
def test_models_without_normalisation_metadata_follow_the_data_channels(cli, tmp_path: Path, kind: str,  # type: ignore[no-untyped-def]
                                                                        channels: int) -> None:
    """A TorchScript / .pt2 network on C×28×28 inputs, no --mean/--std: mean 0, std 1 for every channel."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 26 * 26, 10)).eval()
    example = torch.rand(2, channels, 28, 28)
    if kind == "torchscript":
        path = tmp_path / "m.ts"
        torch.jit.trace(net, example).save(str(path))
    else:
        path = tmp_path / "m.pt2"
        torch.export.save(torch.export.export(net, (example,)), str(path))
    loaded = load_model(str(path))
    x = torch.rand(2, channels, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)  # identity normalisation
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 28, 28) if channels == 1 else (8, 28, 28, channels), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=images, y=np.arange(8), classes=np.array([f"c{i}" for i in range(10)]))
    r = cli("evaluate", "--model", path, "--data", f"npz:{tmp_path / 'd.npz'}", "--suite", "clean",
            "--out", tmp_path / "run")
    assert r.code == 0, r.err


@pytest.mark.slow
def test_float16_storage_keeps_predictions(tmp_path: Path) -> None:
    """save_checkpoint(dtype=float16) halves the file; loading casts back; sample predictions stay within ±0.2 points."""
    from robench.data import load_dataset

    model = load_model("zoo:standard")
    half = save_checkpoint(model, tmp_path / "half.pt", dtype=torch.float16)
    full = save_checkpoint(model, tmp_path / "full.pt")
    assert half.stat().st_size < 0.7 * full.stat().st_size
    state = torch.load(half, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    loaded = load_model(str(half))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x, y = load_dataset("sample").batch(0, 1000)
    with torch.no_grad():
        acc_full = float((model(x).argmax(1) == y).float().mean())
        acc_half = float((loaded(x).argmax(1) == y).float().mean())
    assert abs(acc_full - acc_half) <= 0.002
