"""The two networks of CycleGAN (Zhu et al. 2017, appendix 7.2).

ResNet generator: c7s1-ngf, d(2ngf), d(4ngf), R(4ngf) x n_blocks, u(2ngf),
u(ngf), c7s1-3, tanh. 70x70 PatchGAN discriminator: C64-C128-C256-C512 then a
one-channel convolution. Both follow the official PyTorch implementation
(instance norm without affine parameters, biases on every convolution), so the
parameter counts match it exactly, and so does the pixel alignment: every
stride-2 convolution pads by 1 on both sides as PyTorch's Conv2d(k3, s2, p1)
does (Keras' padding="same" pads only after, one pixel off), and every
transposed convolution crops its full output to [1, 2H + 1) as PyTorch's
ConvTranspose2d(k3, s2, p1, output_padding=1) does
(FractionalStridedConv2D). Weights of the official
generators therefore give PyTorch's outputs (tfcyclegan.models.pretrained).

Every layer and network is registered for Keras serialization under the package
"tfcyclegan", so generators save to and load from .keras files
(keras.saving.load_model(path, safe_mode=True)) without custom_objects.

Layers are named by their place in the architecture (conv_in, conv_down_1, block_3/conv_1,
conv_up_2, conv_out; a discriminator's conv_1 ... conv_out), so each variable has a
stable path (`variable.path`, e.g. "generator_g/block_3/conv_1/kernel") by which
checkpoints store it (tfcyclegan.runs.rundir). A network computes in the dtype policy it is
given (`dtype="mixed_bfloat16"`, passed to every layer), never the global one, so building
a model never changes global state; every variable is float32 in any policy.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from tfcyclegan.core import kernels


def variables_by_path(network):
    """{layer path: variable} of a ResnetGenerator or PatchDiscriminator, e.g.
    "block_3/conv_1/kernel": the names checkpoints store its variables by (tfcyclegan.runs.rundir).

    Taken from the network's structure, not from `variable.path`, which depends on the
    name scope the network happened to be built in (a loaded .keras file has none).
    """
    found = {}

    def walk(stack, prefix):
        for layer in stack:
            if isinstance(layer, ResidualBlock):  # MobileResidualBlock too
                walk(layer.body, f"{prefix}{layer.name}/")
            else:
                found.update((f"{prefix}{layer.name}/{v.name}", v) for v in layer.weights)

    walk(network.stack, "")
    if len(found) != len(network.weights):  # two layers of one name: paths would collide
        raise ValueError(f"{network.name}: layer names are not unique")
    return found


def _init():
    # A fresh initializer per layer: a single seeded Keras 3 initializer object
    # reused across layers hands every layer the same weights.
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


@keras.saving.register_keras_serializable(package="tfcyclegan")
class InstanceNormalization(layers.Layer):
    """Instance norm (Ulyanov et al. 2016): normalise each image and channel over H, W.

    y = (x - mean_hw(x)) / sqrt(var_hw(x) + epsilon). No affine parameters by
    default, as in the official CycleGAN; `affine=True` adds a per-channel
    gamma (ones) and beta (zeros), y * gamma + beta, as PyTorch's
    InstanceNorm2d(affine=True), for generators imported from forks that use it.
    Statistics are computed in float32 so that mixed-precision training stays stable.
    """

    def __init__(self, epsilon=1e-5, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.affine = affine

    def build(self, input_shape):
        if self.affine:
            channels = (input_shape[-1],)
            self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta")

    def _scale_offset(self):
        """(gamma, beta) in float32, where the statistics are computed."""
        return ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32")

    def call(self, x, training=None):
        if training and self.compute_dtype != "float32":
            return self._fused(x)
        x32 = ops.cast(x, "float32")
        # Training keeps the one-pass moments its seeded results were measured with;
        # inference, which exports run, takes the two-stage statistics.
        if training:
            mean, variance = ops.moments(x32, axes=[1, 2], keepdims=True)
        else:
            mean, variance = self._row_moments(x32)
        y = (x32 - mean) * ops.rsqrt(variance + self.epsilon)
        if self.affine:
            gamma, beta = self._scale_offset()
            y = y * gamma + beta
        return ops.cast(y, self.compute_dtype)

    @staticmethod
    def _row_moments(x):
        """mean_hw(x) = mean_h(mean_w(x)) and var_hw(x) = mean_h(mean_w((x - mean_hw(x))^2)).

        Equal to the one-pass moments (every row holds W pixels) up to float32
        rounding, but each sum is W or H terms long instead of H * W. TFLite's MEAN
        kernel sums in one float32 pass: at 427 x 640, one-pass statistics put the
        float32 export up to 4.9e-4 off Keras, two stages 2.9e-5 (docs/export.md).
        """
        mean = tf.reduce_mean(tf.reduce_mean(x, axis=2, keepdims=True), axis=1, keepdims=True)
        # squared_difference stays one TFLite op, which int8 exports keep in float32 (export.INT8_FLOAT_OPS).
        squares = tf.math.squared_difference(x, mean)
        return mean, tf.reduce_mean(tf.reduce_mean(squares, axis=2, keepdims=True), axis=1, keepdims=True)

    def _fused(self, x):
        # Instance norm of (image n, channel c) is batch norm of channel n*c once the
        # batch is folded into the channels (a free reshape at batch 1), so mixed-precision
        # training runs the fused batch-norm kernels: bf16/fp16 in and out, float32
        # statistics inside, no casts, faster than the plain ops in bf16
        # (docs/benchmarks.md). float32 keeps the plain ops: there the kernel saves little
        # of a step, and its rounding depends on how the batch is split and on the
        # thread count, so one device and two replicas (or a run and its resume on
        # another machine) would no longer agree to float32 rounding (docs/benchmarks.md,
        # "Kernel choices"). Inference keeps the plain ops, which every TFLite converter
        # path supports.
        n, h, w, c = (tf.shape(x)[i] for i in range(4))
        folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c])
        if self.affine:
            # Folded channel n * C + c is image n's channel c: each image repeats gamma, beta.
            scale, offset = (tf.tile(v, [n]) for v in self._scale_offset())
        else:
            scale = tf.ones([n * c], "float32")
            offset = tf.zeros_like(scale)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(folded, scale, offset, epsilon=self.epsilon, is_training=True)
        return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3])

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "affine": self.affine}


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ReflectionPadding2D(layers.Layer):
    """Reflection padding, which the paper uses to reduce border artifacts."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ResidualBlock(layers.Layer):
    """R-k: two reflection-padded 3x3 convolutions with instance norm, plus the input.

    `dropout=True` puts Dropout(0.5) after the first ReLU, as the official
    ResnetBlock(use_dropout=True) (the official training default) does; `affine`
    is InstanceNormalization's.
    """

    def __init__(self, filters, dropout=False, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.dropout = dropout
        self.affine = affine
        self.body = self._body(filters, dropout, affine, self.dtype_policy)

    def _body(self, filters, dropout, affine, policy):
        return [
            ReflectionPadding2D(1, name="pad_1", dtype=policy),
            layers.Conv2D(filters, 3, kernel_initializer=_init(), name="conv_1", dtype=policy),
            InstanceNormalization(affine=affine, name="norm_1", dtype=policy),
            layers.ReLU(name="relu_1", dtype=policy),
            *([layers.Dropout(0.5, name="dropout", dtype=policy)] if dropout else []),
            ReflectionPadding2D(1, name="pad_2", dtype=policy),
            layers.Conv2D(filters, 3, kernel_initializer=_init(), name="conv_2", dtype=policy),
            InstanceNormalization(affine=affine, name="norm_2", dtype=policy),
        ]

    def build(self, input_shape):
        # Built layer by layer, so a block deserialized on its own holds its weights at once.
        x = keras.KerasTensor(input_shape)
        for layer in self.body:
            x = layer(x)

    def call(self, x):
        y = x
        for layer in self.body:
            y = layer(y)
        return x + y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout, "affine": self.affine}


