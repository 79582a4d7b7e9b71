"""The exception types for user mistakes, four in all: :class:`RobenchError`, the base; :class:`SettingError`, naming
the setting at fault; :class:`OtherRunError`, an output directory holding another run's results; and
:class:`robench.io.WriteError` (defined beside the writing code), a file that cannot be written, also an ``OSError``.
The CLI prints the message of any of them as one line and exits 2."""


class RobenchError(Exception):
    """A user-facing error (bad spec, missing file, mismatched model and data, ...).

    The message must be a single line that says what is wrong and, where it helps, what to do.
    """


class SettingError(RobenchError):
    """A setting out of range, naming its field (``eps: values must lie in (0, 1]``); the CLI shows the flag.

    ``sep`` joins the name and the message: ``": "`` by default, ``" "`` for messages that read on from the
    name (``limit must be at least 1, got 0``; on the command line ``--limit must be at least 1, got 0``).
    """

    def __init__(self, field: str, message: str, *, sep: str = ": ") -> None:
        super().__init__(f"{field}{sep}{message}")
        self.field, self.message, self.sep = field, message, sep

    def named(self, name: str) -> str:
        """The message with the setting called ``name`` (the CLI passes its flag)."""
        return f"{name}{self.sep}{self.message}"


class OtherRunError(RobenchError):
    """An output directory already holds the finished results of a different run (another ``signature``: model, data,
    seed or setting). Scripts that mean to replace such a run catch it, remove ``meta.json`` and evaluate again: the
    new run's finished batches are kept for a resume, which ``overwrite=True`` would discard."""
