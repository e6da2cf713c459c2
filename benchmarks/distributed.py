"""Images per second of CycleGAN training on one device vs mirrored over 2 logical CPU devices.

Splits this CPU into two logical devices, then times the same model (same global
batch) under OneDeviceStrategy and under MirroredStrategy over both, the two timed in
turn. On 2 cores the mirrored run cannot be faster (both replicas share the cores and
add an all-reduce); it is here to show the mirrored path runs at about the same cost,
and to measure the all-reduce the arithmetic for GPUs starts from.

    .venv/bin/python benchmarks/distributed.py --size 64 --blocks 6 --batch 2 --repeats 7
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfcyclegan.core.model import CycleGAN  # noqa: E402
from tfcyclegan.core.networks import PatchDiscriminator, ResnetGenerator  # noqa: E402


def step_function(strategy, size, blocks, batch):
    """One compiled training step (as `model.fit` runs it) under `strategy`, and the model's parameter count."""
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = CycleGAN(ResnetGenerator(n_blocks=blocks), ResnetGenerator(n_blocks=blocks),
                         PatchDiscriminator(), PatchDiscriminator(), image_size=size)  # fmt: skip
        model.compile()
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32") for _ in range(2))
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    model.make_train_function()
    return lambda: model.train_function(iterator)["loss_G"].numpy(), model.count_params()


def allreduce_seconds(strategy, parameters, repeats):
    """Median seconds of one all-reduce (sum) of `parameters` float32 values across the replicas."""
    value = strategy.run(lambda: tf.ones([parameters]))

    @tf.function
    def reduce(v):
        return strategy.reduce("SUM", v, axis=None)

    reduce(value).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reduce(value).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2, help="global batch (split across the replicas)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategies = {"1 device": tf.distribute.OneDeviceStrategy(cpus[0]),
                  "mirrored, 2 logical devices": tf.distribute.MirroredStrategy(cpus)}  # fmt: skip
    steps = {}
    for name, strategy in strategies.items():
        steps[name], parameters = step_function(strategy, args.size, args.blocks, args.batch)
        steps[name](), steps[name]()  # tracing, allocation
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():  # in turn, so load changes hit both alike
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    reduce = allreduce_seconds(strategies["mirrored, 2 logical devices"], parameters, args.repeats)

    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, {os.cpu_count()} cores, "
        f"{args.size}px / {args.blocks} blocks, global batch {args.batch}, median of {args.repeats} steps, "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| strategy | s/step | images/s (both domains) | vs 1 device |")
    print("|---|---:|---:|---:|")
    base = statistics.median(times["1 device"])
    for name, t in times.items():
        median = statistics.median(t)
        print(f"| {name} | {median:.3f} | {2 * args.batch / median:.2f} | {base / median:.2f}x |")
    megabytes = parameters * 4 / 1e6
    print(
        f"\nall-reduce of the {parameters:,} parameters' gradients ({megabytes:.0f} MB float32) across the 2 "
        f"logical devices: {reduce * 1000:.1f} ms per step ({reduce / base:.1%} of a 1-device step)"
    )


if __name__ == "__main__":
    main()
