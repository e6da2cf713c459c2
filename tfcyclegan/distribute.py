"""Which tf.distribute strategy a run trains under."""

import tensorflow as tf

from tfcyclegan.errors import UserError


def simulate_devices(count):
    """Split the CPU into `count` logical devices, so the mirrored path runs on any machine.

    Must run before TensorFlow first touches its devices.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise UserError(
            "--simulate-devices must be set before TensorFlow starts; pass it on the command line"
        ) from None


def make_strategy(name, simulated_devices=0):
    """auto: mirrored over the GPUs when more than one is visible, else the default strategy.

    mirrored: every GPU, or every logical CPU when devices are simulated. With N
    replicas each step splits the global --batch-size into N per-replica batches.
    """
    if simulated_devices > 1:
        simulate_devices(simulated_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
