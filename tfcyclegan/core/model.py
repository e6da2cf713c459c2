"""CycleGAN as a keras.Model: the ordered updates of the paper's Algorithm 1."""

import keras
import tensorflow as tf

from tfcyclegan.core import losses
from tfcyclegan.core.pool import ImagePool

LOSS_NAMES = ("loss_G", "loss_D", "loss_GAN", "loss_identity", "loss_cycle", "loss_D_X", "loss_D_Y")


class CycleGAN(keras.Model):
    """Generators G: X -> Y and F: Y -> X with discriminators D_X and D_Y.

    `train_step` performs, in this order: (i) one update of G and F together on
    L_G (eq. 6); (ii) one update of D_X on L_D_X (eq. 7); (iii) one update of D_Y
    on L_D_Y (eq. 8), the discriminators seeing fakes drawn through image pools.
    L_GAN, L_identity and L_cyc each sum both directions, as in the official code.
    `call` maps X to Y.
    """

    def __init__(
        self,
        generator_g,
        generator_f,
        discriminator_x,
        discriminator_y,
        image_size=256,
        pool_size=50,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator_g = generator_g
        self.generator_f = generator_f
        self.discriminator_x = discriminator_x
        self.discriminator_y = discriminator_y
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        # pool_x holds fakes of X (from F) for D_X; pool_y holds fakes of Y (from G) for D_Y.
        self.pool_x = ImagePool(pool_size, (h, w, 3), seed=seed, name="pool_x")
        self.pool_y = ImagePool(pool_size, (h, w, 3), seed=seed + 1, name="pool_y")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        # Build every network eagerly so optimizers and checkpoints see all variables
        # before the first step; the networks are fully convolutional.
        probe = tf.zeros((1, h, w, 3))
        for net in (generator_g, generator_f, discriminator_x, discriminator_y):
            net(probe)
        self.built = True

    def compile(
        self,
        generator_optimizer=None,
        discriminator_x_optimizer=None,
        discriminator_y_optimizer=None,
        lambda_gan=1.0,
        lambda_identity=5.0,
        lambda_cycle=10.0,
        **kwargs,
    ):
        """Set the three optimizers (default Adam(2e-4, beta_1=0.5)) and the lambdas of eq. (6)."""
        super().compile(optimizer=None, **kwargs)

        def default():
            return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)

        self.generator_optimizer = generator_optimizer or default()
        self.discriminator_x_optimizer = discriminator_x_optimizer or default()
        self.discriminator_y_optimizer = discriminator_y_optimizer or default()
        self.lambda_gan = float(lambda_gan)
        self.lambda_identity = float(lambda_identity)
        self.lambda_cycle = float(lambda_cycle)
        # Slots exist from the start, so a checkpoint restores optimizer state in full.
        self.generator_optimizer.build(self.generator_variables)
        self.discriminator_x_optimizer.build(self.discriminator_x.trainable_variables)
        self.discriminator_y_optimizer.build(self.discriminator_y.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Every network and optimizer is built in __init__ and compile, so Keras' symbolic
        # build has nothing to do. Skipped, because under a tf.distribute strategy it
        # pulls one batch out of a fit iterator that `steps_per_epoch` keeps (training
        # would skip the first batch and run out of data one step early), and under
        # MultiWorkerMirroredStrategy its reduction of that batch fails
        # (keras-team/keras#20585).
        return

    @property
    def generator_variables(self):
        return self.generator_g.trainable_variables + self.generator_f.trainable_variables

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.generator_g(x, training=training)

    def compute_losses(self, real_x, real_y, training=False):
        """Forward pass of both cycles and the generator objective, eqs. (2), (4), (5), (6)."""
        fake_y = self.generator_g(real_x, training=training)
        cycled_x = self.generator_f(fake_y, training=training)
        fake_x = self.generator_f(real_y, training=training)
        cycled_y = self.generator_g(fake_x, training=training)
        same_x = self.generator_f(real_x, training=training)
        same_y = self.generator_g(real_y, training=training)
        loss_gan = losses.gan_loss(self.discriminator_y(fake_y, training=training)) + losses.gan_loss(
            self.discriminator_x(fake_x, training=training)
        )
        loss_identity = losses.identity_loss(real_x, same_x) + losses.identity_loss(real_y, same_y)
        loss_cycle = losses.cycle_loss(real_x, cycled_x) + losses.cycle_loss(real_y, cycled_y)
        loss_g = losses.generator_total_loss(
            loss_gan, loss_identity, loss_cycle, self.lambda_gan, self.lambda_identity, self.lambda_cycle
        )
        terms = {"loss_G": loss_g, "loss_GAN": loss_gan, "loss_identity": loss_identity, "loss_cycle": loss_cycle}
        return terms, fake_x, fake_y

    def loss_discriminator_x(self, real_x, fake_x, training=False):
        """Eq. (7) evaluated with D_X."""
        return losses.discriminator_x_loss(
            self.discriminator_x(real_x, training=training), self.discriminator_x(fake_x, training=training)
        )

    def loss_discriminator_y(self, real_y, fake_y, training=False):
        """Eq. (8) evaluated with D_Y."""
        return losses.discriminator_y_loss(
            self.discriminator_y(real_y, training=training), self.discriminator_y(fake_y, training=training)
        )

    @staticmethod
    def _scaled(optimizer, loss):
        # Inside the tape: each replica's share of the global-batch mean, times the
        # loss scale when the optimizer is a LossScaleOptimizer (mixed_float16).
        return optimizer.scale_loss(losses.replica_scale(loss))

    @staticmethod
    def _apply(optimizer, tape, scaled_loss, variables):
        optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))

    def train_step(self, data):
        real_x, real_y = data
        # (i) generators G and F, one tape, one update on L_G.
        with tf.GradientTape() as tape:
            terms, fake_x, fake_y = self.compute_losses(real_x, real_y, training=True)
            scaled = self._scaled(self.generator_optimizer, terms["loss_G"])
        self._apply(self.generator_optimizer, tape, scaled, self.generator_variables)
        # (ii) D_X on real x and pooled F(y), then (iii) D_Y on real y and pooled G(x).
        loss_dx, loss_dy = self._update_discriminators(real_x, real_y, fake_x, fake_y)
        return self._track(terms, loss_dx, loss_dy)

    def warmup_step(self, data):
        """Updates (ii) and (iii) of `train_step` alone, against G and F as they are.

        Pretrained generators come without their discriminators: before the joint updates,
        D_X and D_Y learn eqs. (7) and (8) against the frozen generators, so that the first
        generator updates follow a discriminator that already judges, not a random one.
        Returns {"loss_D_X", "loss_D_Y"}.
        """
        real_x, real_y = data
        fake_y = self.generator_g(real_x, training=True)
        fake_x = self.generator_f(real_y, training=True)
        loss_dx, loss_dy = self._update_discriminators(real_x, real_y, fake_x, fake_y)
        return {"loss_D_X": loss_dx, "loss_D_Y": loss_dy}

    def _update_discriminators(self, real_x, real_y, fake_x, fake_y):
        """One update of D_X (eq. 7) on real x and pooled F(y), then one of D_Y (eq. 8) on real
        y and pooled G(x); returns their losses."""
        fake_x = self.pool_x.query(tf.stop_gradient(fake_x))
        fake_y = self.pool_y.query(tf.stop_gradient(fake_y))
        with tf.GradientTape() as tape:
            loss_dx = self.loss_discriminator_x(real_x, fake_x, training=True)
            scaled = self._scaled(self.discriminator_x_optimizer, loss_dx)
        self._apply(self.discriminator_x_optimizer, tape, scaled, self.discriminator_x.trainable_variables)
        with tf.GradientTape() as tape:
            loss_dy = self.loss_discriminator_y(real_y, fake_y, training=True)
            scaled = self._scaled(self.discriminator_y_optimizer, loss_dy)
        self._apply(self.discriminator_y_optimizer, tape, scaled, self.discriminator_y.trainable_variables)
        return loss_dx, loss_dy

    def test_step(self, data):
        real_x, real_y = data
        terms, fake_x, fake_y = self.compute_losses(real_x, real_y)
        loss_dx = self.loss_discriminator_x(real_x, fake_x)
        loss_dy = self.loss_discriminator_y(real_y, fake_y)
        return self._track(terms, loss_dx, loss_dy)

    def _track(self, terms, loss_dx, loss_dy):
        values = {**terms, "loss_D": loss_dx + loss_dy, "loss_D_X": loss_dx, "loss_D_Y": loss_dy}
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Keras averages a step's outputs across workers with strategy.reduce(...,
            # axis=0), which fails on scalars: give each a length-1 axis to average over.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results
