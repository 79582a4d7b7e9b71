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


class PatchWhitening(nn.Module):
    """A frozen k×k convolution that whitens the image's k×k patches (the first layer of airbench, Jordan 2024).

    Its filters are the eigenvectors of the training patches' covariance scaled by 1/√(λ + eps),
    each with its negation, so ``2·C·k²`` output channels (24 for RGB, k = 2). They are set once
    from data by :meth:`init_from_data` (the trainer calls it before the first step) and never
    trained; they are buffers, so checkpoints carry them and optimizers skip them.
    """

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, in_chans: int, kernel: int = 2, eps: float = 5e-4) -> None:
        super().__init__()
        self.kernel, self.eps = kernel, eps
        out = 2 * in_chans * kernel * kernel
        self.register_buffer("weight", torch.zeros(out, in_chans, kernel, kernel))
        self.register_buffer("bias", torch.zeros(out))

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Fit the filters to N×C×H×W ``images`` (the model's inputs, in [0, 1]); a few thousand are enough."""
        c, k = images.shape[1], self.kernel
        patches = F.unfold(images.double(), k).transpose(1, 2).reshape(-1, c * k * k)  # one row per k×k patch
        mean = patches.mean(0)
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(patches.T))
        filters = (eigenvectors / (eigenvalues + self.eps).sqrt()).T  # row i: eigenvector i / √(λᵢ + eps)
        weight = torch.cat([filters, -filters])
        self.weight.copy_(weight.reshape_as(self.weight))
        self.bias.copy_(-(weight @ mean))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class ConvGroup(nn.Module):
    """conv3×3 → 2×2 max-pool → BN → GELU → conv3×3 → BN → GELU (one airbench stage, halves H and W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding="same", bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding="same", bias=False), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """The airbench94 network shape (Jordan 2024, arXiv 2404.00498), re-implemented from the paper's description.

    Frozen 2×2 patch whitening + GELU, three :class:`ConvGroup` stages (32 → 15 → 7 → 3 px on
    CIFAR), global max-pool, a bias-free linear head whose logits are scaled by ``1/9``
    (the paper's fixed output temperature).
    """

    def __init__(self, widths: tuple[int, int, int], num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.whiten = PatchWhitening(in_chans)
        chans = [2 * in_chans * 4, *widths]
        self.stages = nn.Sequential(*(ConvGroup(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = 1 / 9

    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening filters from N×C×H×W training images in [0, 1]."""
        self.whiten.init_from_data(images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(F.gelu(self.whiten(x)))
        return self.fc(F.adaptive_max_pool2d(x, 1).flatten(1)) * self.logit_scale


@register_model()
def airbench(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """airbench94-shaped CNN (whitening, 64-256-256), 1.97 M parameters: the fast recipe's network (`cifar10-fast`)."""
    return AirbenchNet((64, 256, 256), num_classes, in_chans)


@register_model()
def airbench_s(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """airbench94-shaped CNN at half width (whitening, 32-128-128), 0.5 M parameters."""
    return AirbenchNet((32, 128, 128), num_classes, in_chans)
