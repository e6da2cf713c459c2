"""Other ways to compute the generator's convolutions, each against the one tfcyclegan runs.

Each row times one layer of the 128 px generator (batch 1, float32) both ways in
one process, alternating `--rounds` rounds of `--calls` calls, and prints the
medians, their ratio and the max abs difference of the results (outputs and both
gradients). What the rows ask:

- u128, u64 (the transposed convolutions): PyTorch's window, rows and columns
  [1, 2H + 1) of the full output, computed whole (VALID) and cropped, as
  tfcyclegan's inference does, against computed directly with explicit padding, as
  its training does. TensorFlow runs the first on oneDNN and the second on its own
  (Eigen) kernels, which oneDNN's rewrite does not take over for explicit padding.
- R256 (a residual convolution, 69 % of the step's convolution time): oneDNN's
  direct convolution against Winograd F(2x2, 3x3) written in TensorFlow ops (input
  and output transforms as strided slices and sums, the 16 products as one batched
  matmul), which does 2.25x fewer multiplications. Its input transform and batched
  matmul are also timed alone.
- c7s1-3 (3 output channels, which oneDNN computes in blocks of 16): direct
  against a space-to-depth form (2x2 pixel blocks as channels, a 4x4 convolution to
  12 channels, depth-to-space), 1.3x the multiply-adds.

Times are forward plus backward (input and kernel gradients) unless the row says
forward; the error column is each way's max abs error against float64.

    .venv/bin/python benchmarks/conv_kernels.py
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcyclegan.core.kernels import conv_on_pixel_blocks, upsample_window  # noqa: E402


def transposed_whole(x, k):
    return upsample_window(x, k, direct=False)


def transposed_direct(x, k):
    return upsample_window(x, k, direct=True)


def valid(x, k):
    return tf.nn.conv2d(x, k, 1, "VALID")


# Winograd F(2x2, 3x3) (Lavin and Gray 2016): Y = A^T [(G g G^T) * (B^T d B)] A per 4x4 tile.
WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], "float32")


def _tiles_bt(x, axis):
    """B^T d along `axis` for the overlapping 4-wide tiles at stride 2, on a new leading axis."""
    n = (x.shape[axis] - 2) // 2

    def rows(i):
        index = [slice(None)] * len(x.shape)
        index[axis] = slice(i, i + 2 * n, 2)
        return x[tuple(index)]

    d0, d1, d2, d3 = (rows(i) for i in range(4))
    return tf.stack([d0 - d2, d1 + d2, d2 - d1, d1 - d3], 0)


def winograd_input(x):
    """(N, H + 2, W + 2, C) -> (16, N * H/2 * W/2, C): B^T d B of every tile."""
    n, h, w, c = x.shape
    return tf.reshape(_tiles_bt(_tiles_bt(x, 1), 3), (16, n * ((h - 2) // 2) * ((w - 2) // 2), c))


def winograd(x, k):
    n, h, w, c = x.shape
    th, tw, c_out = (h - 2) // 2, (w - 2) // 2, k.shape[-1]
    g = tf.constant(WINOGRAD_G, x.dtype)
    # The input transform stacks columns outside rows, so the kernel's taps go (column, row) too.
    u = tf.reshape(tf.einsum("bi,aj,ijck->abck", g, g, k), (16, c, c_out))
    m = tf.reshape(tf.matmul(winograd_input(x), u), (4, 4, n, th, tw, c_out))
    m = tf.stack([m[0] + m[1] + m[2], m[1] - m[2] - m[3]], 0)
    m = tf.stack([m[:, 0] + m[:, 1] + m[:, 2], m[:, 1] - m[:, 2] - m[:, 3]], 1)
    return tf.reshape(tf.transpose(m, (2, 3, 1, 4, 0, 5)), (n, 2 * th, 2 * tw, c_out))


def train_function(way, k, forward_only):
    """One traced call: the output, or the output and both gradients of <output, dy>."""

    @tf.function
    def run(x, dy):
        if forward_only:
            return [way(x, k)]
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = way(x, k)
            loss = tf.reduce_sum(y * dy)
        return [y, *tape.gradient(loss, [x, k])]

    return run


def compare(name, shipped, other, x_shape, k_shape, args, forward_only=False):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=x_shape), tf.float32)
    k = tf.Variable(rng.normal(size=k_shape) * 0.05, dtype=tf.float32)
    dy = tf.constant(rng.normal(size=shipped(x, k).shape), tf.float32)
    runs = [train_function(way, k, forward_only) for way in (shipped, other)]
    results = [[t.numpy() for t in run(x, dy)] for run in runs]
    reference = tf.constant(x.numpy().astype("float64")), tf.Variable(k.numpy().astype("float64"))
    exact = train_function(shipped, reference[1], forward_only)(reference[0], tf.cast(dy, tf.float64))
    times = [[], []]
    for i in range(args.rounds):
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            start = time.perf_counter()
            for _ in range(args.calls):
                runs[j](x, dy)[-1].numpy()
            times[j].append((time.perf_counter() - start) / args.calls * 1e3)
    shipped_ms, other_ms = (statistics.median(t) for t in times)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*results))
    errors = [float(np.max(np.abs(r[0] - exact[0].numpy()))) for r in results]
    print(f"| {name} | {shipped_ms:.2f} | {other_ms:.2f} | {other_ms / shipped_ms:.2f}x | {diff:.1e} "
          f"| {errors[0]:.1e}, {errors[1]:.1e} |", flush=True)  # fmt: skip


def time_alone(name, function, *inputs, args):
    function(*inputs)
    samples = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.calls):
            function(*inputs).numpy()
        samples.append((time.perf_counter() - start) / args.calls * 1e3)
    print(f"{name}: {statistics.median(samples):.2f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, load average {os.getloadavg()[0]:.1f}")
    print()
    print("| layer, ways (first / second) | first ms | second ms | second / first | max abs diff | error vs float64 (output): first, second |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, h, c_in, c_out in (("u128", 32, 256, 128), ("u64", 64, 128, 64)):
        compare(f"{name}: whole and cropped (oneDNN) / direct (Eigen)", transposed_whole, transposed_direct,
                (1, h, h, c_in), (3, 3, c_out, c_in), args)  # fmt: skip
    compare("R256 forward: direct / Winograd", valid, winograd, (1, 34, 34, 256), (3, 3, 256, 256), args, True)
    compare("R256: direct / Winograd", valid, winograd, (1, 34, 34, 256), (3, 3, 256, 256), args)
    compare("c7s1-3 forward: direct / space-to-depth", valid, conv_on_pixel_blocks, (1, 134, 134, 64), (7, 7, 64, 3), args, True)  # fmt: skip
    compare("c7s1-3: direct / space-to-depth", valid, conv_on_pixel_blocks, (1, 134, 134, 64), (7, 7, 64, 3), args)
    print()
    x = tf.random.normal((1, 34, 34, 256))
    time_alone("R256 Winograd input transform alone", tf.function(winograd_input), x, args=args)
    v, u = tf.random.normal((16, 256, 256)), tf.random.normal((16, 256, 256))
    time_alone("R256 Winograd's 16 batched 256x256x256 matmuls alone", tf.function(tf.matmul), v, u, args=args)


if __name__ == "__main__":
    main()
