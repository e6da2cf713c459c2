"""Files and folders tfcyclegan creates for itself: unique temporary names (so two runs
never share one), permissions from the umask (unlike tempfile's 0600/0700, so a shared
model or data set stays readable by whoever the user's umask allows), writing a file whole
or not at all, publishing a finished file without replacing one that appeared meanwhile, and
the SHA-256 a download or an imported file is checked by."""

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from tfcyclegan.util.errors import UserError, first_line


def unique_dir(parent, prefix):
    """A new, empty folder <parent>/<prefix><random>, mode 0777 less the umask."""
    for _ in range(100):
        path = Path(parent) / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no unused temporary name {prefix}* in {parent}")


def unique_file(parent, prefix, suffix=""):
    """(open binary file, path) of a new, empty file <parent>/<prefix><random><suffix>, mode 0666 less the umask."""
    for _ in range(100):
        path = Path(parent) / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), path
    raise FileExistsError(f"no unused temporary name {prefix}*{suffix} in {parent}")


@contextlib.contextmanager
def replacing(target, suffix=".part"):
    """Write `target` whole or not at all: yields a new temporary path beside it, to be
    written by the block; when the block finishes, that file replaces `target` in one
    rename (same folder, so atomic: a kill or a full disk never leaves `target` half
    written); when the block raises, it is removed. `suffix` ends the temporary name,
    for writers that go by the extension (e.g. ".weights.h5")."""
    target = Path(target)
    file, temporary = unique_file(target.parent, f".{target.name}.", suffix)
    file.close()
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(target, data):
    """Replace `target` with `data` (str, written as UTF-8, or bytes) whole or not at all (see replacing)."""
    with replacing(target) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)


def write_for_user(path, text, remedy):
    """Write `text` to a file the user named (`path`, ~ expanded) whole or not at all; when it
    cannot be written, a UserError naming it and ending in `remedy`."""
    try:
        write_atomic(Path(path).expanduser(), text)
    except OSError as error:
        raise UserError(f"cannot write {path}: {first_line(error)}; {remedy}") from None


def publish(temporary, target, overwrite):
    """Give the finished file `temporary` the name `target`; False (and `temporary` removed)
    when `target` exists and `overwrite` is off, even if it appeared a moment ago."""
    if overwrite:
        os.replace(temporary, target)
        return True
    try:
        # A hard link fails if the name is taken, atomically; a rename would replace it.
        os.link(temporary, target)
    except FileExistsError:
        os.unlink(temporary)
        return False
    except OSError:
        # A filesystem without hard links (FAT, some network shares): check, then rename.
        if os.path.lexists(target):
            os.unlink(temporary)
            return False
        os.replace(temporary, target)
        return True
    os.unlink(temporary)
    return True


def sha256(path):
    """The SHA-256 of the file at `path`, as hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
