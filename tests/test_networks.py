import re

import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.core.networks import (
    InstanceNormalization,
    MobileResidualBlock,
    MobileResnetGenerator,
    PatchDiscriminator,
    ReflectionPadding2D,
    ResnetGenerator,
    variables_by_path,
)


@pytest.fixture(scope="module")
def generator():
    return ResnetGenerator(ngf=8, n_blocks=2)


@pytest.mark.parametrize("h,w", [(64, 64), (128, 128), (256, 256), (96, 160)])
def test_generator_keeps_size_and_range(generator, h, w):
    y = generator(np.random.uniform(-1, 1, (1, h, w, 3)).astype("float32"))
    assert y.shape == (1, h, w, 3)
    assert float(tf.reduce_max(tf.abs(y))) <= 1.0


@pytest.mark.parametrize("h,w,out", [(64, 64, (6, 6)), (128, 128, (14, 14)), (256, 256, (30, 30)), (96, 160, (10, 18))])
def test_discriminator_patch_map(h, w, out):
    d = PatchDiscriminator(ndf=8)
    assert d(np.zeros((2, h, w, 3), "float32")).shape == (2, *out, 1)


@pytest.mark.parametrize("blocks,count", [(6, 7_837_699), (9, 11_378_179)])
def test_generator_parameter_count_matches_official(blocks, count):
    g = ResnetGenerator(ngf=64, n_blocks=blocks)
    g(np.zeros((1, 32, 32, 3), "float32"))
    assert g.count_params() == count


def test_discriminator_parameter_count_matches_official():
    d = PatchDiscriminator(ndf=64, n_layers=3)
    d(np.zeros((1, 64, 64, 3), "float32"))
    assert d.count_params() == 2_764_737


PATHS = ["inference", "training", "fused"]


def normalize(layer, x, path):
    """Inference's two-stage statistics, float32 training's one-pass moments, or the fused
    kernel of mixed-precision training."""
    return layer._fused(x) if path == "fused" else layer(x, training=path == "training")


def instance_norm_float64(x):
    """y = (x - mean_hw(x)) / sqrt(var_hw(x) + 1e-5), in float64."""
    x = np.asarray(x, np.float64)
    return (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_instance_norm_against_numpy(path):
    x = np.random.default_rng(1).normal(3.0, 2.0, (2, 5, 7, 4)).astype("float32")
    y = normalize(InstanceNormalization(), tf.constant(x), path)
    np.testing.assert_allclose(y, instance_norm_float64(x), atol=1e-5)


def test_inference_instance_norm_of_a_large_offset_map_is_the_definition_to_float32_rounding():
    # A photo-sized map whose mean is 50 standard deviations from zero: the statistics
    # are long sums of nearly equal values, and y moves by (error of the mean) / std.
    # Allowed: the mean 16 float32 spacings off. Measured: the two-stage statistics 6
    # spacings (2.9e-5); one-pass moments over H * W (the training path) 150 (7.1e-4).
    x = np.random.default_rng(4).normal(5.0, 0.1, (1, 427, 640, 3)).astype("float32")
    y = InstanceNormalization()(tf.constant(x), training=False)
    np.testing.assert_allclose(y, instance_norm_float64(x), atol=16 * np.spacing(np.float32(5.0)) / 0.1)


def test_instance_norm_fused_kernel_with_unknown_batch_and_bfloat16():
    # Pooled fakes reach the discriminators with an unknown batch size; bf16 inputs
    # (mixed precision) keep float32 statistics, so only the output's rounding differs.
    x = np.random.default_rng(3).normal(-1.0, 3.0, (3, 6, 5, 4)).astype("float32")
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    layer = InstanceNormalization()
    fn = tf.function(layer._fused, input_signature=[tf.TensorSpec([None, 6, 5, 4])])
    np.testing.assert_allclose(fn(x), expected, atol=1e-5)
    y16 = InstanceNormalization(dtype="mixed_bfloat16")(x, training=True)  # takes the fused path
    assert y16.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y16, "float32"), expected, atol=0.05)


