"""The bundled trainer: ``robench train --method NAME``."""

from robench.train.config import PRESETS, TrainConfig
from robench.train.methods import METHODS, TrainMethod
from robench.train.trainer import train

__all__ = ["METHODS", "PRESETS", "TrainConfig", "TrainMethod", "train"]
