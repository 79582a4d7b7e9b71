"""ImageNet-C corruption names, their groups, and a resolver for user strings.

The 15 common corruptions and 4 extra ("validation") ones of Hendrycks & Dietterich (ICLR 2019),
in the order of the reference library ``imagecorruptions``; the groups follow ImageNet-C.
"""

from __future__ import annotations

import operator

from robench.errors import RobenchError

NOISE = ("gaussian_noise", "shot_noise", "impulse_noise")
BLUR = ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur")
WEATHER = ("snow", "frost", "fog", "brightness")
DIGITAL = ("contrast", "elastic_transform", "pixelate", "jpeg_compression")
COMMON = NOISE + BLUR + WEATHER + DIGITAL
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = COMMON + EXTRA

GROUPS: dict[str, tuple[str, ...]] = {
    "noise": NOISE,
    "blur": BLUR,
    "weather": WEATHER,
    "digital": DIGITAL,
    "common": COMMON,
    "extra": EXTRA,
    "all": ALL,
}

SEVERITIES = (1, 2, 3, 4, 5)


def resolve_corruptions(spec: str) -> list[str]:
    """Names for a comma-separated list of groups and/or names, in order, without repeats.

    ``"noise"`` -> the 3 noise corruptions; ``"all"`` -> all 19; ``"gaussian_noise,fog"`` -> those two.
    Matching ignores case and surrounding spaces; anything unknown raises a one-line RobenchError.
    """
    out: list[str] = []
    parts = [p.strip().lower() for p in str(spec).split(",")]
    if not any(parts):
        raise RobenchError(f"no corruption given; use a group ({', '.join(GROUPS)}) or names such as gaussian_noise")
    for part in parts:
        if not part:
            continue
        if part in GROUPS:
            found = GROUPS[part]
        elif part in ALL:
            found = (part,)
        else:
            raise RobenchError(
                f"unknown corruption {part!r}; use a group ({', '.join(GROUPS)}) or one of: {', '.join(ALL)}"
            )
        out.extend(n for n in found if n not in out)
    return out


def check_severity(severity: int) -> int:
    """``severity`` as an int in 1..5, or a one-line RobenchError."""
    try:
        value = operator.index(severity)  # ints and NumPy integers; not floats or strings
    except TypeError:
        value = None
    if isinstance(severity, bool) or value not in SEVERITIES:
        raise RobenchError(f"corruption severity must be an integer 1..5, got {severity!r}")
    return int(value)
