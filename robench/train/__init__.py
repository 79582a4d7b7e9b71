"""The bundled trainer: ``robench train --method NAME``."""

from robench.train.methods import METHODS, TrainMethod
from robench.train.trainer import TrainConfig, train

__all__ = ["METHODS", "TrainConfig", "TrainMethod", "train"]
