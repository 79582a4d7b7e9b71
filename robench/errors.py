"""The exception types for user mistakes (:class:`RobenchError`, and :class:`SettingError` naming the setting at
fault): the CLI prints the message as one line and exits 2."""


class RobenchError(Exception):
    """A user-facing error (bad spec, missing file, mismatched model and data, ...).

    The message must be a single line that says what is wrong and, where it helps, what to do.
    """


class SettingError(RobenchError):
    """A setting out of range, naming its field (``eps: values must lie in (0, 1]``); the CLI shows the flag."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message