@pytest.mark.parametrize("path", PATHS)
def test_instance_norm_gradient_against_numpy_finite_differences(path):
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, (2, 3, 4, 2))
    w = rng.normal(size=x.shape)  # loss = sum(w * norm(x)), so dL/dy = w

    def loss(values):
        mean = values.mean(axis=(1, 2), keepdims=True)
        return np.sum(w * (values - mean) / np.sqrt(values.var(axis=(1, 2), keepdims=True) + 1e-5))

    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numeric[index] = (loss(x + step) - loss(x - step)) / 2e-6
    x32 = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x32)
        y = normalize(InstanceNormalization(), x32, path)
    np.testing.assert_allclose(tape.gradient(y, x32, output_gradients=tf.constant(w, tf.float32)), numeric, atol=2e-4)


def test_reflection_padding_against_numpy():
    x = np.arange(2 * 4 * 5 * 3, dtype="float32").reshape(2, 4, 5, 3)
    expected = np.pad(x, [(0, 0), (3, 3), (3, 3), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(ReflectionPadding2D(3)(x), expected)


def test_weights_are_normal_0_002_and_differ_between_layers():
    g = ResnetGenerator(ngf=64, n_blocks=2)
    g(np.zeros((1, 32, 32, 3), "float32"))
    kernels = [v.numpy() for v in g.trainable_variables if "kernel" in v.path]
    big = [k for k in kernels if k.size > 10_000]
    for k in big:
        assert abs(k.std() - 0.02) < 0.002 and abs(k.mean()) < 0.002
    # Same-shaped kernels must not be copies of each other (shared seeded initializer bug).
    same = [k for k in kernels if k.shape == big[-1].shape]
    assert len(same) >= 2 and not np.allclose(same[0], same[1])


def _layers_and_networks():
    from tfcyclegan.core.networks import ResidualBlock

    return [
        (InstanceNormalization(epsilon=1e-3), (2, 6, 5, 4)),
        (InstanceNormalization(affine=True), (2, 6, 5, 4)),
        (ReflectionPadding2D(2), (1, 6, 5, 3)),
        (ResidualBlock(4, dropout=True, affine=True), (1, 6, 6, 4)),
        (ResnetGenerator(ngf=4, n_blocks=1), (1, 16, 20, 3)),
        (ResnetGenerator(ngf=4, n_blocks=2, dropout=True, affine=True), (1, 16, 20, 3)),
        (PatchDiscriminator(ndf=4, n_layers=2), (1, 32, 32, 3)),
        (MobileResidualBlock(4, dropout=True, affine=True), (1, 6, 6, 4)),
        (MobileResnetGenerator(ngf=4, n_blocks=2), (1, 16, 20, 3)),
    ]


@pytest.mark.parametrize("index", range(9))
def test_every_layer_and_network_round_trips_through_keras_serialization(index, tmp_path):
    import keras

    layer, shape = _layers_and_networks()[index]
    x = np.random.default_rng(index).uniform(-1, 1, shape).astype("float32")
    y = layer(x)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"].startswith("tfcyclegan>")
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert rebuilt.get_config() == layer.get_config()
    if isinstance(layer, keras.Model):
        layer.save(tmp_path / "net.keras")
        loaded = keras.saving.load_model(tmp_path / "net.keras", safe_mode=True)
        np.testing.assert_array_equal(loaded(x), y)


# Affine norm: a gamma and a beta per channel of each norm (c7s1-64, d128, d256, 12 x R256, u128, u64).
@pytest.mark.parametrize(
    "dropout,affine,extra", [(True, False, 0), (False, True, 2 * (64 + 128 + 256 + 12 * 256 + 128 + 64))]
)
def test_dropout_adds_no_parameters_and_affine_norm_adds_gamma_and_beta(dropout, affine, extra):
    g = ResnetGenerator(ngf=64, n_blocks=6, dropout=dropout, affine=affine)
    g(np.zeros((1, 32, 32, 3), "float32"))
    assert g.count_params() == 7_837_699 + extra


def test_strided_convolutions_have_pytorch_alignment():
    """Conv2d(k3, s2, p1) pads both sides; ConvTranspose2d(k3, s2, p1, output_padding 1) is
    the full transposed output cropped to [1, 2H + 1): a one-hot input shows both."""
    from keras import layers

    g = ResnetGenerator(ngf=1, n_blocks=1)
    g(np.zeros((1, 8, 8, 3), "float32"))
    down = next(layer for layer in g.stack if isinstance(layer, layers.Conv2D) and layer.strides == (2, 2))
    up = next(layer for layer in g.stack if isinstance(layer, layers.Conv2DTranspose))
    pad = g.stack[g.stack.index(down) - 1]
    kernel = np.zeros(down.kernel.shape, "float32")
    kernel[0, 0] = 1  # output (i, j) reads input (2i - 1, 2j - 1) as PyTorch's does
    down.set_weights([kernel, np.zeros(down.bias.shape, "float32")])
    x = np.arange(64, dtype="float32").reshape(1, 8, 8, 1)
    y = down(pad(x)).numpy()[0, :, :, 0]
    expected = np.pad(x[0, :, :, 0], 1)[0:8:2, 0:8:2]
    np.testing.assert_array_equal(y, expected)
    kernel = np.zeros(up.kernel.shape, "float32")
    kernel[0, 0, 0, 0] = 1  # input (i, j) lands on full output (2i, 2j), cropped by one: (2i - 1, 2j - 1)
    up.set_weights([kernel, np.zeros(up.bias.shape, "float32")])
    expected = np.zeros((8, 8), "float32")
    expected[1:7:2, 1:7:2] = 1  # input row 0 falls on cropped row -1; nothing reaches row 7
    # Training computes the window directly, inference whole and cropped (TFLite): both give it.
    for training in (False, True):
        z = up(np.ones((1, 4, 4, up.kernel.shape[-1]), "float32"), training=training).numpy()[0, :, :, 0]
        assert z.shape == (8, 8)
        np.testing.assert_array_equal(z, expected)


def test_transposed_convolution_is_the_same_in_training_and_inference():
    """The two ways u(k) is computed (direct in training, whole and cropped otherwise) agree."""
    g = ResnetGenerator(ngf=8, n_blocks=1)
    g(np.zeros((1, 12, 20, 3), "float32"))
    x = np.random.default_rng(0).normal(size=(2, 6, 10, 32)).astype("float32")
    up = g.stack[[layer.name for layer in g.stack].index("conv_up_1")]
    np.testing.assert_allclose(up(x, training=True), up(x, training=False), atol=1e-5)


def test_output_convolution_on_pixel_blocks_is_the_convolution():
    """c7s1-3 computed on 2x2 pixel blocks against the convolution in numpy (float64), with
    its input gradient; the generator's last convolution is this layer."""
    from tfcyclegan.core.networks import PixelBlockConv2D

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 14, 20, 8)).astype("float32")
    layer = PixelBlockConv2D(3, 7)
    layer.build(x.shape)
    kernel, bias = rng.normal(size=(7, 7, 8, 3)) * 0.1, rng.normal(size=3)
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    windows = np.lib.stride_tricks.sliding_window_view(x.astype("float64"), (7, 7), axis=(1, 2))
    expected = np.einsum("nijcpq,pqco->nijo", windows, kernel) + bias
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    np.testing.assert_allclose(y, expected, atol=1e-5)
    dy = rng.normal(size=expected.shape)
    # d<y, dy>/dx: every window position scatters dy . kernel^T back onto the 7x7 pixels it read.
    grad = np.zeros(x.shape)
    for p, q in np.ndindex(7, 7):
        grad[:, p : p + 8, q : q + 14] += np.einsum("nijo,co->nijc", dy, kernel[p, q])
    np.testing.assert_allclose(tape.gradient(y, xt, output_gradients=tf.constant(dy, tf.float32)), grad, atol=1e-4)
    g = ResnetGenerator(ngf=8, n_blocks=1)
    g(np.zeros((1, 8, 8, 3), "float32"))
    assert type(g.stack[[layer.name for layer in g.stack].index("conv_out")]) is PixelBlockConv2D


