"""The run directory: what `tfcyclegan fit` writes and every reader reads.

Its paths are named in tfcyclegan.runs.layout (RunLayout). config.json is the TrainConfig
(tfcyclegan.runs.config) the run was trained with; the checkpoints are tf.train.Checkpoint
files of the whole training state (make_checkpoint), of which readers restore the two
generators (restore_generators); fit.lock keeps one `fit` at a time in it. Readers
(inference, export, evaluate) import this module, never the trainer. Which checkpoint
files are intact is tfcyclegan.runs.checkpoints' job.
"""

import errno
import fcntl
import os
import stat
from pathlib import Path

import keras
import tensorflow as tf

from tfcyclegan.core.networks import MobileResnetGenerator, ResnetGenerator, variables_by_path
from tfcyclegan.runs import checkpoints
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.distillconfig import DistillConfig, is_distilled
from tfcyclegan.runs.layout import CHECKPOINT_FILES, CONFIG_FILE, RunLayout
from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import UserError


class RunLock:
    """An exclusive flock on the run's lock file (RunLayout.lock), which holds the PID of its holder.

    The kernel drops an flock when its process ends however it ends (even SIGKILL), so
    a lock file left behind never keeps a run locked. `acquire` raises UserError naming
    the PID of the process that holds it; `release` is a no-op unless held.
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.fd = None

    def acquire(self):
        path = RunLayout(self.run_dir).lock
        try:
            # Never through a link (the truncation below would empty what it leads to), never a pipe or device.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UserError(f"{path} is a symbolic link; move it away (fit makes its own lock file)") from None
            raise UserError(f"cannot create {path}: {error.strerror}; pass a --run-dir you can write") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise UserError(
                f"{path} is {fsutil.kind_of(mode)}, not a regular file; move it away (fit makes its own lock file)"
            )
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


def build_generators(config, dtype=None):
    """G: X -> Y and F: Y -> X as the config describes (computing in `dtype`, a Keras dtype
    policy; None: float32): ResnetGenerators, or MobileResnetGenerators for --generator mobile."""
    kind = MobileResnetGenerator if config.generator == "mobile" else ResnetGenerator
    return (
        kind(ngf=config.ngf, n_blocks=config.blocks, name="generator_g", dtype=dtype),
        kind(ngf=config.ngf, n_blocks=config.blocks, name="generator_f", dtype=dtype),
    )


NETWORKS = ("generator_g", "generator_f", "discriminator_x", "discriminator_y")
OPTIMIZERS = ("generator_optimizer", "discriminator_x_optimizer", "discriminator_y_optimizer")
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"  # how tf.train.Checkpoint ends a variable's key


def network_variables(network, positional=False):
    """A network's variables as tf.train.Checkpoint stores them: by layer path.

    Keras 3 layers held in Python lists are invisible to tf.train.Checkpoint (a
    checkpoint of the network object alone saves nothing), so each network is given
    to it as a dict of its variables by layer path (networks.variables_by_path), one
    level deep with ":" for "/": block_3/conv_1/kernel is stored as
    generator_g/block_3:conv_1:kernel. One level, because a checkpoint stores a
    variable under its shortest path, and Adam reaches the generators' variables
    through its own list at depth 3 (generator_optimizer/_trainable_variables/N); ":",
    because tf.train.Checkpoint escapes "/" and "." in names.
    Checkpoints written before issue #16 (up to commit 4ee0d6b) stored a list in construction order
    (generator_g/0, generator_g/1, ...); `positional=True` gives that list, whose order
    the architecture fixes, so those runs still load.
    """
    if positional:
        return list(network.weights)
    return {_key(path): variable for path, variable in variables_by_path(network).items()}


def _key(path):
    """A layer path's name in a checkpoint: block_3/conv_1/kernel -> block_3:conv_1:kernel."""
    return path.replace("/", ":")


def _positional(keys):
    """Whether a checkpoint (its variable keys) stores networks by position (before issue #16)."""
    return f"generator_g/0{_VALUE}" in keys


def _checkpoint_parts(model, positional=False):
    return dict(
        **{name: network_variables(getattr(model, name), positional) for name in NETWORKS},
        **{name: getattr(model, name) for name in OPTIMIZERS},
        pool_x=model.pool_x,
        pool_y=model.pool_y,
        epoch_losses=epoch_loss_variables(model),
    )


def make_checkpoint(model):
    """Everything a resumed run needs: weights (by layer path), all optimizer state (and so
    the step), pools, and the loss sums and batch count of the epoch in progress (issue #15:
    an epoch finished after a mid-epoch resume logs its mean over all of its batches)."""
    return tf.train.Checkpoint(**_checkpoint_parts(model))


def epoch_loss_variables(model):
    """The running totals and counts of the model's loss means, which Keras resets at each epoch."""
    return [variable for tracker in model.trackers.values() for variable in tracker.variables]


