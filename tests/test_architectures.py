"""Every registered architecture builds, maps N×C×H×W to N×K, and honours in_chans/num_classes."""

import pytest
import torch

from robench.errors import RobenchError
from robench.models.registry import create_model, get_arch, list_models

FAST = [n for n in list_models() if n not in ("wrn_28_10",)]


@pytest.mark.parametrize("name", FAST)
def test_output_shape(name: str) -> None:
    model = create_model(name, num_classes=7, in_chans=1).eval()
    c, h, w = get_arch(name).input_size
    assert model(torch.rand(2, 1, h, w)).shape == (2, 7)


def test_registry_lists_required_architectures() -> None:
    assert {"resnet18_cifar", "preact_resnet18", "wrn_28_10", "cnn_small", "cnn_tiny"} <= set(list_models())


def test_resnet18_cifar_has_no_maxpool_and_3x3_stem() -> None:
    model = create_model("resnet18_cifar")
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert 11_000_000 < sum(p.numel() for p in model.parameters()) < 11_300_000


def test_unknown_architecture_names_choices() -> None:
    with pytest.raises(RobenchError, match="cnn_tiny"):
        create_model("resnet9000")
