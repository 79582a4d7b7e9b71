"""robench: measure the inequality phenomenon of adversarially trained image classifiers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
