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

`--vs-pytorch` times our step against the official PyTorch CycleGAN step instead
(no matmul, no peak): the official networks and `optimize_parameters`
(junyanz/pytorch-CycleGAN-and-pix2pix, rebuilt in benchmarks/torch_cyclegan.py),
same image size, batch and block count, float32, `torch.set_num_threads` set to
the intra-op thread count TensorFlow uses (its default, one per schedulable
core). torch is no dependency of tfcyclegan: it runs in a persistent child
process under another Python (`--torch-python`, default /tmp/torchenv/bin/python;
to create it: python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install
torch==2.13.0 numpy). After warm-up, `--repeats` rounds alternate `--group`
steps of ours with `--group` PyTorch steps (which side goes first alternates
too), so that the load of a shared machine hits both alike. Per size it prints
both medians, ours / PyTorch (lower is better) as the ratio of the medians and as
the median of the rounds' ratios, the same per CPU-second, both sides' parameter
counts and the convolution FLOPs of the PyTorch step as
torch.utils.flop_counter counts them, against `hand_step_flops`. PyTorch's
OpenMP threads wait for each other at the end of every op, so whenever another
process takes a core from one of them the whole op waits a time slice: beside
other jobs its step slows far more than ours (64 px at load average 4-9:
6-70 s a step, where one thread does it in 1.3 CPU seconds), and only a quiet
machine gives a fair ratio at 2 threads. `--threads 1` (one thread each, TensorFlow's inter-op pool too) is
immune to that and still compares the kernels.

    .venv/bin/python benchmarks/train_step.py --vs-pytorch --sizes 128:6 --repeats 9

`--variants` times kernel variants of our float32 step, each against the
shipped networks in one process (same weights; `--repeats` rounds of `--group`
steps each, alternating which goes first): the ratio variant / shipped of the
step time and of its CPU seconds (medians of the rounds' ratios), the max abs
difference of the training-mode outputs of G and D_Y and of the generator
gradients from the shipped networks', and the max abs error of G's output and of
the gradients of both from the shipped networks run in float64 (the float32
rounding error, which a variant may move). A variant is applied by switching
the class of built layers (tfcyclegan itself is untouched); `+` combines them,
e.g. `--variants fused_norm,explicit_pad+bias_add`; `--variants all` runs each
one alone. Names are in VARIANTS. (No NCHW variant: TensorFlow 2.21's CPU
Conv2DBackpropInput and Conv2DBackpropFilter only support NHWC.)

    .venv/bin/python benchmarks/train_step.py --variants all --sizes 128:6
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
from keras import layers, ops  # noqa: E402

from tfcyclegan.core.model import CycleGAN  # noqa: E402
from tfcyclegan.core.networks import (  # noqa: E402
    FractionalStridedConv2D,
    InstanceNormalization,
    PatchDiscriminator,
    PixelBlockConv2D,
    ReflectionPadding2D,
    ResidualBlock,
    ResnetGenerator,
)
from tfcyclegan.util import cpu  # noqa: E402

CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
TORCH_PYTHON = "/tmp/torchenv/bin/python"
TORCH_SETUP = "python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy"
TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_cyclegan.py")


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


def build(size, n_blocks, ngf=64, ndf=64, dtype="float32"):
    """The full CycleGAN of the paper at this size computing in `dtype` (a Keras dtype
    policy, as `fit --precision` gives it), compiled with the default optimizers."""
    keras.utils.set_random_seed(0)
    model = CycleGAN(
        ResnetGenerator(ngf=ngf, n_blocks=n_blocks, dtype=dtype),
        ResnetGenerator(ngf=ngf, n_blocks=n_blocks, dtype=dtype),
        PatchDiscriminator(ndf=ndf, dtype=dtype),
        PatchDiscriminator(ndf=ndf, dtype=dtype),
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
    model = build(size, n_blocks, dtype=precision)
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


def tf_threads():
    """(intra-op, inter-op) threads TensorFlow runs the step with; 0 means one per schedulable core."""
    cores = len(os.sched_getaffinity(0))
    config = tf.config.threading
    return config.get_intra_op_parallelism_threads() or cores, config.get_inter_op_parallelism_threads() or cores


class TorchStep:
    """The official PyTorch step in a persistent child process (torch_cyclegan.py, line protocol)."""

    def __init__(self, python, size, n_blocks, batch, threads, warmup):
        command = [python, TORCH_SCRIPT, "--size", str(size), "--blocks", str(n_blocks), "--batch", str(batch),
                   "--threads", str(threads), "--warmup", str(warmup)]  # fmt: skip
        # stderr is this process's own, so a failure's traceback reaches the parent's report.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, line=None):
        if line:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            sys.exit(f"the PyTorch child exited ({self.process.wait()}), its stderr is above")
        return json.loads(answer)

    def ready(self):
        """Waits for the build and warm-up; parameter counts, threads and versions."""
        return self._ask()

    def flops(self):
        return self._ask("flops")

    def steps(self, k):
        """Runs k steps; [wall, CPU] seconds of each."""
        return self._ask(f"step {k}")

    def close(self):
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()


def versus_pytorch(size, n_blocks, args, precision):
    """One comparison row: our step and the official PyTorch step, alternating in groups."""
    threads, inter = tf_threads()
    # The child builds and warms up while this process does the same; nothing is timed yet.
    torch_step = TorchStep(args.torch_python, size, n_blocks, args.batch, threads, args.warmup)
    model = build(size, n_blocks, dtype=precision)
    step, traces = step_run(model, size, args.batch)
    for _ in range(args.warmup):
        step()
    info = torch_step.ready()
    torch_flops = torch_step.flops()  # one more (untimed) step, counted
    ours, theirs, pairs = [], [], []
    for i in range(args.repeats):
        turns = [lambda: [timed(step) for _ in range(args.group)], lambda: torch_step.steps(args.group)]
        if i % 2:
            turns.reverse()
        a, b = (turn() for turn in turns)
        a, b = (a, b) if i % 2 == 0 else (b, a)
        ours += a
        theirs += b
        pairs.append([statistics.median(t[j] for t in a) / statistics.median(t[j] for t in b) for j in (0, 1)])
    torch_step.close()
    med = [[statistics.median(t[j] for t in times) for j in (0, 1)] for times in (ours, theirs)]
    return {
        "size": f"{size}px / {n_blocks} blocks",
        "precision": precision,
        "ours": med[0],
        "ours_spread": (min(t for t, _ in ours), max(t for t, _ in ours)),
        "torch": med[1],
        "torch_spread": (min(t for t, _ in theirs), max(t for t, _ in theirs)),
        "ratio": med[0][0] / med[1][0],
        "paired": statistics.median(p[0] for p in pairs),
        "cpu_ratio": statistics.median(p[1] for p in pairs),
        "params": {"G": model.generator_g.count_params(), "D": model.discriminator_x.count_params()},
        "torch_params": info["params"],
        "threads": threads,
        "inter": inter,
        "torch_threads": info["threads"],
        "torch_version": info["torch"],
        "gflop": hand_step_flops(size, n_blocks, 64, 64, args.batch) / 1e9,
        "torch_gflop": torch_flops / 1e9,
        "traces": len(traces),
    }


# --- Kernel variants of the float32 step (--variants) -------------------------------------------
# Each variant switches the class of built layers to a subclass with another `call`: the
# weights, the layer's state and its tracking stay, and tfcyclegan's own classes are untouched.


def _bias(layer, y, bias_add):
    if bias_add:
        return tf.nn.bias_add(y, layer.bias)
    return ops.add(y, ops.reshape(layer.bias, (1, 1, 1, -1)))  # what Keras' convolutions do


class _FusedNorm(InstanceNormalization):
    """Training on InstanceNormalization._fused (fused batch norm on the batch folded into channels) in float32 too."""

    def call(self, x, training=None):
        return self._fused(x) if training else super().call(x, training=training)


class _RowMomentsNorm(InstanceNormalization):
    """Training on the two-stage statistics (_row_moments) that inference uses, instead of tf.nn.moments."""

    def call(self, x, training=None):
        if not training:
            return super().call(x, training=training)
        mean, variance = self._row_moments(x)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon)


class _SlicePad(ReflectionPadding2D):
    """Reflection padding as reversed slices concatenated to the image (gradients: slices and adds, no MirrorPadGrad)."""

    def call(self, x):
        p = self.padding
        x = tf.concat([tf.reverse(x[:, 1 : p + 1], [1]), x, tf.reverse(x[:, -p - 1 : -1], [1])], 1)
        return tf.concat([tf.reverse(x[:, :, 1 : p + 1], [2]), x, tf.reverse(x[:, :, -p - 1 : -1], [2])], 2)


class _CroppedTranspose(FractionalStridedConv2D):
    """u(k) computed whole and cropped in training too (the shipped layer does so only in inference)."""

    def call(self, x, training=None):
        return super().call(x, training=False)


class _DirectOutput(PixelBlockConv2D):
    """c7s1-3 as Keras' Conv2D computes it (one convolution to 3 channels), not on 2x2 pixel blocks."""

    call = layers.Conv2D.call


class _Skip(layers.Layer):
    """A ZeroPadding2D whose work the next convolution took over."""

    def call(self, x):
        return x


def _conv_class(explicit_pad, bias_add):
    """Conv2D with the zero padding as the convolution's explicit padding, and/or tf.nn.bias_add."""

    def call(self, x):
        padding = [[0, 0], [1, 1], [1, 1], [0, 0]] if explicit_pad else "VALID"
        return _bias(self, tf.nn.conv2d(x, self.kernel, list(self.strides), padding), bias_add)

    return type("_Conv2D", (layers.Conv2D,), {"call": call})


VARIANTS = {
    "fused_norm": "instance norm in training on the fused batch-norm kernel (InstanceNormalization._fused)",
    "row_moments": "instance norm in training on the two-stage statistics instead of tf.nn.moments",
    "slice_pad": "reflection padding as concatenated reversed slices instead of MirrorPad",
    "explicit_pad": "ZeroPadding2D + Conv2D as one Conv2D with explicit padding",
    "cropped_transpose": "transposed convolutions computed whole (VALID) and cropped in training too",
    "direct_output": "c7s1-3 as one convolution to 3 channels instead of on 2x2 pixel blocks",
    "bias_add": "Conv2D biases by tf.nn.bias_add (BiasAddGrad) instead of a broadcast add",
}


def _layer_lists(model):
    """Every list of layers in the four networks, residual blocks' bodies included."""
    for net in (model.generator_g, model.generator_f, model.discriminator_x, model.discriminator_y):
        yield net.stack
        yield from (layer.body for layer in net.stack if isinstance(layer, ResidualBlock))


def apply_variant(model, names):
    """Switch the built layers of `model` to the kernel variants `names` (a set of VARIANTS keys)."""
    convs = names & {"explicit_pad", "bias_add"}
    for stack in _layer_lists(model):
        for i, layer in enumerate(stack):
            after = stack[i + 1] if i + 1 < len(stack) else None
            if isinstance(layer, InstanceNormalization):
                if "fused_norm" in names:
                    layer.__class__ = _FusedNorm
                elif "row_moments" in names:
                    layer.__class__ = _RowMomentsNorm
            elif isinstance(layer, FractionalStridedConv2D) and "cropped_transpose" in names:
                layer.__class__ = _CroppedTranspose
            elif isinstance(layer, PixelBlockConv2D) and "direct_output" in names:
                layer.__class__ = _DirectOutput
            elif isinstance(layer, ReflectionPadding2D) and "slice_pad" in names:
                layer.__class__ = _SlicePad
            elif isinstance(layer, layers.ZeroPadding2D) and "explicit_pad" in names:
                assert isinstance(after, layers.Conv2D) and layer.padding == ((1, 1), (1, 1))
                layer.__class__ = _Skip
            elif type(layer) is layers.Conv2D and convs:
                # Only convolutions after a zero pad take it over; the others keep VALID padding
                # (c7s1-3, networks.PixelBlockConv2D, keeps its own call).
                padded = i > 0 and isinstance(stack[i - 1], (layers.ZeroPadding2D, _Skip))
                layer.__class__ = _conv_class("explicit_pad" in names and padded, "bias_add" in names)


def _max_abs(a, b):
    return max(float(tf.reduce_max(tf.abs(u - v))) for u, v in zip(a, b))


class _Float64Norm(InstanceNormalization):
    """The shipped training statistics (tf.nn.moments) in the layer's own dtype, for the float64 reference."""

    def call(self, x, training=None):
        mean, variance = tf.nn.moments(x, [1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon)


def float64_reference(base, size, n_blocks):
    """The shipped networks with `base`'s weights in float64: what float32 rounding is measured against."""
    reference = build(size, n_blocks, dtype="float64")
    reference.set_weights([w.astype("float64") for w in base.get_weights()])
    for stack in _layer_lists(reference):
        for layer in stack:
            if isinstance(layer, InstanceNormalization):
                layer.__class__ = _Float64Norm  # the shipped layer would take the fused kernel, float32 only
    return reference


def variant_differences(base, variant, reference, x, y):
    """Max abs differences of training-mode outputs of G and D_Y and of the generator gradients.

    Between the variant and the shipped networks, and of both from the float64
    reference: the float32 rounding error that the variant changes.
    """
    outputs = []
    for model in (base, variant, reference):
        dtype = model.generator_g.compute_dtype
        xm, ym = tf.cast(x, dtype), tf.cast(y, dtype)
        with tf.GradientTape() as tape:
            terms, _, _ = model.compute_losses(xm, ym, training=True)
        grads = tape.gradient(terms["loss_G"], model.generator_variables)
        outputs.append(
            [
                tf.cast(t, "float64")
                for t in (model.generator_g(xm, training=True), model.discriminator_y(ym, training=True), *grads)
            ]
        )
    (g0, d0, *grads0), (g1, d1, *grads1), (g64, _, *grads64) = outputs
    return {
        "G": _max_abs([g0], [g1]),
        "D": _max_abs([d0], [d1]),
        "grad": _max_abs(grads0, grads1),
        "grad_scale": max(float(tf.reduce_max(tf.abs(g))) for g in grads64),
        "G_error": (_max_abs([g0], [g64]), _max_abs([g1], [g64])),
        "grad_error": (_max_abs(grads0, grads64), _max_abs(grads1, grads64)),
    }


def measure_variant(size, n_blocks, args, names):
    """The shipped step and the variant `names`, same weights, alternating in one process."""
    base, variant = build(size, n_blocks), build(size, n_blocks)
    variant.set_weights(base.get_weights())
    apply_variant(variant, set(names.split("+")))
    rng = np.random.default_rng(1)
    x, y = (tf.constant(rng.uniform(-1, 1, (args.batch, size, size, 3)), tf.float32) for _ in range(2))
    diff = variant_differences(base, variant, float64_reference(base, size, n_blocks), x, y)
    steps = [step_run(model, size, args.batch) for model in (base, variant)]
    for _ in range(args.warmup):
        for step, _ in steps:
            step()
    times, pairs = ([], []), []
    for i in range(args.repeats):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        group = {}
        for k in order:
            group[k] = [timed(steps[k][0]) for _ in range(args.group)]
            times[k].extend(group[k])
        pairs.append(
            [statistics.median(t[j] for t in group[1]) / statistics.median(t[j] for t in group[0]) for j in (0, 1)]
        )
    return {
        "variant": names,
        "size": f"{size}px / {n_blocks} blocks",
        "base": statistics.median(t for t, _ in times[0]),
        "wall": statistics.median(t for t, _ in times[1]),
        "ratio": statistics.median(p[0] for p in pairs),
        "ratio_spread": (min(p[0] for p in pairs), max(p[0] for p in pairs)),
        "cpu_ratio": statistics.median(p[1] for p in pairs),
        "traces": [len(traces) for _, traces in steps],
        **diff,
    }


def parse_sizes(text):
    """'64:6,128:6' -> [(64, 6), (128, 6)]."""
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",")]


def child(size, n_blocks, args, precision, mode=()):
    """One row, measured in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, __file__, "--row", f"{size}:{n_blocks}", "--precisions", precision,
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--matmul", str(args.matmul), "--group", str(args.group), "--threads", str(args.threads),
               *mode]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(f"measuring {size}px / {precision} {' '.join(mode)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report_vs_pytorch(args, precisions):
    """--vs-pytorch: one comparison row per size and precision, each in its own process."""
    if not os.access(args.torch_python, os.X_OK):
        sys.exit(
            f"--vs-pytorch needs a Python with torch at {args.torch_python} (--torch-python); create it: {TORCH_SETUP}"
        )
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, batch {args.batch}, {args.repeats} rounds of {args.group} step(s) of ours "
        f"and {args.group} PyTorch step(s) after {args.warmup} each, load average {os.getloadavg()[0]:.1f}"
    )
    print(cpu.describe(cpu.read_cpuinfo()))
    print()
    print("| size | precision | ours s/step (min-max) | PyTorch float32 s/step (min-max) | ours / PyTorch "
          "| per round | ours CPU s/step | PyTorch CPU s/step | CPU ratio per round |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    checks = []
    for size, n_blocks in args.sizes:
        for precision in precisions:
            r = child(size, n_blocks, args, precision, ["--vs-pytorch", "--torch-python", args.torch_python])
            print(
                f"| {r['size']} | {precision} | {r['ours'][0]:.3f} ({r['ours_spread'][0]:.3f}-{r['ours_spread'][1]:.3f}) "
                f"| {r['torch'][0]:.3f} ({r['torch_spread'][0]:.3f}-{r['torch_spread'][1]:.3f}) "
                f"| {r['ratio']:.3f}x | {r['paired']:.3f}x | {r['ours'][1]:.2f} | {r['torch'][1]:.2f} "
                f"| {r['cpu_ratio']:.3f}x |",
                flush=True,
            )
        same = "equal" if r["params"] == r["torch_params"] else "DIFFERENT"
        checks.append(
            f"{r['size']}: parameters per generator / discriminator: ours {r['params']['G']:,} / "
            f"{r['params']['D']:,}, PyTorch {r['torch_params']['G']:,} / {r['torch_params']['D']:,} ({same}); "
            f"convolution GFLOP per step: hand count {r['gflop']:.2f}, PyTorch FlopCounterMode "
            f"{r['torch_gflop']:.2f} ({r['torch_gflop'] / r['gflop'] - 1:+.2%}); our step traced {r['traces']}x"
        )
    print()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(
        f"threads: TensorFlow intra-op {r['threads']} (inter-op {r['inter']}), "
        f"PyTorch {r['torch_version']} torch.set_num_threads({r['torch_threads']})"
    )
    for line in checks:
        print(line)


def report_variants(args, precisions):
    """--variants: each variant against the shipped networks, each in its own process."""
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = {n for name in names for n in name.split("+")} - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, batch {args.batch}, {precisions[0]}, {args.repeats} rounds of {args.group} "
        f"step(s) of each after {args.warmup}, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| size | variant | shipped s/step | variant s/step | variant / shipped (min-max) | CPU ratio "
          "| max abs diff G | max abs diff D_Y | max abs diff grad G | G error vs float64: shipped, variant "
          "| grad G error vs float64 (max abs grad): shipped, variant |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, n_blocks in args.sizes:
        for name in names:
            r = child(size, n_blocks, args, precisions[0], ["--variants", name])
            print(
                f"| {r['size']} | {name} | {r['base']:.3f} | {r['wall']:.3f} | {r['ratio']:.3f}x "
                f"({r['ratio_spread'][0]:.3f}-{r['ratio_spread'][1]:.3f}) | {r['cpu_ratio']:.3f}x | {r['G']:.1e} "
                f"| {r['D']:.1e} | {r['grad']:.1e} | {r['G_error'][0]:.1e}, {r['G_error'][1]:.1e} "
                f"| {r['grad_error'][0]:.1e}, {r['grad_error'][1]:.1e} ({r['grad_scale']:.1e}) |",
                flush=True,
            )
            assert r["traces"] == [1, 1], r["traces"]
    print()
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name in names:
        print(f"{name}: {'; '.join(VARIANTS[n] for n in name.split('+'))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=None,
        help="comma-separated SIZE:BLOCKS pairs (default 64:6,128:6,256:9; 128:6 with --variants)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed steps (rounds) per size; medians are reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing, allocation)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--precisions",
        default=None,
        help="comma-separated Keras dtype policies; the matmul peak uses the compute dtype "
        "(default float32,mixed_bfloat16; float32 with --vs-pytorch or --variants)",
    )
    parser.add_argument("--matmul", type=int, default=4096, help="side of the square matmul that sets the peak")
    parser.add_argument("--vs-pytorch", action="store_true", help="time against the official PyTorch step")
    parser.add_argument("--torch-python", default=TORCH_PYTHON, help=f"a Python with torch (default {TORCH_PYTHON})")
    parser.add_argument(
        "--variants", help=f"kernel variants to time: 'all' or comma-separated, + combines: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--group", type=int, default=1, help="steps per turn with --vs-pytorch and --variants")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra- and inter-op threads, and PyTorch's threads (default: TensorFlow's, one per core)",
    )
    parser.add_argument("--row", type=parse_sizes, help=argparse.SUPPRESS)  # internal: measure one row, print JSON
    args = parser.parse_args()
    special = args.vs_pytorch or args.variants
    precisions = (args.precisions or ("float32" if special else "float32,mixed_bfloat16")).split(",")
    args.sizes = args.sizes or parse_sizes("128:6" if args.variants else "64:6,128:6,256:9")
    if args.row:
        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        ((size, n_blocks),) = args.row
        if args.vs_pytorch:
            result = versus_pytorch(size, n_blocks, args, precisions[0])
        elif args.variants:
            result = measure_variant(size, n_blocks, args, args.variants)
        else:
            result = measure(size, n_blocks, args.repeats, args.warmup, args.batch, precisions[0], args.matmul)
        print(json.dumps(result))
        return
    if args.vs_pytorch:
        return report_vs_pytorch(args, precisions)
    if args.variants:
        return report_variants(args, precisions)

    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, batch {args.batch}, median of {args.repeats} steps after {args.warmup}, "
        f"each row in its own process, load average {os.getloadavg()[0]:.1f}"
    )
    print(cpu.describe(cpu.read_cpuinfo()))
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
