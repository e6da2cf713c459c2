"""One reporting convention for the library: results on stdout, progress and notes on stderr.

The library returns what it computes; what it says along the way (progress, notes,
warnings) goes through `note`, so that a user can pipe a command's results (stdout)
and still see its progress, and tests can tell the two apart. Presentation of results
(tables, JSON) lives in `cli/`.
"""

import contextlib
import sys


def note(message):
    """Progress or a note for the user: one line (or more) on stderr, flushed at once."""
    print(message, file=sys.stderr, flush=True)


def result(message):
    """A result line on stdout, flushed at once, for library code that streams results
    as it goes (e.g. a file translated); everything else returns its results."""
    print(message, flush=True)


@contextlib.contextmanager
def stdout_as_notes():
    """Within the block, what third-party code prints on stdout goes to stderr with the notes.

    Keras' `keras.utils.get_file` prints `Downloading data from URL` and its progress bar
    on stdout, which is for results (`tfcyclegan download ... | ...` must get the path only).
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield
