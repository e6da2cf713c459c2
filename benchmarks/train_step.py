"""Seconds per CycleGAN training step on this CPU, and how close the step gets to the matmul peak.

For each image size: builds the full model (two ResNet generators and two
70x70 PatchGANs, ngf=ndf=64, image pool of 50), runs `CycleGAN.train_step`
through the function `model.fit` runs (`make_train_function`) and reports the
median seconds per step, images per second, the GFLOP/s of the step's
convolutions, this CPU's matmul GFLOP/s in the same precision, and their
ratio. Each (size, precision) row runs in its own process: after warm-up it
times `--repeats` steps alone (seconds per step, and the process's peak
resident memory, taken before the matmul's operands exist), then alternates
matmuls and steps, so that the load of a shared machine hits both alike, for
the ratio; the CPU ratio compares FLOPs per process CPU-second instead, which
stays steady when other processes take the cores. With several precisions it
also prints each one's step rate relative to the first.

FLOPs per step count the model's convolutions, forward and backward (2 FLOPs
per multiply-add), by hand from the architecture (`hand_step_flops`); norms,
activations, padding, losses and Adam add under 1%. As a check, the output also
gives the convolution FLOPs that the traced step actually runs
(`graph_step_flops`).

    .venv/bin/python benchmarks/train_step.py --sizes 64:6,128:6,256:9 --precisions float32,mixed_bfloat16
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcyclegan.model import CycleGAN  # noqa: E402
from tfcyclegan.networks import PatchDiscriminator, ResnetGenerator  # noqa: E402

CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def conv(h, w, k, c_in, c_out):
    """FLOPs of one convolution with an h x w output (or, transposed, an h x w input)."""
    return 2 * h * w * k * k * c_in * c_out


def generator_flops(size, n_blocks, ngf):
    """Forward FLOPs of the ResNet generator on one image, and of its first convolution alone."""
    s = size
    first = conv(s, s, 7, 3, ngf)  # c7s1-ngf
    down = conv(s // 2, s // 2, 3, ngf, 2 * ngf) + conv(s // 4, s // 4, 3, 2 * ngf, 4 * ngf)
    blocks = 2 * n_blocks * conv(s // 4, s // 4, 3, 4 * ngf, 4 * ngf)
    # Transposed convolutions: one multiply-add per input pixel, kernel tap and channel pair.
    up = conv(s // 4, s // 4, 3, 4 * ngf, 2 * ngf) + conv(s // 2, s // 2, 3, 2 * ngf, ngf)
    last = conv(s, s, 7, ngf, 3)  # c7s1-3
    return first + down + blocks + up + last, first


def discriminator_flops(size, ndf):
    """Forward FLOPs of the PatchGAN (n_layers=3) on one image, and of its first convolution alone."""
    total, first, s, c_in = 0, None, size, 3
    for c_out, stride in ((ndf, 2), (2 * ndf, 2), (4 * ndf, 2), (8 * ndf, 1), (1, 1)):
        s = (s + 2 - 4) // stride + 1  # 4x4 kernel after a 1-pixel zero pad
        flops = conv(s, s, 4, c_in, c_out)
        first = flops if first is None else first
        total, c_in = total + flops, c_out
    return total, first


def hand_step_flops(size, n_blocks, ngf, ndf, batch=1):
    """Convolution FLOPs of one `CycleGAN.train_step`, from the architecture.

    A convolution's backward pass is two convolutions of the forward's cost: the
    gradient of its input and of its kernel. Per step:

    - generator update: G and F run 3 times each (fake, cycled, identity), 6 F_G,
      and the two discriminators once each on the fakes, 2 F_D. Backward: kernel
      and input gradients of all 6 generator passes, 12 F_G, except the input
      gradient of the first convolution in the 4 passes that start from a real
      image (G(x), F(y), F(x), G(y)), -4 F_G1; input gradients only through the
      two discriminators, 2 F_D.
    - D_X and D_Y updates: each discriminator runs on a real and a pooled fake,
      2 x 2 F_D, with kernel gradients, 2 x 2 F_D, and input gradients except at
      the first convolution, whose input is an image, 2 x 2 (F_D - F_D1).

    Total: 18 F_G - 4 F_G1 + 16 F_D - 4 F_D1 per image.
    """
    f_g, f_g1 = generator_flops(size, n_blocks, ngf)
    f_d, f_d1 = discriminator_flops(size, ndf)
    return batch * (18 * f_g - 4 * f_g1 + 16 * f_d - 4 * f_d1)


def graph_step_flops(model, x, y):
    """Convolution FLOPs of the traced train step, counting only ops that the step's results depend on.

    Backward convolutions whose result nobody uses (the gradient of a real
    image, of a discriminator kernel during the generator update) are traced
    but pruned before running, so they are left out here too.
    """
    batch = x.shape[0]
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    live, todo = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
    while todo:
        op = todo.pop()
        if op not in live:
            live.add(op)
            todo += [t.op for t in op.inputs] + list(op.control_inputs)
    total = 0
    for op in live:
        if op.type in CONV_OPS:
            # Input 1 is the kernel (or its shape); the forward conv's output-side tensor
            # (N, H, W, c_out) is the op's output for Conv2D and its input 2 for both backprops.
            kernel = op.inputs[1].shape if op.type != "Conv2DBackpropFilter" else op.outputs[0].shape
            out = op.outputs[0] if op.type == "Conv2D" else op.inputs[2]
            kh, kw, c_in, _ = kernel.as_list()
            # Fakes drawn through the image pool have an unknown batch dimension.
            _, h, w, c_out = out.shape.as_list()
            total += 2 * batch * h * w * c_out * kh * kw * c_in
    return total


def build(size, n_blocks, ngf=64, ndf=64):
    """The full CycleGAN of the paper at this size, compiled with the default optimizers."""
    keras.utils.set_random_seed(0)
    model = CycleGAN(
        ResnetGenerator(ngf=ngf, n_blocks=n_blocks),
        ResnetGenerator(ngf=ngf, n_blocks=n_blocks),
        PatchDiscriminator(ndf=ndf),
        PatchDiscriminator(ndf=ndf),
        image_size=size,
    )
    model.compile()
    return model


def timed(run):
    """Wall-clock and process CPU seconds of one call of `run`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def matmul_run(n, dtype):
    """A function that runs one n x n by n x n matmul to completion."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)

    @tf.function
    def corner(a, b):
        # One element back to Python: the product is complete, without copying it out.
        return tf.linalg.matmul(a, b)[0, 0]

    corner(a, b).numpy()
    return lambda: corner(a, b).numpy()


def step_run(model, size, batch):
    """A function that runs one training step as `model.fit` does, and the list that counts its traces."""
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32") for _ in range(2))
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    traces = []
    step = model.train_step

    def counted_step(data):
        # Runs in Python only while tracing: one call per trace, no cost per step.
        traces.append(1)
        return step(data)

    model.train_step = counted_step
    model.make_train_function()
    train_function = model.train_function
    return lambda: train_function(iterator)["loss_G"].numpy(), traces


def measure(size, n_blocks, repeats, warmup, batch, precision, matmul_n):
    """One table row for this size; steps and matmuls alternate so that both see the same load."""
    model = build(size, n_blocks)
    rng = np.random.default_rng(0)
    x, y = (tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32) for _ in range(2))
    flops = hand_step_flops(size, n_blocks, 64, 64, batch)
    graph = graph_step_flops(model, x, y)
    step, traces = step_run(model, size, batch)
    for _ in range(warmup):
        step()
    # Steps alone first: their times, and the peak memory of training before the
    # matmul's operands exist.
    alone = [timed(step) for _ in range(repeats)]
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    wall, cpu = (statistics.median(t) for t in zip(*alone))
    matmul = matmul_run(matmul_n, "bfloat16" if precision == "mixed_bfloat16" else "float32")
    steps, matmuls = [], []
    for _ in range(repeats):
        matmuls.append(timed(matmul))
        steps.append(timed(step))
    matmul_flops = 2 * matmul_n**3

    def ratio(i):
        # Median over adjacent (matmul, step) pairs, which ran under the same load.
        return statistics.median((flops / s[i]) / (matmul_flops / m[i]) for s, m in zip(steps, matmuls))

    return {
        "size": f"{size}px / {n_blocks} blocks",
        "wall": wall,
        "spread": (min(t for t, _ in alone), max(t for t, _ in alone)),
        "cpu": cpu,
        "images": batch / wall,
        "gflop": flops / 1e9,
        "graph_gflop": graph / 1e9,
        "achieved": flops / wall / 1e9,
        "peak": matmul_flops / statistics.median(t for t, _ in matmuls) / 1e9,
        "ratio": ratio(0),
        # Per CPU-second: what the step would reach with both cores to itself, if it kept them busy.
        "cpu_ratio": ratio(1),
        "traces": len(traces),
        "peak_rss": peak_rss,
        "precision": precision,
    }


def parse_sizes(text):
    """'64:6,128:6' -> [(64, 6), (128, 6)]."""
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",")]


def child(size, n_blocks, args, precision):
    """One row, measured in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, __file__, "--row", f"{size}:{n_blocks}", "--precisions", precision,
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--matmul", str(args.matmul)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(f"measuring {size}px / {precision} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("64:6,128:6,256:9"),
        help="comma-separated SIZE:BLOCKS pairs (default 64:6,128:6,256:9)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per size; medians are reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--precisions",
        default="float32,mixed_bfloat16",
        help="comma-separated Keras dtype policies; the matmul peak uses the compute dtype",
    )
    parser.add_argument("--matmul", type=int, default=4096, help="side of the square matmul that sets the peak")
    parser.add_argument("--row", type=parse_sizes, help=argparse.SUPPRESS)  # internal: measure one row, print JSON
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if args.row:
        keras.mixed_precision.set_global_policy(precisions[0])
        ((size, n_blocks),) = args.row
        print(json.dumps(measure(size, n_blocks, args.repeats, args.warmup, args.batch, precisions[0], args.matmul)))
        return

    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, batch {args.batch}, median of {args.repeats} steps after {args.warmup}, "
        f"each row in its own process, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| size | precision | s/step (min-max) | CPU s/step | img/s | GFLOP/step | GFLOP/s | peak GFLOP/s "
        "| ratio | CPU ratio | peak RSS GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    checks, rows = [], {}
    for size, n_blocks in args.sizes:
        for precision in precisions:
            r = rows[size, precision] = child(size, n_blocks, args, precision)
            print(
                f"| {r['size']} | {precision} | {r['wall']:.3f} ({r['spread'][0]:.3f}-{r['spread'][1]:.3f}) "
                f"| {r['cpu']:.2f} | {r['images']:.2f} | {r['gflop']:.1f} | {r['achieved']:.0f} | {r['peak']:.0f} "
                f"| {r['ratio']:.0%} | {r['cpu_ratio']:.0%} | {r['peak_rss']:.2f} |",
                flush=True,
            )
        checks.append(
            f"{r['size']}: traced graph runs {r['graph_gflop']:.2f} GFLOP of convolutions "
            f"({r['graph_gflop'] / r['gflop'] - 1:+.2%} vs the hand count), train step traced {r['traces']}x"
        )
    print()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for size, _ in args.sizes:
        for precision in precisions[1:]:
            base, other = rows[size, precisions[0]], rows[size, precision]
            print(
                f"{size}px: {precision} steps {base['wall'] / other['wall']:.2f}x the {precisions[0]} rate, "
                f"peak RSS {other['peak_rss']:.2f} vs {base['peak_rss']:.2f} GiB"
            )
    for line in checks:
        print(line)


if __name__ == "__main__":
    main()
