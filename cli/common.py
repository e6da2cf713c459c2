"""What every command shares: one-line errors instead of tracebacks."""

import functools
import sys

import click

from tfcyclegan.errors import UserError


def user_errors(command):
    """Print a UserError as `error: ...` and exit 1; `tfcyclegan --debug` shows the traceback.

    Anything else unexpected is one line too, naming the exception and asking for a
    `--debug` rerun; Ctrl-C outside training (which saves and exits 0 itself) exits 130.
    Click's own usage errors pass through (exit 2).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug")
        try:
            return command(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except UserError as error:
            if debug:
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("\ninterrupted", err=True)
            sys.exit(130)
        except Exception as error:
            if debug:
                raise
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            click.echo(
                f"error: unexpected {type(error).__name__}{': ' + first if first else ''}; this is a bug: rerun "
                "with `tfcyclegan --debug ...` for the traceback and report it",
                err=True,
            )
            sys.exit(1)

    return wrapper
