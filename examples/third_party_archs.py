"""The architectures of the third-party checkpoint panel, written from what their sources state.

Each callable builds one network whose parameter names and shapes are those of the published files
(``KEYS.md`` of the panel), so that robench loads them strictly, as they are::

    robench evaluate --model abcrown-cifar_conv_small_pgd.pth --arch third_party_archs:cifar_conv_small \
        --arch-path examples --mean 0.4914,0.4822,0.4465 --std 0.2023,0.1994,0.2010

``experiments/third_party/manifest.csv`` gives every file's callable, mean and std. All networks
take 32×32 RGB CIFAR-10 images except ``trades_mnist_smallcnn`` (28×28 greyscale MNIST); all
return N×10 logits. The option-A ResNets reuse ``examples/user_arch/cifar_resnet20.py``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from user_arch.cifar_resnet20 import ResNet as OptionAResNet

# --- He et al.'s CIFAR ResNets with zero-padding (option A) shortcuts: akamaster/pytorch_resnet_cifar10


def resnet32(num_classes: int = 10) -> nn.Module:
    """ResNet-32: 5 blocks per stage of 16/32/64 channels."""
    return OptionAResNet([5, 5, 5], num_classes)


def resnet44(num_classes: int = 10) -> nn.Module:
    """ResNet-44: 7 blocks per stage."""
    return OptionAResNet([7, 7, 7], num_classes)


def resnet56(num_classes: int = 10) -> nn.Module:
    """ResNet-56: 9 blocks per stage."""
    return OptionAResNet([9, 9, 9], num_classes)


# --- ResNet-20s with 1×1-conv + BatchNorm projection shortcuts (EhanW/advrob-cifar10, DIG-Beihang/AISafety)


class ProjectionBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN plus a shortcut (1×1 conv + BN when the shape changes), then ReLU.

    ``sep`` is what separates a layer's kind from its number in the parameter names ("conv_1" or
    "conv1"); ``shortcut_bias`` gives the 1×1 shortcut conv a bias.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, sep: str, shortcut_bias: bool) -> None:
        super().__init__()
        self.names = (f"conv{sep}1", f"bn{sep}1", f"conv{sep}2", f"bn{sep}2")
        setattr(self, self.names[0], nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False))
        setattr(self, self.names[1], nn.BatchNorm2d(planes))
        setattr(self, self.names[2], nn.Conv2d(planes, planes, 3, 1, 1, bias=False))
        setattr(self, self.names[3], nn.BatchNorm2d(planes))
        self.downsample = (nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=shortcut_bias),
                                         nn.BatchNorm2d(planes))
                           if stride != 1 or in_planes != planes else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1, bn1, conv2, bn2 = (getattr(self, n) for n in self.names)
        out = bn2(conv2(F.relu(bn1(conv1(x)))))
        return F.relu(out + self.downsample(x))


class ProjectionResNet20(nn.Module):
    """Stem conv3×3(16)-BN-ReLU, three stages of 3 blocks (16/32/64 channels, stride 1/2/2),
    global average pooling, ``fc``. Stage modules are named ``{stage}1..3``, stem layers
    ``conv{sep}1``/``bn{sep}1``; ``bias`` puts a bias on the stem conv and the shortcut convs."""

    def __init__(self, num_classes: int, sep: str, stage: str, bias: bool) -> None:
        super().__init__()
        self.stem = (f"conv{sep}1", f"bn{sep}1")
        setattr(self, self.stem[0], nn.Conv2d(3, 16, 3, 1, 1, bias=bias))
        setattr(self, self.stem[1], nn.BatchNorm2d(16))
        self.stages = [f"{stage}{i}" for i in (1, 2, 3)]
        in_planes = 16
        for name, planes, stride in zip(self.stages, (16, 32, 64), (1, 2, 2)):
            blocks = []
            for s in (stride, 1, 1):
                blocks.append(ProjectionBlock(in_planes, planes, s, sep, bias))
                in_planes = planes
            setattr(self, name, nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(getattr(self, self.stem[1])(getattr(self, self.stem[0])(x)))
        for name in self.stages:
            out = getattr(self, name)(out)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def ehanw_resnet20(num_classes: int = 10) -> nn.Module:
    """EhanW's ResNet-20: ``conv_1``, ``bn_1``, ``stage_1..3``, ``fc``; no conv biases."""
    return ProjectionResNet20(num_classes, sep="_", stage="stage_", bias=False)


