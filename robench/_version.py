"""robench's version, apart from the package facade (:mod:`robench`) so that the modules recording it (the
runner, the trainer, the reports) import it without importing the facade."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"