# The two layers below are registered and (through __name__) named as the Keras layers
# they extend: the .keras format names a list's layers by class name (conv2d_transpose,
# conv2d...), and these names must stay what they were for model files written before
# to load (tests/fixtures/v1).


@keras.saving.register_keras_serializable(package="tfcyclegan", name="Conv2DTranspose")
class FractionalStridedConv2D(layers.Conv2DTranspose):
    """u(k), the paper's 3x3 fractional-strided convolution with stride 1/2: PyTorch's
    ConvTranspose2d(k3, s2, p1, output_padding=1), 2H x 2W from H x W.

    That is rows and columns [1, 2H + 1) of the full (2H + 1)-wide transposed
    convolution (kernels.upsample_window): computed directly in training, where it is
    the faster form on CPU (docs/benchmarks.md, "Kernel choices"), whole and cropped
    otherwise, because TFLite's TRANSPOSE_CONV takes only SAME or VALID padding. Both
    give the same outputs to float32 rounding.
    """

    def __init__(self, filters, kernel_size=3, strides=2, **kwargs):
        if kernel_size not in (3, (3, 3)) or strides not in (2, (2, 2)):
            raise ValueError(f"u(k) is kernel 3, stride 2, not {kernel_size}, {strides}")
        super().__init__(filters, kernel_size, strides=strides, **kwargs)

    def call(self, x, training=None):
        y = kernels.upsample_window(x, self.kernel, direct=bool(training))
        y = tf.ensure_shape(y, self.compute_output_shape(x.shape))
        return ops.add(y, ops.reshape(self.bias, (1, 1, 1, -1)))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)


