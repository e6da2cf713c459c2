import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.networks import InstanceNormalization, PatchDiscriminator, ReflectionPadding2D, ResnetGenerator


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


def normalize(layer, x, path):
    """The layer's plain ops (float32 and inference) or its fused kernel (mixed-precision training)."""
    return layer(x) if path == "plain" else layer._fused(x)


@pytest.mark.parametrize("path", ["plain", "fused"])
def test_instance_norm_against_numpy(path):
    x = np.random.default_rng(1).normal(3.0, 2.0, (2, 5, 7, 4)).astype("float32")
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    y = normalize(InstanceNormalization(), tf.constant(x), path)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


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


@pytest.mark.parametrize("path", ["plain", "fused"])
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
