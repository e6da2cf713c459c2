"""What the per-epoch health checks (tfcyclegan.training.health) cost, as a share of an epoch.

Builds the model `fit` trains at the defaults (ResNet-6 generators, ngf 64, 70x70
PatchGANs, 256 px, batch 1), times training steps on ukiyoe2photo and the health check
(HealthCheck.on_epoch_end: both generators, both discriminators and every figure on
HELD_OUT_COUNT held-out images per domain, the scalars and health.csv), alternately in
rounds so load from other processes hits both alike. Share = median check seconds /
(median step seconds x steps per epoch), the epoch being the default one for
ukiyoe2photo (max of the two domains' training images); the goal is < 2 %.

    .venv/bin/python benchmarks/health_check.py [--datasets DIR] [--steps 3] [--rounds 2]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tfcyclegan.data import datasets, pipeline  # noqa: E402
from tfcyclegan.runs.config import TrainConfig  # noqa: E402
from tfcyclegan.training import health, train  # noqa: E402

DEFAULT_DATASETS = os.environ.get(
    "TFCYCLEGAN_SHARED_DATASETS", str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
)


def cpu():
    """The CPU's model name and which of the flags TensorFlow's CPU kernels may use it has."""
    text = Path("/proc/cpuinfo").read_text()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return name, [flag for flag in wanted if flag in flags]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=DEFAULT_DATASETS, help="folder holding ukiyoe2photo/")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    name, flags = cpu()
    print(f"CPU: {name}; flags used by TensorFlow's kernels here: {', '.join(flags) or 'none of avx2/avx512/amx'}")
    domain_a, domain_b = datasets.resolve_domains("photos", "ukiyoe", args.datasets, download=False)
    config = TrainConfig(image_size=args.image_size, load_size=args.image_size)
    steps_per_epoch = pipeline.default_steps_per_epoch(len(domain_a.train_files), len(domain_b.train_files), 1)
    model = train.build_model(config, steps_per_epoch)
    batches = iter(
        pipeline.make_train_dataset(
            domain_a.train_files, domain_b.train_files, image_size=args.image_size, load_size=args.image_size,
            batch_size=1, steps_per_epoch=steps_per_epoch, epochs=1,
        )
    )  # fmt: skip
    step = tf.function(model.train_step)
    held = [health.held_out(d)[0] for d in (domain_a, domain_b)]
    real = [pipeline.make_eval_batch(files, args.image_size, health.HELD_OUT_COUNT) for files in held]
    with tempfile.TemporaryDirectory() as folder:
        writer = tf.summary.create_file_writer(folder)
        check = health.HealthCheck(folder, writer, *real)
        check.set_model(model)
        step(next(batches))  # traces the step
        check.on_epoch_end(0)  # traces the networks at the held-out shape
        step_times, check_times = [], []
        for r in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.steps):
                float(step(next(batches))["loss_G"])  # waits for the step
            step_times.append((time.perf_counter() - start) / args.steps)
            start = time.perf_counter()
            check.on_epoch_end(r + 1)
            check_times.append(time.perf_counter() - start)
    step_s, check_s = statistics.median(step_times), statistics.median(check_times)
    epoch_s = step_s * steps_per_epoch
    print(
        f"{args.image_size} px, batch 1, {steps_per_epoch} steps per epoch (ukiyoe2photo), "
        f"{health.HELD_OUT_COUNT} held-out images per domain, {args.rounds} rounds"
    )
    print(f"training step: {step_s:.3f} s (median), so one epoch {epoch_s:.0f} s")
    print(f"health check: {check_s:.3f} s (median)")
    print(f"health check / epoch: {check_s / epoch_s:.4%} (goal < 2 %)")


if __name__ == "__main__":
    main()