FractionalStridedConv2D.__name__ = "Conv2DTranspose"


@keras.saving.register_keras_serializable(package="tfcyclegan", name="Conv2D")
class PixelBlockConv2D(layers.Conv2D):
    """c7s1-k: Keras' 7x7 stride-1 VALID Conv2D, computed on 2x2 pixel blocks
    (kernels.conv_on_pixel_blocks).

    For the 3-channel output layer this is the faster form on CPU (docs/benchmarks.md,
    "Kernel choices"); same weights, same outputs to float32 rounding. Needs an
    even-sized input, which the generator always gives it (sizes are multiples of 4,
    padded by 2 x 3).
    """

    def __init__(self, filters, kernel_size=7, **kwargs):
        if kernel_size not in (7, (7, 7)) or kwargs.get("strides", 1) not in (1, (1, 1)):
            raise ValueError(f"c7s1-k is kernel 7, stride 1, not {kernel_size}")
        super().__init__(filters, kernel_size, **kwargs)

    def call(self, x):
        return ops.add(kernels.conv_on_pixel_blocks(x, self.kernel), ops.reshape(self.bias, (1, 1, 1, -1)))


PixelBlockConv2D.__name__ = "Conv2D"


class _LayerStack(keras.Model):
    """A network that runs its `stack` of layers in order (both networks are one chain)."""

    def call(self, x):
        for layer in self.stack:
            x = layer(x)
        return x


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ResnetGenerator(_LayerStack):
    """Generator G: X -> Y (or F: Y -> X), fully convolutional.

    Any input whose height and width are multiples of 4 gives an output of the
    same size; values are in [-1, 1]. `dropout` and `affine` are the residual
    blocks' (off by default, as the official pretrained generators); neither
    changes the default parameter count.
    """

    block_class = ResidualBlock  # R-k; MobileResnetGenerator swaps in its separable block

    def __init__(self, ngf=64, n_blocks=6, dropout=False, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.ngf = ngf
        self.n_blocks = n_blocks
        self.dropout = dropout
        self.affine = affine
        policy = self.dtype_policy  # every layer computes in the network's dtype policy
        stack = [
            ReflectionPadding2D(3, name="pad_in", dtype=policy),
            layers.Conv2D(ngf, 7, kernel_initializer=_init(), name="conv_in", dtype=policy),  # c7s1-ngf
            InstanceNormalization(affine=affine, name="norm_in", dtype=policy),
            layers.ReLU(name="relu_in", dtype=policy),
        ]
        for i, mult in enumerate((2, 4), 1):  # d128, d256: PyTorch's Conv2d(k3, s2, p1)
            stack += [
                layers.ZeroPadding2D(1, name=f"pad_down_{i}", dtype=policy),
                layers.Conv2D(
                    ngf * mult, 3, strides=2, kernel_initializer=_init(), name=f"conv_down_{i}", dtype=policy
                ),
                InstanceNormalization(affine=affine, name=f"norm_down_{i}", dtype=policy),
                layers.ReLU(name=f"relu_down_{i}", dtype=policy),
            ]
        stack += [
            self.block_class(ngf * 4, dropout=dropout, affine=affine, name=f"block_{i}", dtype=policy)
            for i in range(1, n_blocks + 1)
        ]
        for i, mult in enumerate((2, 1), 1):  # u128, u64: PyTorch's ConvTranspose2d(k3, s2, p1, output_padding=1)
            stack += [
                FractionalStridedConv2D(
                    ngf * mult, 3, strides=2, kernel_initializer=_init(), name=f"conv_up_{i}", dtype=policy
                ),
                InstanceNormalization(affine=affine, name=f"norm_up_{i}", dtype=policy),
                layers.ReLU(name=f"relu_up_{i}", dtype=policy),
            ]
        stack += [
            ReflectionPadding2D(3, name="pad_out", dtype=policy),
            PixelBlockConv2D(3, 7, kernel_initializer=_init(), name="conv_out", dtype=policy),  # c7s1-3
            # tanh in float32: under mixed precision the output image keeps full range.
            layers.Activation("tanh", name="tanh", dtype="float32"),
        ]
        self.stack = stack

    def get_config(self):
        return {
            **super().get_config(),
            "ngf": self.ngf,
            "n_blocks": self.n_blocks,
            "dropout": self.dropout,
            "affine": self.affine,
        }


@keras.saving.register_keras_serializable(package="tfcyclegan")
class PatchDiscriminator(_LayerStack):
    """70x70 PatchGAN D_X or D_Y: one real/fake score per overlapping image patch.

    C64 (no norm) - C128 - C256 with stride 2, then C512 at stride 1 and a
    1-channel convolution; 4x4 kernels, padding 1, LeakyReLU 0.2. A 256x256
    input gives a 30x30x1 map. Outputs are raw scores (LSGAN needs no sigmoid).
    """

    def __init__(self, ndf=64, n_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.ndf = ndf
        self.n_layers = n_layers
        policy = self.dtype_policy  # every layer computes in the network's dtype policy
        stack = []
        for i in range(1, n_layers + 2):
            last = i == n_layers + 1
            stack += [
                layers.ZeroPadding2D(1, name=f"pad_{i}", dtype=policy),
                layers.Conv2D(
                    ndf * min(2 ** (i - 1), 8),
                    4,
                    strides=1 if last else 2,
                    kernel_initializer=_init(),
                    name=f"conv_{i}",
                    dtype=policy,
                ),
            ]
            if i > 1:
                stack.append(InstanceNormalization(name=f"norm_{i}", dtype=policy))
            stack.append(layers.LeakyReLU(0.2, name=f"lrelu_{i}", dtype=policy))
        stack += [
            layers.ZeroPadding2D(1, name="pad_out", dtype=policy),
            # Scores in float32, as the LSGAN losses are computed.
            layers.Conv2D(1, 4, kernel_initializer=_init(), name="conv_out", dtype="float32"),
        ]
        self.stack = stack

    def get_config(self):
        return {**super().get_config(), "ndf": self.ndf, "n_layers": self.n_layers}


@keras.saving.register_keras_serializable(package="tfcyclegan")
class MobileResidualBlock(ResidualBlock):
    """R-k of GAN Compression's mobile generator (Li et al. 2020): each 3x3 convolution of
    ResidualBlock becomes a depthwise 3x3 convolution, instance norm and a pointwise 1x1
    convolution (their SeparableConv2d), then instance norm (and ReLU after the first).

    y = x + N(P2(N(D2(pad(R(N(P1(N(D1(pad(x))))))))))): with k channels the block holds
    2 (9k + k + k^2 + k) weights and biases against ResidualBlock's 2 (9k^2 + k), 0.13x
    at k = 64. Every op is a TFLite builtin the GPU delegate runs.
    """

    def _body(self, filters, dropout, affine, policy):
        body = []
        for i in (1, 2):
            body += [
                ReflectionPadding2D(1, name=f"pad_{i}", dtype=policy),
                layers.DepthwiseConv2D(3, depthwise_initializer=_init(), name=f"depthwise_{i}", dtype=policy),
                InstanceNormalization(affine=affine, name=f"norm_depthwise_{i}", dtype=policy),
                layers.Conv2D(filters, 1, kernel_initializer=_init(), name=f"pointwise_{i}", dtype=policy),
                InstanceNormalization(affine=affine, name=f"norm_{i}", dtype=policy),
            ]
            if i == 1:
                body.append(layers.ReLU(name="relu_1", dtype=policy))
                if dropout:
                    body.append(layers.Dropout(0.5, name="dropout", dtype=policy))
        return body


@keras.saving.register_keras_serializable(package="tfcyclegan")
class MobileResnetGenerator(ResnetGenerator):
    """The ResNet generator with GAN Compression's separable residual blocks (MobileResidualBlock).

    Stem, both downsamplings, both upsamplings and the c7s1-3 output are ResnetGenerator's;
    only R(4ngf) x n_blocks changes. At ngf 16 and 9 blocks it holds 0.14 M parameters and
    runs 0.95 G multiply-adds on a 256 x 256 image, against 11.4 M and 49.6 G of the
    9-block ResnetGenerator at ngf 64 (tfcyclegan.core.cost). A subclass, so everything
    that takes a ResnetGenerator (readers, exports, checkpoints by layer path) takes it.
    """

    block_class = MobileResidualBlock
