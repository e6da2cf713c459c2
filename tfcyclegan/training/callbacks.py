"""Side work during `fit`, as Keras callbacks: checkpoints, logs, figures, samples."""

import csv
import io
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tfcyclegan.core.model import LOSS_NAMES
from tfcyclegan.data.imagefiles import to_uint8
from tfcyclegan.runs import checkpoints
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training.figures import LOSS_PANELS, image_grid, save_loss_figure
from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import UserError, first_line


def save_checkpoint(manager, step):
    """manager.save numbered by `step`; returns the checkpoint's path.

    tf.train.CheckpointManager writes the data files first, then the index, and lists
    the checkpoint (an atomic rename of its state file) only after both are complete,
    so a save that fails or is killed leaves the newest listed checkpoint intact. A
    failed write (disk full, read-only folder...) is a UserError that names it.
    """
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as error:
        raise UserError(
            f"cannot save checkpoint {step} in {manager.directory}: {first_line(error)}; {after_write_failure(manager)}"
        ) from None


def after_write_failure(manager):
    """What a failed write in a run leaves and how to go on, for an error message."""
    kept = manager.latest_checkpoint
    kept = f"the last complete checkpoint {kept} is intact" if kept else "no checkpoint was saved yet"
    return f"{kept}; free some disk space, then resume with: tfcyclegan fit --run-dir {Path(manager.directory).parent}"


class CheckpointSaver(keras.callbacks.Callback):
    """Save models, optimizer state and pools after every epoch (see `save_checkpoint` for
    why the newest listed checkpoint is always complete).

    A checkpoint is numbered by global step, but always above `taken`, the highest number
    already on disk that must not be overwritten (a damaged checkpoint a resumed run fell
    back from), and above every number this saver used. `restored` is the checkpoint the
    run resumed from, so a save at its step is not repeated. `names` are the model's losses.
    With `keep` (a predicate on a checkpoint's path) the manager keeps every checkpoint and
    each save is followed by checkpoints.retain: the newest three, and the older ones `keep`
    holds (`--keep-every`). `warmed` returns the discriminator warm-up steps done, which move
    no step counter of G but must be saved too.
    """

    def __init__(self, manager, step_variable, taken=0, restored=None, names=LOSS_NAMES, keep=None, warmed=lambda: 0):
        super().__init__()
        self.names = names
        self.manager = manager
        self.keep = keep
        self.warmed = warmed
        self.step_variable = step_variable
        self.taken = taken
        self.path = restored
        self.saved_step = self._progress() if restored else None

    def _progress(self):
        return int(self.step_variable.numpy()), self.warmed()

    def save(self):
        """Save at the current step unless that step is saved already; returns the checkpoint's path."""
        step = int(self.step_variable.numpy())
        if self._progress() != self.saved_step:
            number = max(step, self.taken + 1)
            self.path = save_checkpoint(self.manager, number)
            self.taken, self.saved_step = number, self._progress()
            if self.keep:
                checkpoints.retain(self.manager.directory, self.keep)
        return self.path

    def on_epoch_end(self, epoch, logs=None):
        # An epoch with a non-finite mean loss ruined the weights: keep the last good checkpoint.
        if all(np.isfinite(float(logs[name])) for name in self.names):
            self.save()


