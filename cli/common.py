"""What every command shares: one-line errors instead of tracebacks."""

import functools
import sys

import click

from tfcyclegan.errors import UserError


def user_errors(command):
    """Print a UserError as `error: ...` and exit 1; `tfcyclegan --debug` shows the traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as error:
            if click.get_current_context().find_root().params.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)

    return wrapper