def mobile_parameters(ngf, blocks):
    """Hand count: ResnetGenerator's stem, downsamplings, upsamplings and output, and per
    block two (depthwise 3x3 + bias, pointwise 1x1 + bias) of k = 4 ngf channels."""
    k = 4 * ngf
    stem = 7 * 7 * 3 * ngf + ngf + 9 * ngf * 2 * ngf + 2 * ngf + 9 * 2 * ngf * k + k
    up = 9 * k * 2 * ngf + 2 * ngf + 9 * 2 * ngf * ngf + ngf + 7 * 7 * ngf * 3 + 3
    return stem + up + blocks * 2 * (9 * k + k + k * k + k)


@pytest.mark.parametrize("ngf,blocks", [(16, 9), (24, 9), (32, 6), (8, 1)])
def test_mobile_generator_parameter_count_by_hand(ngf, blocks):
    g = MobileResnetGenerator(ngf=ngf, n_blocks=blocks)
    g(np.zeros((1, 32, 32, 3), "float32"))
    assert g.count_params() == mobile_parameters(ngf, blocks)


@pytest.mark.parametrize("h,w", [(64, 64), (96, 160), (36, 20)])
def test_mobile_generator_keeps_size_and_range(h, w):
    g = MobileResnetGenerator(ngf=8, n_blocks=3)
    for training in (False, True):
        y = g(np.random.default_rng(0).uniform(-1, 1, (2, h, w, 3)).astype("float32"), training=training)
        assert y.shape == (2, h, w, 3)
        assert float(tf.reduce_max(tf.abs(y))) <= 1.0


