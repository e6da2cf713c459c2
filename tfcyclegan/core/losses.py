"""The objective of '"Deep Fakes" using GANs' (Shen, Liu, Bai, Li), one function per equation.

Adversarial terms are least-squares (LSGAN, Mao et al. 2017): real targets 1,
fake targets 0. Cycle and identity terms are mean absolute errors. Every
function returns the mean over the batch it is given; `replica_scale` turns a
per-replica mean into that replica's share of the global-batch mean.
"""

import tensorflow as tf


def _mse(x, target):
    x = tf.cast(x, tf.float32)
    return tf.reduce_mean(tf.square(x - target))


def _l1(a, b):
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def gan_loss(disc_fake):
    """Eq. (2), generator side of L_GAN: E[(D(G(x)) - 1)^2]."""
    return _mse(disc_fake, 1.0)


def discriminator_loss(disc_real, disc_fake):
    """Eq. (3), L_D = E[(D(y) - 1)^2] + E[D(G(x))^2], before the 0.5 of eqs. (7)-(8)."""
    return _mse(disc_real, 1.0) + _mse(disc_fake, 0.0)


def identity_loss(real, same):
    """Eq. (4), L_identity = E[|G(y) - y|_1] (and E[|F(x) - x|_1] for F)."""
    return _l1(same, real)


def cycle_loss(real, cycled):
    """Eq. (5), L_cyc = E[|F(G(x)) - x|_1] (and E[|G(F(y)) - y|_1])."""
    return _l1(cycled, real)


def generator_total_loss(loss_gan, loss_identity, loss_cycle, lambda_gan=1.0, lambda_identity=5.0, lambda_cycle=10.0):
    """Eq. (6), L_G = l1 * L_GAN + l2 * L_identity + l3 * L_cyc (defaults l1=1, l2=5, l3=10)."""
    return lambda_gan * loss_gan + lambda_identity * loss_identity + lambda_cycle * loss_cycle


def discriminator_x_loss(disc_x_real, disc_x_fake):
    """Eq. (7), L_D_X = 0.5 * (E[(D_X(x) - 1)^2] + E[D_X(F(y))^2])."""
    return 0.5 * discriminator_loss(disc_x_real, disc_x_fake)


def discriminator_y_loss(disc_y_real, disc_y_fake):
    """Eq. (8), L_D_Y = 0.5 * (E[(D_Y(y) - 1)^2] + E[D_Y(G(x))^2])."""
    return 0.5 * discriminator_loss(disc_y_real, disc_y_fake)


def replica_scale(loss):
    """Scale a per-replica mean so that summing the replicas' gradients gives the global mean.

    MirroredStrategy sums gradients across replicas; without this the update is
    num_replicas times too large (plain SGD shows it, Adam's normalisation hides it).
    """
    return loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)
