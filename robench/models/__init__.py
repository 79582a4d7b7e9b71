"""Models: architectures (a registry of named constructors), checkpoint loading, the evaluation wrapper."""

from robench.models import architectures  # noqa: F401  (registers robench's architectures)
from robench.models.registry import create_model, list_models

__all__ = ["create_model", "list_models"]
