"""The one exception type for user mistakes: the CLI prints its message as one line and exits 2."""


class RobenchError(Exception):
    """A user-facing error (bad spec, missing file, mismatched model and data, ...).

    The message must be a single line that says what is wrong and, where it helps, what to do.
    """