def restore_checkpoint(model, path):
    """Restore checkpoint `path` into `model` in full, whatever precision either was trained in.

    A mixed_float16 run wraps each Adam in a LossScaleOptimizer, which checkpoints Adam as
    its `inner_optimizer` beside the loss scale; the other precisions checkpoint Adam
    itself. Every variable is float32 either way, so a run may change --precision on
    resume: Adam's state is matched across the two layouts, and a loss scale restarts
    from its initial value. Checkpoints written before the epoch's loss sums were saved
    restore without them, and those that stored networks by position restore by position.
    """
    keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    scaled = any(key.startswith("generator_optimizer/inner_optimizer/") for key in keys)
    parts = _checkpoint_parts(model, positional=_positional(keys))
    dropped_scale = False
    for name in OPTIMIZERS:
        optimizer = parts[name]
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and not scaled:
            parts[name] = optimizer.inner_optimizer
        elif scaled and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            parts[name] = tf.train.Checkpoint(inner_optimizer=optimizer)
            dropped_scale = True
    if not any(key.startswith("epoch_losses/") for key in keys):
        del parts["epoch_losses"]
    status = tf.train.Checkpoint(**parts).restore(path)
    if dropped_scale:  # the checkpoint's loss scales have no place in this model
        status.expect_partial().assert_existing_objects_matched()
    else:
        status.assert_consumed()


def checkpoint_step(path):
    """The training step checkpoint `path` was saved at (read without building a model)."""
    reader = tf.train.load_checkpoint(path)
    # A LossScaleOptimizer's own counter is not the step: its inner Adam's is.
    for key in ("generator_optimizer/inner_optimizer/_iterations", "generator_optimizer/_iterations"):
        if reader.has_tensor(key + "/.ATTRIBUTES/VARIABLE_VALUE"):
            return int(reader.get_tensor(key + "/.ATTRIBUTES/VARIABLE_VALUE"))
    raise UserError(f"checkpoint {path} holds no training step; it was not written by `tfcyclegan fit`")


def every_nth_epoch(every, steps_per_epoch):
    """A predicate on checkpoint paths: saved at the end of an epoch that is a multiple of `every`."""

    def keep(path):
        step = checkpoint_step(path)
        return step > 0 and step % (every * steps_per_epoch) == 0

    return keep


def load_config(run_dir):
    """The TrainConfig saved in `run_dir` (a DistillConfig for a distilled student); a damaged,
    incomplete or foreign config.json is a UserError."""
    kind = DistillConfig if is_distilled(run_dir) else TrainConfig
    return kind.load(RunLayout(run_dir).config)


def directions(run_dir):
    """The directions run directory `run_dir` translates: a2b alone for a distilled student."""
    return ("a2b",) if is_distilled(run_dir) else ("a2b", "b2a")


def save_config(config, run_dir, counts, roots, **extra):
    """Write <run_dir>/config.json: `config`, the image counts {"A": n, "B": m} and the
    folders {"A": path, "B": path} (absolute) of the domains it trained on, and the `extra`
    keys (JSON values) beside them."""
    # Written whole then renamed: a kill mid-write must not leave a run that cannot resume.
    path = RunLayout(run_dir).config
    try:
        with fsutil.replacing(path) as partial:
            config.save(partial, images=counts, domains=roots, **extra)
    except OSError as error:
        raise UserError(
            f"cannot write {path}: {error.strerror or error}; free some disk space or pass a --run-dir on another disk"
        ) from None


def has_config(run_dir):
    """Whether `run_dir` holds a config.json (of any kind: a run killed before its first
    checkpoint is still that run, and a config.json that cannot be read is an error, not a new run)."""
    return os.path.lexists(RunLayout(run_dir).config)


def has_checkpoint(run_dir):
    """Whether `run_dir` holds a config.json and a checkpoint (intact or not: see checkpoints.candidates)."""
    layout = RunLayout(run_dir)
    return layout.config.exists() and bool(checkpoints.candidates(layout.checkpoints))


def newest_checkpoint(run_dir):
    """The newest intact checkpoint of `run_dir` as a checkpoints.Found, with a note on stderr for
    each newer damaged one; a UserError when there is none."""
    folder = RunLayout(run_dir).checkpoints
    found = checkpoints.newest_intact(folder)
    for note in found.notes():
        report.note(note)
    if found.path:
        return found
    if found.damaged:
        raise UserError(
            f"no checkpoint of {run_dir} is intact (listed above); move the damaged {CHECKPOINT_FILES} files out of "
            f"{folder} to train the run again from the start, or pass a new --run-dir"
        )
    raise UserError(f"{run_dir} has no checkpoint yet; train it with: tfcyclegan fit --run-dir {run_dir}")


