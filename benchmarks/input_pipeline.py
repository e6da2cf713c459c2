"""How much of a CycleGAN training step the input pipeline costs.

Trains the same small-but-real CycleGAN (ResNet-6 generators, ngf 64, PatchGAN
discriminators) on ukiyoe2photo at 128 px, batch 1, fed once by
`pipeline.make_train_dataset` and once by one in-memory batch repeated
(`Dataset.from_tensors(...).repeat()`). The two feeds alternate, one epoch each per
round after a warm-up round, so load from other processes hits both alike. The
pipeline's share of a step is 1 - t_memory / t_pipeline, t being the median seconds
per step over the rounds; the goal is < 5 %. Wall time suffers from other processes
on a shared machine, so CPU time is reported too: per step under each feed, and the
process CPU seconds the pipeline alone spends per batch over those of a step fed from
memory. Also reports the pipeline's raw throughput without a model.

    .venv/bin/python benchmarks/input_pipeline.py [--datasets DIR] [--steps 8] [--rounds 3]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcyclegan.core.model import CycleGAN  # noqa: E402
from tfcyclegan.core.networks import PatchDiscriminator, ResnetGenerator  # noqa: E402
from tfcyclegan.data import imagefiles, pipeline  # noqa: E402

DEFAULT_DATASETS = os.environ.get(
    "TFCYCLEGAN_SHARED_DATASETS", str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
)


class EpochTimer(keras.callbacks.Callback):
    """Wall and process CPU seconds of the last epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.wall, self.cpu = time.perf_counter() - self.start[0], time.process_time() - self.start[1]


def seconds_per_step(model, dataset, steps):
    """(wall, CPU) seconds per step of one epoch of `steps` steps."""
    timer = EpochTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, callbacks=[timer], verbose=0)
    return timer.wall / steps, timer.cpu / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=DEFAULT_DATASETS, help="folder holding ukiyoe2photo/")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--load-size", type=int, default=143)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up round")
    parser.add_argument("--raw-batches", type=int, default=500, help="batches for the throughput without a model")
    args = parser.parse_args()

    root = Path(args.datasets) / "ukiyoe2photo"
    files_a, files_b = imagefiles.list_images(root / "trainA"), imagefiles.list_images(root / "trainB")

    def batches(steps, epochs):
        return pipeline.make_train_dataset(
            files_a,
            files_b,
            image_size=args.image_size,
            load_size=args.load_size,
            batch_size=args.batch_size,
            steps_per_epoch=steps,
            epochs=epochs,
        )

    raw = batches(args.raw_batches, 1)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in raw:
        pass
    raw_seconds, raw_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    images = 2 * args.raw_batches * args.batch_size
    print(
        f"pipeline alone: {images / raw_seconds:.0f} images/s ({1000 * raw_seconds / args.raw_batches:.1f} ms per batch of A+B)"
    )

    keras.utils.set_random_seed(0)
    model = CycleGAN(
        ResnetGenerator(ngf=64, n_blocks=6),
        ResnetGenerator(ngf=64, n_blocks=6),
        PatchDiscriminator(),
        PatchDiscriminator(),
        image_size=args.image_size,
        pool_size=50,
    )
    model.compile()
    in_memory = tf.data.Dataset.from_tensors(next(iter(batches(1, 1)))).repeat()
    times = {"memory": [], "pipeline": []}
    for round_ in range(args.rounds + 1):
        for feed, dataset in (("memory", in_memory), ("pipeline", batches(args.steps, 1))):
            measured = seconds_per_step(model, dataset, args.steps)
            if round_:  # round 0 warms up: tracing, allocator, caches
                times[feed].append(measured)
    t_memory, t_pipeline = (statistics.median(wall for wall, _ in times[feed]) for feed in ("memory", "pipeline"))
    cpu_memory, cpu_pipeline = (statistics.median(cpu for _, cpu in times[feed]) for feed in ("memory", "pipeline"))
    share = 1 - t_memory / t_pipeline
    rounds = ", ".join(f"{1000 * m[0]:.0f}/{1000 * p[0]:.0f}" for m, p in zip(times["memory"], times["pipeline"]))
    print(f"ms/step per round (memory/pipeline): {rounds}")
    print(f"in-memory feed: {1 / t_memory:.3f} steps/s ({1000 * t_memory:.0f} ms/step)")
    print(f"pipeline feed:  {1 / t_pipeline:.3f} steps/s ({1000 * t_pipeline:.0f} ms/step)")
    print(f"ratio pipeline/in-memory steps/s: {t_memory / t_pipeline:.3f}")
    print(f"pipeline share of step time: {100 * share:.1f} % (goal < 5 %)")
    print(f"pipeline alone per batch: {100 * raw_seconds / args.raw_batches / t_pipeline:.2f} % of a step's wall time")
    print(
        f"CPU ms/step: {1000 * cpu_memory:.0f} fed from memory, {1000 * cpu_pipeline:.0f} fed by the pipeline "
        f"({100 * (1 - cpu_memory / cpu_pipeline):.1f} % more)"
    )
    print(
        f"pipeline CPU share: {1000 * raw_cpu / args.raw_batches:.1f} CPU ms per batch alone = "
        f"{100 * raw_cpu / args.raw_batches / cpu_memory:.2f} % of a step's CPU time"
    )


if __name__ == "__main__":
    main()
