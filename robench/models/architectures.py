"""robench's own architectures: CIFAR-style ResNets, a WideResNet and small CNNs for CPU runs.

Each constructor takes ``num_classes`` and ``in_chans`` and returns a module mapping a
normalised N×C×H×W batch to N×num_classes logits. Normalisation is not part of these modules:
:class:`robench.models.wrapper.RobenchModel` adds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robench.models.registry import register_model


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Post-activation residual block (He et al. 2016) with a 1×1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016b), as in PreAct ResNet-18."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class CifarResNet(nn.Module):
    """ResNet with a 3×3 stem and no max-pool, for 32×32 inputs (the reference recipe)."""

    def __init__(self, block: type[nn.Module], depths: list[int], num_classes: int, in_chans: int,
                 width: int = 64, preact: bool = False) -> None:
        super().__init__()
        self.preact = preact
        self.conv1 = _conv3x3(in_chans, width)
        self.bn1 = nn.BatchNorm2d(width) if not preact else nn.Identity()
        layers, cin = [], width
        for i, depth in enumerate(depths):
            cout = width * 2**i
            for j in range(depth):
                layers.append(block(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn_final = nn.BatchNorm2d(cin) if preact else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if not self.preact:
            out = F.relu(self.bn1(out))
        out = self.layers(out)
        if self.preact:
            out = F.relu(self.bn_final(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class WideBlock(nn.Module):
    """Pre-activation wide residual block (Zagoruyko & Komodakis 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-widen for CIFAR: three stages of (depth-4)/6 wide blocks."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_chans: int) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = _conv3x3(in_chans, widths[0])
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(WideBlock(cin, cout, stride=2 if (stage > 0 and j == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class SimpleCNN(nn.Module):
    """VGG-style CNN: stages of (conv3×3-BN-ReLU)×convs then 2×2 max-pool, global pool, linear."""

    def __init__(self, widths: list[int], convs_per_stage: int, num_classes: int, in_chans: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for cout in widths:
            for _ in range(convs_per_stage):
                layers += [_conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


@register_model()
def resnet18_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """CIFAR-style ResNet-18 (3×3 stem, no max-pool), 11.2 M parameters."""
    return CifarResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans)


@register_model()
def preact_resnet18(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """PreAct ResNet-18 for 32×32 inputs, 11.2 M parameters."""
    return CifarResNet(PreActBlock, [2, 2, 2, 2], num_classes, in_chans, preact=True)


@register_model()
def wrn_28_10(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """WideResNet-28-10, 36.5 M parameters."""
    return WideResNet(28, 10, num_classes, in_chans)


@register_model()
def wrn_16_4(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """WideResNet-16-4, 2.7 M parameters."""
    return WideResNet(16, 4, num_classes, in_chans)


@register_model()
def cnn_medium(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """Six-conv VGG-style CNN (32-64-128), 0.29 M parameters: about 3 ms per CIFAR image and step on 2 CPU cores."""
    return SimpleCNN([32, 64, 128], 2, num_classes, in_chans)


@register_model()
def cnn_small(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """Six-conv VGG-style CNN (16-32-64), 73 k parameters: about 1 ms per CIFAR image and step on 2 CPU cores."""
    return SimpleCNN([16, 32, 64], 2, num_classes, in_chans)


@register_model()
def cnn_tiny(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """Three-conv CNN (16-32-64), 24 k parameters: for tests and quick smoke runs."""
    return SimpleCNN([16, 32, 64], 1, num_classes, in_chans)
