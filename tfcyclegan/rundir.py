"""A run directory kept safe: one `fit` at a time in it, never inside the data it trains
on, and only checkpoints that read back whole are used.

Checkpoints are found from the files themselves when tf.train.CheckpointManager's state
file (`checkpoints/checkpoint`) is missing or damaged, and each candidate is read back in
full (TensorFlow checks every tensor's CRC32C) before it is used, newest first, so a
truncated, deleted or bit-flipped checkpoint falls back to the newest intact one.
"""

import fcntl
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from tfcyclegan.errors import UserError

LOCK_FILE = "fit.lock"
STATE_FILE = "checkpoint"
_PREFIX = re.compile(r"ckpt-(\d+)")


class RunLock:
    """An exclusive flock on <run_dir>/fit.lock, which holds the PID of its holder.

    The kernel drops an flock when its process ends however it ends (even SIGKILL), so
    a lock file left behind never keeps a run locked. `acquire` raises UserError naming
    the PID of the process that holds it; `release` is a no-op unless held.
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.fd = None

    def acquire(self):
        path = Path(self.run_dir) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(f"cannot create {path}: {error.strerror}; pass a --run-dir you can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            holder = f"PID {holder}" if holder.isdigit() else "a process that is just starting"
            raise UserError(
                f"{self.run_dir} is in use by another `tfcyclegan fit` ({holder}); wait for it to finish or stop "
                "it, or pass another --run-dir"
            ) from None
        except OSError as error:
            os.close(fd)
            raise UserError(f"cannot lock {path}: {error.strerror}; pass a --run-dir on a local disk") from None
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            self.release()
            raise UserError(
                f"cannot write {path}: {error.strerror}; free some disk space or pass a --run-dir on another disk"
            ) from None

    @property
    def held(self):
        return self.fd is not None

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None


def check_writable(run_dir):
    """Before any work: `run_dir` must be a folder, or a path one can be made at, that this
    process may write (os.access also sees a read-only mount, which stops even root)."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--run-dir {path} is a file; give a folder (a new one, or a run directory to resume)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create --run-dir {path}: {existing} is a file; give another --run-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in {existing.resolve()} (read-only); pass a --run-dir in a folder you can write")


def check_outside(run_dir, domains):
    """Refuse a run directory inside a domain's folder: its samples and loss figure would
    be listed as training images. `domains` holds (label, folder) pairs."""
    inside = Path(run_dir).resolve()
    for label, folder in domains:
        folder = Path(folder).resolve()
        if inside == folder or folder in inside.parents:
            raise UserError(
                f"run directory {run_dir} is inside domain {label}'s folder {folder}, where its samples would become "
                f"training images; pass a --run-dir outside {folder}"
            )


def is_run_dir(folder):
    """Whether `folder` looks like a tfcyclegan run directory (config.json and checkpoints/)."""
    return os.path.isfile(os.path.join(folder, "config.json")) and os.path.isdir(os.path.join(folder, "checkpoints"))


def _number(prefix):
    match = _PREFIX.fullmatch(Path(prefix).name)
    return int(match.group(1)) if match else None


def listed_newest(checkpoint_dir):
    """Number of the newest checkpoint the state file lists, or None if it is missing or unreadable."""
    try:
        text = (Path(checkpoint_dir) / STATE_FILE).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    found = re.findall(r'^model_checkpoint_path: "([^"\n]*)"$', text, re.M)
    return _number(found[0]) if len(found) == 1 else None


def candidates(checkpoint_dir):
    """Numbers of the checkpoints to try, newest first.

    When the state file is readable its newest entry is the newest candidate (the
    manager lists a checkpoint only once it is complete); when it is missing or
    damaged, every ckpt-N.index in the folder is one.
    """
    folder = Path(checkpoint_dir)
    numbers = {_number(p.name[: -len(".index")]) for p in folder.glob("ckpt-*.index")} - {None}
    newest = listed_newest(folder)
    if newest is not None:
        numbers = {n for n in numbers if n <= newest} | {newest}
    return sorted(numbers, reverse=True)


def _damage(prefix):
    """Why the checkpoint at `prefix` cannot be used, or None when every tensor reads back intact."""
    if not Path(f"{prefix}.index").is_file():
        return "its .index file is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        return f"its .index file is unreadable: {_first_line(error)}"
    try:
        for name in reader.get_variable_to_dtype_map():
            reader.get_tensor(name)
    except IndexError:  # what TensorFlow raises for a file shorter than its index says
        return "a .data file is truncated"
    except tf.errors.OpError as error:
        reason = _first_line(error)
        if "No such file" in reason:
            return "a .data file is missing"
        if "Checksum does not match" in reason:
            return "a .data file fails its checksum"
        return f"a .data file is damaged: {reason}"
    return None


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


@dataclass
class Found:
    """The newest intact checkpoint (`path`, None if there is none) and the newer ones
    skipped as damaged, as (path, reason)."""

    path: str | None = None
    damaged: list = field(default_factory=list)

    @property
    def number(self):
        return _number(self.path) if self.path else None

    def notes(self):
        """One line per damaged checkpoint skipped, saying which one is used instead."""
        instead = f"using {self.path}, the newest intact one" if self.path else "no intact checkpoint is left"
        return [
            f"note: checkpoint {path} is damaged ({reason}); {instead}; the damaged files are left for you to inspect"
            for path, reason in self.damaged
        ]


def newest_intact(checkpoint_dir):
    """Find the newest checkpoint in `checkpoint_dir` whose every tensor reads back; a Found."""
    found = Found()
    for number in candidates(checkpoint_dir):
        prefix = str(Path(checkpoint_dir) / f"ckpt-{number}")
        reason = _damage(prefix)
        if reason is None:
            found.path = prefix
            break
        found.damaged.append((prefix, reason))
    return found


def highest_damaged(checkpoint_dir, above=0):
    """The highest number above `above` of a damaged checkpoint in `checkpoint_dir` (any
    ckpt-<n>.* file counts, even one without its .index), or `above` if there is none.

    A resumed run numbers its checkpoints above it, so a damaged checkpoint left for
    inspection is never overwritten, also after the state file stopped listing it; an
    intact one above `above` (a save killed before it was listed) is overwritten as usual.
    """
    numbers = {_number(p.name.split(".")[0]) for p in Path(checkpoint_dir).glob("ckpt-*.*")} - {None}
    damaged = [n for n in numbers if n > above and _damage(str(Path(checkpoint_dir) / f"ckpt-{n}")) is not None]
    return max(damaged, default=above)


def relist(checkpoint_dir, found):
    """Rewrite the state file to list the intact checkpoints up to `found.path`, so that
    tf.train.CheckpointManager resumes from it and never deletes the damaged ones."""
    kept = [str(Path(checkpoint_dir) / f"ckpt-{n}") for n in candidates(checkpoint_dir) if n <= found.number]
    tf.compat.v1.train.update_checkpoint_state(str(checkpoint_dir), found.path, list(reversed(kept[:3])))
