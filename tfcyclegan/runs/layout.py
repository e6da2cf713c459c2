"""Every path in a run directory, named once: what `fit` writes and every reader finds.

    <run>/config.json                 the TrainConfig and the image counts it trained on
    <run>/checkpoints/                tf.train.CheckpointManager's folder, keeping MAX_TO_KEEP
    <run>/checkpoints/checkpoint      its state file, listing the kept checkpoints
    <run>/checkpoints/ckpt-<n>.*      checkpoint n (.index and .data-*), n the global step
    <run>/fit.lock                    held by the one `fit` training in the run
    <run>/logs/                       TensorBoard event files
    <run>/losses.csv, losses.png      each epoch's mean losses, and their figure
    <run>/samples/epoch_NNN.png       each epoch's sample grid

Stdlib only. The two names that mark a folder as a run come from tfcyclegan.util.runmarker,
which the image listing (below this package) reads too.
"""

import re
from pathlib import Path

from tfcyclegan.util import fsutil, runmarker
from tfcyclegan.util.runmarker import CHECKPOINT_DIR, CONFIG_FILE

# tf.train.CheckpointManager's `checkpoint_name` and `max_to_keep`, and the name of its state file.
CHECKPOINT_PREFIX = "ckpt"
MAX_TO_KEEP = 3
STATE_FILE = "checkpoint"
LOCK_FILE = "fit.lock"
# A glob for every file of every checkpoint in a checkpoint folder.
CHECKPOINT_FILES = f"{CHECKPOINT_PREFIX}-*"
_NUMBERED = re.compile(rf"{CHECKPOINT_PREFIX}-(\d+)")


def checkpoint_prefix(folder, number):
    """The prefix of checkpoint `number` in checkpoint folder `folder` (its files are <prefix>.index, .data-*)."""
    return Path(folder) / f"{CHECKPOINT_PREFIX}-{number}"


def checkpoint_number(prefix):
    """n of a checkpoint prefix <...>/ckpt-<n> (or its name), None for any other name."""
    match = _NUMBERED.fullmatch(Path(prefix).name)
    return int(match.group(1)) if match else None


class RunLayout:
    """The paths of the run directory `root`."""

    def __init__(self, root):
        self.root = Path(root)
        self.config = self.root / CONFIG_FILE
        self.checkpoints = self.root / CHECKPOINT_DIR
        self.checkpoint_state = self.checkpoints / STATE_FILE
        self.lock = self.root / LOCK_FILE
        self.logs = self.root / "logs"
        self.losses_csv = self.root / "losses.csv"
        self.losses_png = self.root / "losses.png"
        self.samples = self.root / "samples"

    def checkpoint(self, number):
        """The prefix of checkpoint `number` (its files are <prefix>.index and <prefix>.data-*)."""
        return checkpoint_prefix(self.checkpoints, number)

    def sample(self, epoch):
        """The sample grid of `epoch` (counted from 1)."""
        return self.samples / f"epoch_{epoch:03d}.png"


def owning_run(path):
    """The run directory whose own file `path` is (a path of RunLayout, or anything in its
    folders), or None: what a result written for the user must never replace."""
    run = RunLayout("")
    own = [run.config, run.checkpoints, run.lock, run.logs, run.losses_csv, run.losses_png, run.samples]
    return fsutil.owning_folder(path, runmarker.is_run_dir, [p.name for p in own])
