"""What every command shares: one-line errors instead of tracebacks, a quiet TensorFlow."""

import functools
import os
import sys
import tempfile

import click

from tfcyclegan.util.errors import UserError, first_line


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
            if not debug:
                quiet_tensorflow()
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
            first = first_line(error, whole=True)
            said = "" if first == type(error).__name__ else f": {first}"
            click.echo(
                f"error: unexpected {type(error).__name__}{said}; this is a bug: rerun "
                "with `tfcyclegan --debug ...` for the traceback and report it",
                err=True,
            )
            sys.exit(1)

    return wrapper


def quiet_tensorflow():
    """Import TensorFlow without its C++ start-up log (oneDNN notice, CUDA probing, cuInit errors).

    TF_CPP_MIN_LOG_LEVEL=3 silences TensorFlow's C++ logging once it has read it, but absl
    writes a few lines while the library loads, before that; those go to a temporary file
    that takes file descriptor 2 during the import, and come back if the import fails.
    TensorFlow's and absl's Python loggers keep their errors only. A TF_CPP_MIN_LOG_LEVEL
    the user set is theirs: then nothing is changed.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            os.write(2, log.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tf.get_logger().setLevel("ERROR")
