"""Where an export or a model directory lands, all or nothing: a target is replaced only
when it is empty or an earlier export of the same kind holding nothing else; the export is
built in a hidden folder beside it and swapped in only when finished and checked, so a
failed export leaves nothing behind and an earlier export at the same place intact.

Below tfcyclegan.export, which writes exports, because `tfcyclegan import`
(tfcyclegan.models.pretrained) lands its model directories here too."""

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path

import tensorflow as tf

from tfcyclegan.models import metadata as model_metadata
from tfcyclegan.models import modeldir
from tfcyclegan.models.export_format import DIRECTIONS, FORMAT_NAMES, SAVEDMODEL_FILE, tflite_file
from tfcyclegan.models.metadata import METADATA_FILE
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UserError, first_line

# What an export of each format writes beside metadata.json; a SavedModel's variables/
# holds only the checkpoint files below and its assets/ nothing (the generators have none).
_SAVEDMODEL_FILES = (SAVEDMODEL_FILE, "fingerprint.pb", "variables", "assets")
_VARIABLES_FILE = re.compile(r"variables\.(index|data-\d+-of-\d+)")
# The file names an export of each other format may list in its metadata.json.
_LISTED_FILES = {
    "tflite": {tflite_file(d) for d in DIRECTIONS},
    "keras": set(modeldir.GENERATOR_FILES.values()),
}


def _foreign_files(target, fmt, meta):
    """Entries of `target` (an earlier export of `fmt` described by ModelMetadata `meta`) that such an export does not write."""
    if fmt == "savedmodel":
        own = set(_SAVEDMODEL_FILES)
    else:
        own = set(meta.listed().values()) & _LISTED_FILES[fmt]
    own.add(METADATA_FILE)
    foreign = []
    for entry in sorted(target.iterdir()):
        if entry.name not in own or entry.is_symlink():
            foreign.append(entry.name)
        elif entry.name in ("variables", "assets") and fmt == "savedmodel" and entry.is_dir():
            foreign += [
                f"{entry.name}/{sub.name}"
                for sub in sorted(entry.iterdir())
                if entry.name == "assets" or not _VARIABLES_FILE.fullmatch(sub.name) or not sub.is_file()
            ]
        elif entry.is_dir() != (entry.name in ("variables", "assets")):
            foreign.append(entry.name)
    return foreign


def check_target(target, fmt):
    """UserError unless `target` is absent, an empty folder, or an earlier tfcyclegan export
    of format `fmt` (by its metadata.json) holding only the files such an export writes:
    nothing else is ever replaced."""
    if not os.path.lexists(target):
        return
    elsewhere = "choose another --output or move it away"
    if not target.is_dir():
        raise UserError(f"{target} exists and is not a tfcyclegan export (it is a file); {elsewhere}")
    if not any(target.iterdir()):
        return
    if not model_metadata.path(target).is_file():
        raise UserError(f"{target} exists and is not a tfcyclegan export (no {METADATA_FILE}); {elsewhere}")
    try:
        meta = model_metadata.read(target)
    except UserError:
        meta = None
    why = None
    if meta is None or meta.tfcyclegan_version is None or meta.format is None:
        why = f"its {METADATA_FILE} says otherwise"
    elif meta.format != fmt:
        why = f"it is a {FORMAT_NAMES[meta.format]} export"
    if why:
        raise UserError(
            f"{target} exists and is not an earlier tfcyclegan {FORMAT_NAMES.get(fmt, fmt)} export ({why}); {elsewhere}"
        )
    foreign = _foreign_files(target, fmt, meta)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(
            f"{target} holds files that tfcyclegan export did not write ({shown}); move them away or choose another --output"
        )


def _holds_cwd(folder):
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return False
    return cwd == str(folder) or cwd.startswith(str(folder).rstrip(os.sep) + os.sep)


def swap_in(staging, work):
    """Put the finished export `staging` at `work` (resolved), replacing an earlier export there.

    An earlier export is renamed aside as a whole, so `work` never holds a mix of old and
    new files. An empty folder, or the current folder (which cannot be renamed from under
    the shell that is in it), is kept and filled instead, the earlier files moved aside
    first and put back if anything fails."""
    if not os.path.lexists(work):
        os.rename(staging, work)
        return
    old = fsutil.unique_dir(work.parent, f".{work.name}.old-")
    if any(work.iterdir()) and not _holds_cwd(work):
        os.rename(work, old / "export")
        try:
            os.rename(staging, work)
        except BaseException:
            os.rename(old / "export", work)
            with contextlib.suppress(OSError):
                old.rmdir()
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    moved_out, moved_in = [], []
    try:
        for entry in sorted(work.iterdir()):
            os.rename(entry, old / entry.name)
            moved_out.append(entry.name)
        for entry in sorted(staging.iterdir()):
            os.rename(entry, work / entry.name)
            moved_in.append(entry.name)
    except BaseException:
        for name in moved_in:
            os.rename(work / name, staging / name)
        for name in moved_out:
            os.rename(old / name, work / name)
        with contextlib.suppress(OSError):
            old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_failure(error):
    """(reason, advice) for an OSError or a TensorFlow file error."""
    first = first_line(error)
    if isinstance(error, OSError):
        reason = first
        full = error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    else:
        # "<path>; No space left on device [Op:SaveV2]"
        reason = re.sub(r"\s*\[Op:\w+\]$", "", first.rsplit("; ", 1)[-1])
        full = "No space left" in first or "quota" in first.lower()
    return reason, "free some disk space or choose another --output" if full else "choose another --output"


@contextlib.contextmanager
def staged(target, fmt):
    """A hidden folder beside `target` that replaces it when the block succeeds and is
    deleted when it fails. A write that fails (a full disk) is one UserError; an
    earlier export at `target` is then left as it was."""
    work = Path(os.path.realpath(target))
    try:
        work.parent.mkdir(parents=True, exist_ok=True)
        staging = fsutil.unique_dir(work.parent, f".{work.name}.tmp-")
    except OSError as error:
        raise UserError(f"cannot write to {work.parent}: {first_line(error)}; choose another --output") from None
    earlier = work.is_dir() and any(work.iterdir())
    try:
        yield staging
        check_target(target, fmt)  # again: files may have been put there during the export
        swap_in(staging, work)
    except (OSError, tf.errors.OpError) as error:
        if isinstance(error, tf.errors.OpError) and str(staging) not in str(error):
            raise
        reason, advice = _write_failure(error)
        kept = f" and the earlier export in {target} is intact" if earlier else ""
        raise UserError(
            f"cannot write the export into {work.parent}: {reason}; nothing was written{kept}; {advice}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
