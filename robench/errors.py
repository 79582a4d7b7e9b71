"""The exception types for user mistakes (:class:`RobenchError`, and :class:`SettingError` naming the setting at
fault): the CLI prints the message as one line and exits 2."""


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