class Throughput(keras.callbacks.Callback):
    """Add images/s (both domains count) to the epoch logs, so the progress line shows it."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.steps:
            logs["images_per_sec"] = 2 * self.batch_size * self.steps / (time.perf_counter() - self.start)


class LossLog(keras.callbacks.Callback):
    """Append each epoch's mean losses to losses.csv and redraw losses.png (paper Figure 9).

    A losses.csv this class cannot read back (re-saved by a spreadsheet with `;`
    separators, edited, damaged) is set aside as losses.csv.unreadable-N with a note, and
    a new log begins: the log never stops a run. `names` and `panels` are another model's
    losses and figure panels (default: CycleGAN's, Figure 9's).
    """

    def __init__(self, run_dir, names=LOSS_NAMES, panels=LOSS_PANELS):
        super().__init__()
        self.names, self.panels = names, panels
        self.fields = ("epoch", *names)
        layout = RunLayout(run_dir)
        self.csv_path, self.png_path = layout.losses_csv, layout.losses_png

    def rows(self):
        try:
            # Only a regular file: a named pipe would block the run (and its SIGTERM) for good.
            with io.TextIOWrapper(fsutil.open_regular(self.csv_path), encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                rows = [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in reader]
                if tuple(reader.fieldnames or ()) != self.fields:
                    raise ValueError(f"its columns are not {','.join(self.fields)}")
            return rows
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, csv.Error) as error:
            reason = first_line(error)
        n = 1
        while self.csv_path.with_name(f"{self.csv_path.name}.unreadable-{n}").exists():
            n += 1
        aside = self.csv_path.with_name(f"{self.csv_path.name}.unreadable-{n}")
        self.csv_path.rename(aside)
        report.note(f"note: cannot read {self.csv_path} ({reason}); moved it to {aside} and began a new one")
        return []

    def on_epoch_end(self, epoch, logs=None):
        # A resumed run may repeat an epoch that was interrupted: keep only its newest row.
        rows = [row for row in self.rows() if row["epoch"] < epoch + 1]
        rows.append({"epoch": epoch + 1, **{name: float(logs[name]) for name in self.names}})
        with fsutil.replacing(self.csv_path) as partial, open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(rows)
        # Written beside and renamed over, like every file of the run: a named pipe or a link in
        # its place is replaced, never written into (a pipe would block the run for good).
        with fsutil.replacing(self.png_path, suffix=".png") as partial:
            save_loss_figure(rows, partial, self.panels)


class TensorBoardLog(keras.callbacks.Callback):
    """Scalars for TensorBoard: the seven losses and the learning rate.

    Every `log_every` steps the running epoch means go under their plain names
    (`loss_G`, ...; `names`) at the global step; each epoch's means go under `epoch/`.
    """

    def __init__(self, writer, optimizer, log_every, names=LOSS_NAMES):
        super().__init__()
        self.names = names
        self.writer = writer
        self.optimizer = optimizer
        self.log_every = log_every

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.optimizer.iterations.numpy())
        if step % self.log_every == 0:
            with self.writer.as_default(step=step):
                for name in self.names:
                    tf.summary.scalar(name, logs[name])
                # Keras 3 evaluates the schedule at the optimizer's step when read.
                tf.summary.scalar("learning_rate", self.optimizer.learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=epoch + 1):
            for name in (*self.names, "images_per_sec"):
                if name in logs:
                    tf.summary.scalar(f"epoch/{name}", logs[name])
        self.writer.flush()


class Samples(keras.callbacks.Callback):
    """Each epoch: samples/epoch_NNN.png (real left, translated right, as the paper's
    Figures 6-8) and TensorBoard strips real | translated | reconstructed per direction."""

    def __init__(self, run_dir, writer, real_a, real_b):
        super().__init__()
        self.layout = RunLayout(run_dir)
        self.writer = writer
        self.real_a, self.real_b = real_a, real_b

    def on_epoch_end(self, epoch, logs=None):
        g, f = self.model.generator_g, self.model.generator_f
        fake_b = g(self.real_a, training=False)
        fake_a = f(self.real_b, training=False)
        cycled_a = f(fake_b, training=False)
        cycled_b = g(fake_a, training=False)
        self.layout.samples.mkdir(exist_ok=True)
        grid = image_grid([to_uint8(x) for x in (self.real_a, fake_b, self.real_b, fake_a)])
        with fsutil.replacing(self.layout.sample(epoch + 1), suffix=".png") as partial:
            Image.fromarray(grid).save(partial)
        with self.writer.as_default(step=epoch + 1):
            for tag, batch in (("a2b", (self.real_a, fake_b, cycled_a)), ("b2a", (self.real_b, fake_a, cycled_b))):
                strips = image_grid([to_uint8(x) for x in batch])
                tf.summary.image(f"{tag} real|translated|reconstructed", strips[None], step=epoch + 1)


class StopOnSignal(keras.callbacks.Callback):
    """Turn SIGINT / SIGTERM (via `handle`) into a KeyboardInterrupt at the next batch or
    epoch boundary, where `fit` catches it and saves; a second signal raises at once.

    Must be the last callback: after an epoch's last batch it waits for the epoch's end,
    so that the callbacks before it still write that epoch's checkpoint, losses.csv row,
    sample grid and scalars (issue #15), and raises only then.
    """

    def __init__(self):
        super().__init__()
        self.received = False

    def handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = True

    def _check(self, *args, **kwargs):
        if self.received:
            raise KeyboardInterrupt

    on_train_batch_begin = on_epoch_begin = on_epoch_end = _check

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 < self.params["steps"]:
            self._check()


class ContinueEpoch(keras.callbacks.Callback):
    """Carry the loss sums and batch count of an epoch a resumed run is finishing into it.

    Keras zeroes the model's loss means as each epoch begins; the first epoch gets back
    `values`, those of `variables` (rundir.epoch_loss_variables) as the checkpoint held
    them, so the epoch's logged means cover its batches before the resume too (issue #15).
    """

    def __init__(self, variables, values):
        super().__init__()
        self.variables = variables
        self.values = values

    def on_epoch_begin(self, epoch, logs=None):
        if self.values is not None:
            for variable, value in zip(self.variables, self.values):
                variable.assign(value)
            self.values = None


def all_finite(variables):
    """Whether every value of `variables` is finite (no NaN, no inf)."""
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables if keras.backend.is_float_dtype(v.dtype))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first non-finite loss (of `names`) instead of saving a ruined model."""

    def __init__(self, step_variable, names=LOSS_NAMES):
        super().__init__()
        self.names = names
        self.step_variable = step_variable
        self.bad = None

    def on_train_batch_end(self, batch, logs=None):
        for name in self.names:
            if not np.isfinite(float(logs[name])):
                self.bad = (int(self.step_variable.numpy()), name, float(logs[name]))
                self.model.stop_training = True
                report.note(f"\nnon-finite {name} at step {self.bad[0]}")
                return
