"""Which checkpoint files of a run are usable: only checkpoints that read back whole.

Checkpoints are found from the files themselves when tf.train.CheckpointManager's state
file (`checkpoints/checkpoint`) is missing or damaged, and each candidate is read back in
full (TensorFlow checks every tensor's CRC32C) before it is used, newest first, so a
truncated, deleted or bit-flipped checkpoint falls back to the newest intact one.
"""

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from tfcyclegan.runs.layout import CHECKPOINT_FILES, MAX_TO_KEEP, STATE_FILE, checkpoint_number, checkpoint_prefix
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UserError, first_line


def listed_newest(checkpoint_dir):
    """Number of the newest checkpoint the state file lists, or None if it is missing or unreadable.

    A state file that is not a regular file (a named pipe, a link to a device) is a
    UserError: TensorFlow's CheckpointManager would read it too, and block or never end.
    """
    path = Path(checkpoint_dir) / STATE_FILE
    try:
        text = fsutil.read_regular_text(path)
    except fsutil.NotRegularFile as error:
        raise UserError(
            f"{path} is {first_line(error)}; move it away (the checkpoints are found from their ckpt-* files)"
        ) from None
    except (OSError, UnicodeDecodeError):
        return None
    found = re.findall(r'^model_checkpoint_path: "([^"\n]*)"$', text, re.M)
    return checkpoint_number(found[0]) if len(found) == 1 else None


def candidates(checkpoint_dir):
    """Numbers of the checkpoints to try, newest first.

    When the state file is readable its newest entry is the newest candidate (the
    manager lists a checkpoint only once it is complete); when it is missing or
    damaged, every ckpt-N.index in the folder is one.
    """
    folder = Path(checkpoint_dir)
    numbers = {checkpoint_number(p.name[: -len(".index")]) for p in folder.glob(f"{CHECKPOINT_FILES}.index")} - {None}
    newest = listed_newest(folder)
    if newest is not None:
        numbers = {n for n in numbers if n <= newest} | {newest}
    return sorted(numbers, reverse=True)


def _damage(prefix):
    """Why the checkpoint at `prefix` cannot be used, or None when every tensor reads back intact."""
    if not Path(f"{prefix}.index").is_file():
        return "its .index file is missing"
    # TensorFlow opens them blocking: a named pipe among them would hang the reader for good.
    for part in Path(prefix).parent.glob(f"{Path(prefix).name}.*"):
        try:
            mode = os.stat(part).st_mode
        except OSError as error:
            return f"{part.name} cannot be read: {first_line(error)}"
        if not stat.S_ISREG(mode):
            return f"{part.name} is {fsutil.kind_of(mode)}, not a regular file"
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        return f"its .index file is unreadable: {first_line(error)}"
    try:
        for name in reader.get_variable_to_dtype_map():
            reader.get_tensor(name)
    except IndexError:  # what TensorFlow raises for a file shorter than its index says
        return "a .data file is truncated"
    except tf.errors.OpError as error:
        reason = first_line(error)
        if "No such file" in reason:
            return "a .data file is missing"
        if "Checksum does not match" in reason:
            return "a .data file fails its checksum"
        return f"a .data file is damaged: {reason}"
    return None


@dataclass
class Found:
    """The newest intact checkpoint (`path`, None if there is none) and the newer ones
    skipped as damaged, as (path, reason)."""

    path: str | None = None
    damaged: list = field(default_factory=list)

    @property
    def number(self):
        return checkpoint_number(self.path) if self.path else None

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
        prefix = str(checkpoint_prefix(checkpoint_dir, number))
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
    files = Path(checkpoint_dir).glob(f"{CHECKPOINT_FILES}.*")
    numbers = {checkpoint_number(p.name.split(".")[0]) for p in files} - {None}
    damaged = [n for n in numbers if n > above and _damage(str(checkpoint_prefix(checkpoint_dir, n))) is not None]
    return max(damaged, default=above)


def relist(checkpoint_dir, found):
    """Rewrite the state file to list the intact checkpoints up to `found.path`, so that
    tf.train.CheckpointManager resumes from it and never deletes the damaged ones."""
    kept = [str(checkpoint_prefix(checkpoint_dir, n)) for n in candidates(checkpoint_dir) if n <= found.number]
    tf.compat.v1.train.update_checkpoint_state(str(checkpoint_dir), found.path, list(reversed(kept[:MAX_TO_KEEP])))


def retain(checkpoint_dir, keep, newest=MAX_TO_KEEP):
    """What tf.train.CheckpointManager(max_to_keep=`newest`) does after a save, except that
    an older checkpoint `keep(path)` holds (a `--keep-every` epoch) stays on disk.

    Works from the files, not the state file (a resumed manager forgets what it listed
    before): the `newest` checkpoints stay and are listed; each older one is kept if
    `keep` holds, else deleted when it is intact (a damaged one is left for inspection,
    as `newest_intact` says).
    """
    folder = Path(checkpoint_dir)
    numbers = sorted(
        {checkpoint_number(p.name[: -len(".index")]) for p in folder.glob(f"{CHECKPOINT_FILES}.index")} - {None},
        reverse=True,
    )
    for number in numbers[newest:]:
        prefix = str(checkpoint_prefix(folder, number))
        if not keep(prefix) and _damage(prefix) is None:
            for path in folder.glob(f"{checkpoint_prefix(folder, number).name}.*"):
                path.unlink()
    latest = tf.train.latest_checkpoint(str(folder))
    if latest:
        paths = [str(checkpoint_prefix(folder, n)) for n in reversed(numbers[:newest])]
        tf.compat.v1.train.update_checkpoint_state(str(folder), latest, paths)


def intact(checkpoint_dir):
    """Numbers of every checkpoint in `checkpoint_dir` that reads back whole, oldest first:
    the newest ones and those `fit --keep-every` kept."""
    folder = Path(checkpoint_dir)
    numbers = sorted(
        {checkpoint_number(p.name[: -len(".index")]) for p in folder.glob(f"{CHECKPOINT_FILES}.index")} - {None}
    )
    return [n for n in numbers if _damage(str(checkpoint_prefix(folder, n))) is None]
