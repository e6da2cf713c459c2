"""What every command shares: one-line errors instead of tracebacks, a quiet TensorFlow."""

import functools
import os
import sys

import click

from tfcyclegan.util.errors import UserError, first_line

trust_model_option = click.option(
    "--trust-model",
    is_flag=True,
    help="Load a SavedModel whose graph holds ops no translator has (file, process, network or Python ops), "
    "which are refused otherwise; only for a model from a source you trust.",
)
checkpoint_option = click.option(
    "--checkpoint",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="A run directory's checkpoint ckpt-N instead of its newest (`tfcyclegan evaluate RUN --checkpoints all` "
    "lists and scores them).",
)


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
                quiet_native_log()
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


def check_result_file(path, option="--json"):
    """Before the work: `path`, where a command will write its results, must be a new name or a
    regular file (fsutil.check_new_or_regular), and none of a run's or a study's own files."""
    from tfcyclegan.runs import layout
    from tfcyclegan.study import server
    from tfcyclegan.util import fsutil

    fsutil.check_new_or_regular(path, option)
    for owner, what in ((layout.owning_run, "run directory"), (server.owning_study, "study directory")):
        folder = owner(path)
        if folder:
            raise UserError(
                f"{option} {path} is a file of the {what} {folder}, which it would replace; give a path outside "
                "its own files"
            )


def quiet_native_log():
    """Send what C++ code writes straight to file descriptor 2 to /dev/null for the rest of the command.

    TensorFlow's and absl's start-up lines (oneDNN notice, CUDA probing, `WARNING: All log
    messages before absl::InitializeLog()`, printed even when the user set
    TF_CPP_MIN_LOG_LEVEL), the TFLite converter's `fully_quantize: ...` and LiteRT's
    `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` are written by C++ to fd 2,
    where no Python logging setting reaches them. Python's own stderr (notes, progress,
    errors, warnings) moves to a duplicate of the real fd 2 first, so only the C++ lines go.
    Under a test runner that captured sys.stderr (it is not fd 2) nothing is changed.
    The price: a crash inside C++ says nothing more than its exit status; `--debug` keeps
    fd 2 as it is.
    """
    global _native_log_quiet
    if _native_log_quiet:
        return
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return
    sys.stderr.flush()
    python_stderr = os.dup(2)
    encoding, errors = sys.stderr.encoding, sys.stderr.errors
    # Open for the rest of the process, line-buffered as Python's own stderr.
    sys.stderr = open(python_stderr, "w", buffering=1, encoding=encoding, errors=errors)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    _native_log_quiet = True


_native_log_quiet = False


def quiet_tensorflow():
    """Import TensorFlow with its C++ logging at errors only and its Python loggers at errors only.

    TF_CPP_MIN_LOG_LEVEL=3 (unless the user set a level) saves TensorFlow the work of
    formatting lines that quiet_native_log drops anyway.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tf.get_logger().setLevel("ERROR")
