"""Every equation of the objective against an independent numpy computation."""

import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.core import losses

rng = np.random.default_rng(0)


def rand(*shape):
    return rng.normal(size=shape).astype("float32")


def test_gan_loss_eq2():
    d_fake = rand(2, 30, 30, 1)
    np.testing.assert_allclose(losses.gan_loss(d_fake), np.mean((d_fake - 1) ** 2), rtol=1e-6)


def test_discriminator_loss_eq3():
    d_real, d_fake = rand(2, 30, 30, 1), rand(2, 30, 30, 1)
    expected = np.mean((d_real - 1) ** 2) + np.mean(d_fake**2)
    np.testing.assert_allclose(losses.discriminator_loss(d_real, d_fake), expected, rtol=1e-6)


def test_identity_loss_eq4():
    y, g_y = rand(2, 8, 8, 3), rand(2, 8, 8, 3)
    np.testing.assert_allclose(losses.identity_loss(y, g_y), np.mean(np.abs(g_y - y)), rtol=1e-6)


def test_cycle_loss_eq5():
    x, f_g_x = rand(2, 8, 8, 3), rand(2, 8, 8, 3)
    np.testing.assert_allclose(losses.cycle_loss(x, f_g_x), np.mean(np.abs(f_g_x - x)), rtol=1e-6)


@pytest.mark.parametrize("lambdas", [(1.0, 5.0, 10.0), (0.5, 0.0, 3.0)])
def test_generator_total_loss_eq6(lambdas):
    gan, idt, cyc = 0.7, 0.2, 0.4
    expected = lambdas[0] * gan + lambdas[1] * idt + lambdas[2] * cyc
    np.testing.assert_allclose(losses.generator_total_loss(gan, idt, cyc, *lambdas), expected, rtol=1e-6)


def test_generator_total_loss_defaults_are_the_papers():
    np.testing.assert_allclose(losses.generator_total_loss(1.0, 1.0, 1.0), 1 + 5 + 10)


@pytest.mark.parametrize("fn", [losses.discriminator_x_loss, losses.discriminator_y_loss])
def test_discriminator_losses_eq7_eq8_are_halved(fn):
    d_real, d_fake = rand(3, 14, 14, 1), rand(3, 14, 14, 1)
    expected = 0.5 * (np.mean((d_real - 1) ** 2) + np.mean(d_fake**2))
    np.testing.assert_allclose(fn(d_real, d_fake), expected, rtol=1e-6)


def test_losses_are_float32_for_bfloat16_inputs():
    d = tf.constant(rand(1, 4, 4, 1), tf.bfloat16)
    assert losses.gan_loss(d).dtype == tf.float32
    assert losses.cycle_loss(d, d).dtype == tf.float32
