"""Finding a checkpoint's undocumented input normalisation: accuracy under candidate mean/std settings.

A network trained on normalised inputs and fed other ones still runs but classifies at about chance.
When a source does not state its preprocessing, the setting that gives clearly the highest clean
accuracy on a few hundred labelled images is the one it was trained with (docs/third-party.md).
"""

from __future__ import annotations

import pandas as pd
import torch

from robench.data.imageset import ImageSet
from robench.errors import RobenchError
from robench.models.efficientnet_layout import tf_twin
from robench.models.wrapper import ModelInfo, RobenchModel

Normalization = tuple[tuple[float, ...], tuple[float, ...]]

MIN_HINT_IMAGES = 16  # fewer images say too little about accuracy for a hint

# (mean, std) per channel in [0, 1] units; a single value applies to every channel.
CANDIDATES: dict[str, Normalization] = {
    "raw": ((0.0,), (1.0,)),
    "half": ((0.5,), (0.5,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet-mean-std0.225": ((0.485, 0.456, 0.406), (0.225,)),
    "imagenet-mean-only": ((0.485, 0.456, 0.406), (1.0,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar10-std0.2023": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar10-255": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "cifar10-mean-only": ((0.4914, 0.4822, 0.4465), (1.0,)),
    "cifar10-std0.225": ((0.4914, 0.4822, 0.4465), (0.225,)),
    "mnist": ((0.1307,), (0.3081,)),
}


def probe_normalization(model: RobenchModel, data: ImageSet, candidates: dict[str, Normalization] | None = None,
                        limit: int | None = 300, batch_size: int = 256) -> pd.DataFrame:
    """Clean accuracy of ``model``'s network on the first ``limit`` images of ``data`` under each candidate.

    ``candidates`` maps a name to ``(mean, std)`` in [0, 1] units (default :data:`CANDIDATES`,
    less those whose channel count differs from the images'); the setting the model was loaded
    with is added as ``loaded``. Returns one row per candidate (``candidate``, ``mean``, ``std``,
    ``accuracy`` in [0, 1], ``loss``: mean cross-entropy in nats, ``n`` images), highest accuracy
    first (ties: lower loss). The loss separates settings whose accuracies differ by a few images.
    """
    channels = data.image_shape[0]
    chosen = dict(candidates if candidates is not None else CANDIDATES)
    chosen = {k: v for k, v in chosen.items() if all(len(t) in (1, channels) for t in v)}
    chosen["loaded"] = (tuple(model.info.mean), tuple(model.info.std))
    if any(s <= 0 for _, std in chosen.values() for s in std):
        raise RobenchError("candidate std values must be positive")
    n = len(data) if limit is None else min(limit, len(data))
    if n < 1:
        raise RobenchError(f"probing needs at least one image, got limit {limit}")
    correct, loss = dict.fromkeys(chosen, 0), dict.fromkeys(chosen, 0.0)
    net = model.net.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x, y = data.batch(start, min(start + batch_size, n))
            for name, (mean, std) in chosen.items():
                m = torch.tensor(mean).view(1, -1, 1, 1)
                s = torch.tensor(std).view(1, -1, 1, 1)
                logits = net((x - m) / s)
                correct[name] += int((logits.argmax(1) == y).sum())
                loss[name] += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
    rows = [{"candidate": k, "mean": ",".join(f"{v:g}" for v in mean), "std": ",".join(f"{v:g}" for v in std),
             "accuracy": correct[k] / n, "loss": loss[k] / n, "n": n} for k, (mean, std) in chosen.items()]
    return (pd.DataFrame(rows).sort_values(["accuracy", "loss"], ascending=[False, True], kind="stable")
            .reset_index(drop=True))


def near_chance(accuracy: float, num_classes: int) -> bool:
    """Whether ``accuracy`` is within a quarter of the way from chance (1/classes) to perfect: a hint of
    wrong preprocessing (below 0.325 for 10 classes)."""
    chance = 1.0 / num_classes
    return num_classes > 1 and accuracy < chance + 0.25 * (1.0 - chance)


def chance_hint(info: ModelInfo, accuracy: float, n: int, num_classes: int) -> str | None:
    """A one-line hint (no ``robench: warning:`` prefix) when ``accuracy`` (in [0, 1]) on the first ``n`` images is
    near chance: what to check (normalisation, the ``tf_`` padding variant, input size and crop). None when the
    accuracy is not near chance or ``n`` is below :data:`MIN_HINT_IMAGES`."""
    if n < MIN_HINT_IMAGES or not near_chance(accuracy, num_classes):
        return None

    def values(v: tuple[float, ...]) -> str:
        return ",".join(f"{x:g}" for x in v)

    checks = [f"the input normalisation (mean {values(info.mean)}, std {values(info.std)}; robench "
              "probe-normalization tries the usual ones)"]
    arch = (info.arch or "").removeprefix("timm:")
    twin = tf_twin(arch) if arch and info.source != "timm-hub" else None  # hub weights fit their own arch
    if twin is not None:
        weights = "these TensorFlow weights" if info.source == "efficientnet-pytorch" else "weights ported from TensorFlow"
        how = "timm:" if (info.arch or "").startswith("timm:") else "--arch "
        checks.append(f"the padding variant ({weights} need {how}{twin}, not {arch})")
    expected = [f"{'x'.join(map(str, info.input_size))} pixels" if info.input_size else "",
                f"centre crop {info.crop_pct:g}" if info.crop_pct else "",
                f"{info.interpolation} resizing" if info.interpolation else ""]
    expected = [e for e in expected if e]
    checks.append("the input size and crop" + (f" (the model expects {', '.join(expected)})" if expected else ""))
    return (f"clean accuracy {accuracy:.3f} on the first {n} images is near chance ({1 / num_classes:.3f}); check "
            + "; ".join(checks))
