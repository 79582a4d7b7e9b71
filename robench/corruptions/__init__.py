"""ImageNet-C / CIFAR-10-C corruptions: names and groups, batched torch noise, the reference library.

``robench.corruptions.noise`` holds torch versions of the four noise corruptions (any device, any
size, ImageNet-C or CIFAR-10-C parameters); ``robench.corruptions.library`` applies the reference
``imagecorruptions`` package (all 19 corruptions, ImageNet-C parameters, ≥ 32 px) per image.
See docs/corruptions.md.
"""

from robench.corruptions.library import corrupt_images, image_seed
from robench.corruptions.names import (
    ALL,
    BLUR,
    COMMON,
    DIGITAL,
    EXTRA,
    GROUPS,
    NOISE,
    SEVERITIES,
    WEATHER,
    check_severity,
    resolve_corruptions,
)
from robench.corruptions.noise import (
    CIFAR10_C,
    IMAGENET_C,
    PARAMETERS,
    TABLES,
    TORCH_CORRUPTIONS,
    corruption_parameter,
    make_generator,
    parameter_table,
    torch_corrupt,
)

__all__ = [
    "ALL",
    "BLUR",
    "CIFAR10_C",
    "COMMON",
    "DIGITAL",
    "EXTRA",
    "GROUPS",
    "IMAGENET_C",
    "NOISE",
    "PARAMETERS",
    "SEVERITIES",
    "TABLES",
    "TORCH_CORRUPTIONS",
    "WEATHER",
    "check_severity",
    "corrupt_images",
    "corruption_parameter",
    "image_seed",
    "make_generator",
    "parameter_table",
    "resolve_corruptions",
    "torch_corrupt",
]