def aisafety_resnet20(num_classes: int = 10) -> nn.Module:
    """AISafety's ResNet-20: ``conv1`` (with bias), ``bn1``, ``layer1..3``, ``fc``; shortcut convs with bias."""
    return ProjectionResNet20(num_classes, sep="", stage="layer", bias=True)


# --- alpha-beta-CROWN's small ResNets without BatchNorm (VNN-COMP 2021 cifar10_resnet)


class PlainBlock(nn.Module):
    """conv3×3-ReLU-conv3×3 (with biases, no BatchNorm) plus a shortcut (a 1×1 conv when the shape changes), then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)
        self.shortcut = (nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride))
                         if stride != 1 or in_planes != planes else nn.Sequential())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class DenseHeadResNet(nn.Module):
    """conv3×3 stride 2 (32→16 px), ``len(stages)`` stages of 2 blocks each halving the size,
    flatten, ``linear1`` (→100), ReLU, ``linear2``."""

    def __init__(self, width: int, stages: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 2, 1)
        in_planes, size = width, 16
        for i, planes in enumerate(stages, start=1):
            setattr(self, f"layer{i}", nn.Sequential(PlainBlock(in_planes, planes, 2), PlainBlock(planes, planes, 1)))
            in_planes, size = planes, size // 2
        self.num_stages = len(stages)
        self.linear1 = nn.Linear(in_planes * size * size, 100)
        self.linear2 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        for i in range(1, self.num_stages + 1):
            out = getattr(self, f"layer{i}")(out)
        return self.linear2(F.relu(self.linear1(out.flatten(1))))


def abcrown_resnet2b(num_classes: int = 10) -> nn.Module:
    """ResNet-2B: 8-channel stem, one stage of 16 channels (16×8×8 → ``linear1`` 1024→100)."""
    return DenseHeadResNet(8, (16,), num_classes)


def abcrown_resnet4b(num_classes: int = 10) -> nn.Module:
    """ResNet-4B: 16-channel stem, two stages of 32 channels (32×4×4 → ``linear1`` 512→100)."""
    return DenseHeadResNet(16, (32, 32), num_classes)


# --- Small conv + dense networks of the verification literature, as nn.Sequential (keys 0, 2, 5, 7, ...)


def conv_dense(convs: list[tuple[int, int, int, int, int]], hidden: list[int], num_classes: int,
               size: int = 32) -> nn.Sequential:
    """Conv-ReLU for each ``(in, out, kernel, stride, padding)``, Flatten, then Linear-ReLU for each
    ``hidden`` width and a final Linear to ``num_classes``; ``size`` is the input's height = width."""
    layers: list[nn.Module] = []
    for c_in, c_out, k, s, p in convs:
        layers += [nn.Conv2d(c_in, c_out, k, s, p), nn.ReLU()]
        size = (size + 2 * p - k) // s + 1
    layers.append(nn.Flatten())
    width = convs[-1][1] * size * size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def cnn_a(num_classes: int = 10) -> nn.Module:
    """CNN-A ("wide"): Conv(3,16,4,s2,p1), Conv(16,32,4,s2,p1), Linear(2048,100), Linear(100,10).

    The layout of alpha-beta-CROWN's SDP models, OVAL's ``cifar_sgd/madry_8px`` and ``cifar_wide_kw``,
    and Salman et al.'s ``cifar_cnn_small``.
    """
    return conv_dense([(3, 16, 4, 2, 1), (16, 32, 4, 2, 1)], [100], num_classes)


