"""The learning-rate schedule of the paper's Algorithm 1 (line 12)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcyclegan")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant `initial_learning_rate` for `decay_epoch` epochs, then linear to exactly 0.

    Step-based: lr(s) = lr0 for s < d = decay_epoch * steps_per_epoch, and
    lr0 * (1 - (s - d) / (N - 1 - d)) afterwards, where N = epochs * steps_per_epoch,
    so the last step of the last epoch (s = N - 1) runs at 0. The optimizer passes
    its own step counter, which a checkpoint restores, so the schedule continues
    where it stopped after a resume. `offset` steps taken before the schedule starts
    (a discriminator warm-up) run at lr0 and shift it: lr(s) is the above at s - offset.
    """

    def __init__(self, initial_learning_rate, epochs, decay_epoch, steps_per_epoch, offset=0):
        if not 0 <= decay_epoch <= epochs:
            raise ValueError(f"decay_epoch must be in [0, epochs={epochs}], got {decay_epoch}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.epochs = int(epochs)
        self.decay_epoch = int(decay_epoch)
        self.steps_per_epoch = int(steps_per_epoch)
        self.offset = int(offset)

    def __call__(self, step):
        step = tf.cast(step, tf.float32) - float(self.offset)
        decay_start = float(self.decay_epoch * self.steps_per_epoch)
        last_step = float(self.epochs * self.steps_per_epoch - 1)
        span = max(last_step - decay_start, 1.0)
        fraction = tf.clip_by_value((step - decay_start) / span, 0.0, 1.0)
        return self.initial_learning_rate * (1.0 - fraction)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "epochs": self.epochs,
            "decay_epoch": self.decay_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "offset": self.offset,
        }
