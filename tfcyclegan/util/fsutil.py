"""Files and folders tfcyclegan creates for itself: unique temporary names (so two runs
never share one), permissions from the umask (unlike tempfile's 0600/0700, so a shared
model or data set stays readable by whoever the user's umask allows), writing a file whole
or not at all, publishing a finished file without replacing one that appeared meanwhile, and
the SHA-256 a download or an imported file is checked by. And the files it reads of its own
(config.json, state files, answers): regular files only, since a named pipe blocks a reader
forever and a device (/dev/zero) never ends."""

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
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


_SPECIAL_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def kind_of(mode):
    """What a file of st_mode `mode` is, in words: "a regular file", "a named pipe", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _SPECIAL_FILES if test(mode)), "not a file")


class NotRegularFile(OSError):
    """A path tfcyclegan reads is a named pipe, a device, a folder...: refused before any read."""

    def __init__(self, path, mode):
        super().__init__(errno.EINVAL, f"not a regular file ({kind_of(mode)})", str(path))


def open_regular(path):
    """`path` opened for reading in binary, or NotRegularFile (an OSError) when it is not a
    regular file. Opened with O_NONBLOCK, so that a named pipe without a writer cannot block
    the open, then checked with fstat (what was opened, not what the name meant a moment
    before); blocking reads are restored for a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


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


def read_regular(path):
    """The bytes of `path` when it is a regular file (open_regular); OSError otherwise."""
    with open_regular(path) as file:
        return file.read()


def read_regular_text(path):
    """The text (UTF-8) of `path` when it is a regular file; OSError or UnicodeDecodeError otherwise."""
    return read_regular(path).decode("utf-8")


def make_folders(path):
    """mkdir -p without recursion: `path` and its missing parents, made one by one from the top
    (Path.mkdir(parents=True) recurses once per missing folder and fails with RecursionError
    some thousand folders deep); OSError as mkdir raises it."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o777)
        except FileExistsError:
            if not folder.is_dir():
                raise


def printable(path):
    """`path` as text that can be printed: bytes of a name that are not UTF-8 (which Python
    keeps as surrogates) shown as \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def check_utf8(path, option):
    """A UserError when `path` is not valid UTF-8: TensorFlow takes file names as UTF-8 strings
    and fails on such a name after the work has begun."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{option} {printable(path)} is not valid UTF-8, which TensorFlow needs in file names; "
            f"give {option} a name in UTF-8"
        ) from None


def check_new_or_regular(path, option):
    """Before writing a result to `path`: it must be a new name or a regular file. Never a
    symbolic link (followed silently, it would write elsewhere; replaced, the link is lost),
    a named pipe, a device or a folder, which a rename would replace by a file."""
    try:
        mode = os.lstat(Path(path).expanduser()).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise UserError(f"cannot use {option} {path}: {first_line(error)}; choose another {option} file") from None
    if not stat.S_ISREG(mode):
        raise UserError(f"{option} {path} is {kind_of(mode)}, not a regular file; give a new path or a regular file")


def owning_folder(path, is_owner, names):
    """The nearest folder above `path` (its folder resolved) for which `is_owner(folder)` holds,
    when `path` is one of that folder's own files or folders `names` or lies inside one; else
    None. What a result written for the user must never replace: a run's config.json, a
    study's manifest.json..."""
    path = Path(path).expanduser()
    path = Path(os.path.realpath(path.parent)) / path.name
    for folder in path.parents:
        if is_owner(folder):
            return folder if path.relative_to(folder).parts[0] in names else None
    return None


def write_atomic(target, data):
    """Replace `target` with `data` (str, written as UTF-8, or bytes) whole or not at all (see replacing)."""
    with replacing(target) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)


def write_for_user(path, text, remedy, option="--json"):
    """Write `text` to a file the user named with `option` (`path`, ~ expanded) whole or not at
    all, only onto a new name or a regular file (check_new_or_regular); when it cannot be
    written, a UserError naming it and ending in `remedy`."""
    check_new_or_regular(path, option)
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
    """The SHA-256 of the regular file at `path`, as hex, read in 1 MiB blocks (NotRegularFile,
    an OSError, for a folder, a named pipe or a device, which would block or never end)."""
    digest = hashlib.sha256()
    with open_regular(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
