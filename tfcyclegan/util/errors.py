"""Errors a user can act on: the CLI prints their message as one line, no traceback."""


class UserError(Exception):
    """A problem with the user's input, files or options; the message says what to do."""

    exit_code = 1


class UsageError(UserError):
    """Options that no run can use: exit code 2, as for other command-line usage errors."""

    exit_code = 2


def first_line(error, whole=False):
    """The first line of an exception's message (TensorFlow's OpError keeps it in
    `.message`; OSError's `strerror` has no file name), or its type's name when empty:
    what a one-line error or note quotes of a failure. `whole=True` takes str(error)
    as it is (an OSError's errno and file name included), for errors nobody expected."""
    text = str(error) if whole else getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)
    text = str(text).strip()
    return text.splitlines()[0] if text else type(error).__name__