def test_mobile_block_is_depthwise_then_pointwise_against_numpy():
    # y = x + N(P2(N(D2(pad(R(N(P1(N(D1(pad(x))))))))))), computed here with numpy.
    block = MobileResidualBlock(3)
    x = np.random.default_rng(5).normal(size=(1, 5, 6, 3)).astype("float32")
    y = block(x)
    weights = {path: v.numpy() for path, v in ((v.path.split("/", 1)[1], v) for v in block.weights)}

    def norm(a):
        return (a - a.mean(axis=(1, 2), keepdims=True)) / np.sqrt(a.var(axis=(1, 2), keepdims=True) + 1e-5)

    def separable(a, i):
        a = np.pad(a, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
        kernel = weights[f"depthwise_{i}/kernel"][..., 0]  # (3, 3, c)
        depthwise = sum(a[:, u : u + 5, v : v + 6] * kernel[u, v] for u in range(3) for v in range(3))
        depthwise = norm(depthwise + weights[f"depthwise_{i}/bias"])
        return norm(depthwise @ weights[f"pointwise_{i}/kernel"][0, 0] + weights[f"pointwise_{i}/bias"])

    expected = x + separable(np.maximum(separable(x, 1), 0), 2)
    np.testing.assert_allclose(y, expected, atol=1e-4)


def test_mobile_generator_variables_have_layer_paths():
    g = MobileResnetGenerator(ngf=4, n_blocks=2)
    g(np.zeros((1, 16, 16, 3), "float32"))
    paths = variables_by_path(g)
    assert "block_2/depthwise_1/kernel" in paths and "block_1/pointwise_2/bias" in paths
    assert len(paths) == len(g.weights)


def test_mobile_generator_converts_to_tflite_with_builtin_gpu_ops_only(tmp_path, capfd):
    from tfcyclegan.export import savedmodel, tflite

    g = MobileResnetGenerator(ngf=8, n_blocks=2, name="generator_g")
    g(np.zeros((1, 32, 32, 3), "float32"))
    savedmodel.write_savedmodel(g, None, tmp_path / "sm")
    blob = tflite.convert_tflite(tmp_path / "sm", "a2b")
    capfd.readouterr()
    tf.lite.experimental.Analyzer.analyze(model_content=blob, gpu_compatibility=True)  # prints its report
    analysis = capfd.readouterr().out
    ops = set(re.findall(r"Op#\d+ (\w+)\(", analysis))
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "TRANSPOSE_CONV", "MIRROR_PAD"} <= ops
    assert not any(op.startswith(("Flex", "CUSTOM")) for op in ops)  # builtin ops only
    assert "looks compatible with GPU delegate" in analysis
