"""Which tf.distribute strategy a run trains under, and which process of a cluster writes."""

import json
import os

import tensorflow as tf

from tfcyclegan.util.errors import UserError

# Errors a collective raises when a peer died, froze or missed the timeout.
PEER_LOST = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
)


def peer_lost_reason(error, worker_timeout):
    """What a PEER_LOST error means, in words.

    TensorFlow's coordination service notices a worker that died or froze by its
    missing heartbeats within seconds (UnavailableError); a worker that is alive but
    stuck is caught by the collective timeout (DeadlineExceededError).
    """
    if isinstance(error, tf.errors.UnavailableError):
        return "a worker died, froze or cannot be reached"
    if isinstance(error, tf.errors.DeadlineExceededError):
        return f"a step waited more than --worker-timeout {worker_timeout} s for a worker"
    return f"a collective step was aborted ({type(error).__name__})"


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


def cluster_task():
    """(cluster spec dict, task type, task index) from $TF_CONFIG, checked enough to name what is wrong."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise UserError(
            "--strategy multiworker reads the cluster from the TF_CONFIG environment variable, which is not set; "
            "see docs/distributed.md for an example"
        )
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = task["type"], int(task["index"])
        addresses = cluster[task_type]
        if not 0 <= index < len(addresses):
            raise IndexError(f"task index {index} but the cluster lists {len(addresses)} {task_type} addresses")
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise UserError(
            f"TF_CONFIG is not a usable cluster description ({type(error).__name__}: {error}); it needs "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}'
        ) from None
    return cluster, task_type, index


def make_strategy(name, simulated_devices=0, worker_timeout=0):
    """auto: mirrored over the GPUs when more than one is visible, else the default strategy.

    mirrored: every GPU, or every logical CPU when devices are simulated. multiworker:
    TensorFlow's MultiWorkerMirroredStrategy over the machines $TF_CONFIG lists, each
    mirroring its own GPUs; a collective that waits longer than `worker_timeout`
    seconds (0: forever) for a peer fails instead of hanging. With N replicas in all,
    each step splits the global --batch-size into N per-replica batches.
    """
    if simulated_devices > 1:
        simulate_devices(simulated_devices)
    if name == "multiworker":
        cluster_task()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=worker_timeout or None)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def is_chief(strategy):
    """Whether this process writes the run's files: the only process, or the chief of a cluster.

    The chief is task "chief" if the cluster has one, else worker 0 (TensorFlow's rule,
    `chief_task`).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return chief_task(*cluster_task())


def chief_task(cluster, task_type, index):
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
