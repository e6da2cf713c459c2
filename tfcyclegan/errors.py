"""Errors a user can act on: the CLI prints their message as one line, no traceback."""


class UserError(Exception):
    """A problem with the user's input, files or options; the message says what to do."""

    exit_code = 1


class UsageError(UserError):
    """Options that no run can use: exit code 2, as for other command-line usage errors."""

    exit_code = 2