def check_matches(checkpoint, networks, run_dir, pools=None):
    """Compare what config.json builds with checkpoint `checkpoint` before restoring it.

    `networks` maps a checkpoint name (generator_g...) to a built network, `pools` a
    pool's key (pool_x/images) to its variable. A config.json that disagrees with its
    checkpoint would fail deep in TensorFlow, after a page of warnings; this names the
    first variable that differs, by layer path (by position in checkpoints written
    before issue #16).
    """
    shapes = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
    problem = None
    for part, network in networks.items():
        if _positional(shapes):
            ours = {str(i): v for i, v in enumerate(network.weights)}
        else:
            ours = variables_by_path(network)
        prefix = part + "/"
        saved = {
            key[len(prefix) : -len(_VALUE)].replace(":", "/"): shape
            for key, shape in shapes.items()
            if key.startswith(prefix) and key.endswith(_VALUE)
        }
        missing, extra = sorted(ours.keys() - saved.keys()), sorted(saved.keys() - ours.keys())
        mismatched = [(p, saved[p], list(v.shape)) for p, v in ours.items() if p in saved and saved[p] != list(v.shape)]
        if missing or extra:
            first = (
                f"{part}/{missing[0]} is not there"
                if missing
                else f"it has {part}/{extra[0]}, which config.json does not build"
            )
            problem = f"{first}; {part} has {len(saved)} variables there, {len(ours)} by config.json"
        elif mismatched:
            path, there, here = mismatched[0]
            problem = f"{part}/{path} has shape {there} there, {here} by config.json"
        if problem:
            break
    for key, variable in (pools or {}).items():
        if problem:
            break
        saved = shapes.get(key + _VALUE)
        # A pool saved by several replicas stacks their buffers on a leading axis (pool._EveryReplica).
        if saved is not None and list(saved)[len(saved) - len(variable.shape) :] != list(variable.shape):
            problem = f"{key} has shape {list(saved)} there, {list(variable.shape)} by config.json"
    if problem:
        raise UserError(
            f"{RunLayout(run_dir).config} does not match checkpoint {checkpoint} ({problem}); put back the "
            "config.json this run was trained with"
        )


def check_model_matches(checkpoint, model, run_dir):
    """check_matches for a whole CycleGAN: its four networks and both pools' images."""
    networks = {name: getattr(model, name) for name in NETWORKS}
    check_matches(
        checkpoint, networks, run_dir, {"pool_x/images": model.pool_x.images, "pool_y/images": model.pool_y.images}
    )


def chosen_checkpoint(run_dir, number):
    """The path of checkpoint ckpt-`number` of `run_dir`, read back whole; a UserError naming
    the checkpoints there are when it is missing or damaged."""
    layout = RunLayout(run_dir)
    prefix = layout.checkpoint(number)
    there = checkpoints.intact(layout.checkpoints)
    listing = f"its intact checkpoints are {', '.join(map(str, there))}" if there else "it has no intact checkpoint"
    if number not in there:
        what = "is damaged" if prefix.with_suffix(".index").exists() else "does not exist"
        raise UserError(
            f"checkpoint {number} of {run_dir} {what}; {listing} (`tfcyclegan evaluate {run_dir} --checkpoints all` "
            "scores each)"
        )
    return str(prefix)


def load_generators(run_dir, checkpoint=None):
    """Restore G and F from a run directory's newest intact checkpoint, or checkpoint number
    `checkpoint`; returns (G, F, config)."""
    generator_g, generator_f, config, _ = restore_generators(run_dir, checkpoint)
    return generator_g, generator_f, config


def restore_generators(run_dir, checkpoint=None):
    """(G, F, config, checkpoint path) from a run directory's newest intact checkpoint (a newer
    damaged one is skipped with a note: newest_checkpoint), or from checkpoint number
    `checkpoint` (chosen_checkpoint). F is None for a distilled student."""
    run_dir = Path(run_dir)
    if not RunLayout(run_dir).config.exists():
        raise UserError(f"{run_dir} is not a tfcyclegan run directory (no {CONFIG_FILE})")
    config = load_config(run_dir)
    if checkpoint is None:
        found = newest_checkpoint(run_dir)
    else:
        found = checkpoints.Found(path=chosen_checkpoint(run_dir, checkpoint))
    generator_g, generator_f = build_generators(config)
    if isinstance(config, DistillConfig):
        generator_f = None
    networks = {name: g for name, g in (("generator_g", generator_g), ("generator_f", generator_f)) if g}
    for network in networks.values():
        network(tf.zeros((1, 32, 32, 3)))
    check_matches(found.path, networks, run_dir)
    positional = _positional(tf.train.load_checkpoint(found.path).get_variable_to_shape_map())
    variables = {name: network_variables(network, positional) for name, network in networks.items()}
    status = tf.train.Checkpoint(**variables).restore(found.path)
    status.expect_partial().assert_existing_objects_matched()
    return generator_g, generator_f, config, found.path