def oval_cnn_base(num_classes: int = 10) -> nn.Module:
    """OVAL's base net: Conv(3,8,4,s2,p1), Conv(8,16,4,s2,p1), Linear(1024,100), Linear(100,10)."""
    return conv_dense([(3, 8, 4, 2, 1), (8, 16, 4, 2, 1)], [100], num_classes)


def oval_cnn_deep(num_classes: int = 10) -> nn.Module:
    """OVAL's deep net: Conv(3,8,4,s2,p1), two Conv(8,8,3,s1,p1), Conv(8,8,4,s2,p1), Linear(512,100), Linear(100,10)."""
    return conv_dense([(3, 8, 4, 2, 1), (8, 8, 3, 1, 1), (8, 8, 3, 1, 1), (8, 8, 4, 2, 1)], [100], num_classes)


def cifar_conv_small(num_classes: int = 10) -> nn.Module:
    """ERAN's ConvSmall: Conv(3,16,4,s2,p0), Conv(16,32,4,s2,p0), Linear(1152,100), Linear(100,10)."""
    return conv_dense([(3, 16, 4, 2, 0), (16, 32, 4, 2, 0)], [100], num_classes)


def _marabou(width: int, num_classes: int) -> nn.Sequential:
    return conv_dense([(3, width, 4, 2, 0), (width, 2 * width, 4, 2, 0)], [128, 64], num_classes)


def marabou_small(num_classes: int = 10) -> nn.Module:
    """Marabou small: Conv(3,8,4,s2), Conv(8,16,4,s2), Linear(576,128), Linear(128,64), Linear(64,10)."""
    return _marabou(8, num_classes)


def marabou_medium(num_classes: int = 10) -> nn.Module:
    """Marabou medium: 16/32 conv channels, Linear(1152,128), Linear(128,64), Linear(64,10)."""
    return _marabou(16, num_classes)


def marabou_large(num_classes: int = 10) -> nn.Module:
    """Marabou large: 32/64 conv channels, Linear(2304,128), Linear(128,64), Linear(64,10)."""
    return _marabou(32, num_classes)


def _salman_wide(k: int, num_classes: int) -> nn.Sequential:
    # The shared README states a hidden width of 100; the files' tensors are 128·k wide (KEYS.md).
    return conv_dense([(3, 4 * k, 4, 2, 1), (4 * k, 8 * k, 4, 2, 1)], [128 * k], num_classes)


def salman_wide_1(num_classes: int = 10) -> nn.Module:
    """Salman et al.'s ``cifar_cnn_wide_1``: Conv(3,4,4,s2,p1), Conv(4,8,4,s2,p1), Linear(512,128), Linear(128,10)."""
    return _salman_wide(1, num_classes)


def salman_wide_2(num_classes: int = 10) -> nn.Module:
    """Salman et al.'s ``cifar_cnn_wide_2``: Conv(3,8,4,s2,p1), Conv(8,16,4,s2,p1), Linear(1024,256), Linear(256,10)."""
    return _salman_wide(2, num_classes)


# --- TRADES' MNIST SmallCNN (yaodongyu/TRADES)


def trades_mnist_smallcnn(num_classes: int = 10) -> nn.Module:
    """1×28×28 input: ``feature_extractor`` conv1 (1→32), conv2 (32→32), max-pool, conv3 (32→64),
    conv4 (64→64), max-pool (3×3 convs without padding, each + ReLU: 64×4×4); ``classifier`` fc1
    (1024→200), ReLU, dropout 0.5, fc2 (200→200), ReLU, fc3 (200→classes)."""
    features = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 32, 3)), ("relu1", nn.ReLU()), ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", nn.ReLU()), ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
    ]))
    classifier = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", nn.ReLU()), ("drop", nn.Dropout(0.5)),
        ("fc2", nn.Linear(200, 200)), ("relu2", nn.ReLU()), ("fc3", nn.Linear(200, num_classes)),
    ]))
    return nn.Sequential(OrderedDict([("feature_extractor", features), ("flatten", nn.Flatten()),
                                      ("classifier", classifier)]))
