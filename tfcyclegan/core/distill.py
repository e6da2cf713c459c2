"""Distillation of a generator into a smaller one: GAN Compression's objective (Li et al. 2020, eq. 4-6).

The student S learns one direction of a frozen teacher T from the teacher's outputs
and intermediate activations on the same source images x:

    L_recon   = E[|S(x) - T(x)|_1]                                      (eq. 5, paired)
    L_distill = sum_k E[(f_k(S_k(x)) - T_k(x))^2]                        (eq. 4)
    L_GAN     = E[(D(S(x)) - 1)^2]                                       (LSGAN, eq. 2 here)
    L_S       = lambda_l1 L_recon + lambda_feature L_distill + lambda_gan L_GAN   (eq. 6)

S_k and T_k are the activations at matching places of both generators (after the
downsampling and after the residual blocks at 1/3, 2/3 and 3/3 of the stack,
`feature_points`), f_k a learnable 1x1 convolution from the student's channels to
the teacher's. D is a PatchGAN judging S(x) against real target images y,
L_D = 0.5 (E[(D(y) - 1)^2] + E[D(S(x))^2]) (eq. 8); without target images the
adversarial terms are left out.
"""

import keras
import tensorflow as tf
from keras import layers

from tfcyclegan.core import losses
from tfcyclegan.core.networks import MobileResidualBlock, ResidualBlock

FRACTIONS = (0.0, 1 / 3, 2 / 3, 1.0)  # of the residual stack, where features are matched


def feature_points(generator):
    """Indices in `generator.stack` after which features are matched: the last layer before
    the first residual block (fraction 0), then residual block round(f * n_blocks)."""
    blocks = [i for i, layer in enumerate(generator.stack) if isinstance(layer, (ResidualBlock, MobileResidualBlock))]
    points = []
    for fraction in FRACTIONS:
        k = round(fraction * len(blocks))
        points.append(blocks[0] - 1 if k == 0 else blocks[k - 1])
    return points


def run_with_features(generator, x, points, training):
    """generator(x) layer by layer; returns (output, [activation after each index in `points`])."""
    found = {}
    for i, layer in enumerate(generator.stack):
        x = layer(x, training=training)
        if i in points:
            found[i] = x
    return x, [found[i] for i in points]


def l1(a, b):
    """Eq. (5): E[|a - b|_1]."""
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def feature_loss(mapped, teacher_features):
    """Eq. (4): sum over k of E[(f_k(S_k) - T_k)^2]."""
    return tf.add_n(
        [
            tf.reduce_mean(tf.square(tf.cast(s, tf.float32) - tf.cast(t, tf.float32)))
            for s, t in zip(mapped, teacher_features)
        ]
    )


class Distiller(keras.Model):
    """A student generator distilled from a frozen teacher (GAN Compression, eq. 4-6).

    `train_step((x, y))` updates the student and the 1x1 feature maps on L_S, then, when
    a discriminator is given, D on L_D with the student's fresh outputs; y (real target
    images) is used by D alone. The teacher runs in inference mode and is never trained.
    `call` is the student.
    """

    def __init__(self, student, teacher, discriminator=None, image_size=256, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.discriminator = discriminator
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        probe = tf.zeros((1, h, w, 3))
        self.student_points = feature_points(student)
        self.teacher_points = feature_points(teacher)
        _, teacher_features = run_with_features(teacher, probe, self.teacher_points, training=False)
        self.mappings = [
            layers.Conv2D(t.shape[-1], 1, name=f"map_{k}", dtype=student.dtype_policy)
            for k, t in enumerate(teacher_features, 1)
        ]
        _, student_features = run_with_features(student, probe, self.student_points, training=False)
        for mapping, feature in zip(self.mappings, student_features):
            mapping(feature)
        if discriminator is not None:
            discriminator(probe)
        self.loss_names = ("loss_S", "loss_L1", "loss_feature") + (("loss_GAN", "loss_D") if discriminator else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names}
        self.built = True

    def compile(self, student_optimizer=None, discriminator_optimizer=None, lambda_l1=10.0, lambda_feature=1.0,
                lambda_gan=1.0, **kwargs):  # fmt: skip
        """Set the optimizers (default Adam(2e-4, beta_1=0.5)) and the weights of eq. (6)."""
        super().compile(optimizer=None, **kwargs)

        def default():
            return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)

        self.student_optimizer = student_optimizer or default()
        self.discriminator_optimizer = discriminator_optimizer or default()
        self.lambda_l1 = float(lambda_l1)
        self.lambda_feature = float(lambda_feature)
        self.lambda_gan = float(lambda_gan)
        # Slots exist from the start, so a checkpoint restores optimizer state in full.
        self.student_optimizer.build(self.student_variables)
        if self.discriminator is not None:
            self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return  # everything is built in __init__ and compile (see CycleGAN)

    @property
    def student_variables(self):
        return self.student.trainable_variables + [v for m in self.mappings for v in m.trainable_variables]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.student(x, training=training)

    def teach(self, real_x):
        """T(x) and T's features at the matched places, in inference mode, no gradient."""
        output, features = run_with_features(self.teacher, real_x, self.teacher_points, training=False)
        return tf.stop_gradient(output), [tf.stop_gradient(f) for f in features]

    def compute_losses(self, real_x, teacher_y, teacher_features, training=False):
        """Eqs. (4)-(6) for the student; returns the terms and S(x)."""
        student_y, student_features = run_with_features(self.student, real_x, self.student_points, training)
        mapped = [mapping(f) for mapping, f in zip(self.mappings, student_features)]
        terms = {"loss_L1": l1(student_y, teacher_y), "loss_feature": feature_loss(mapped, teacher_features)}
        total = self.lambda_l1 * terms["loss_L1"] + self.lambda_feature * terms["loss_feature"]
        if self.discriminator is not None:
            terms["loss_GAN"] = losses.gan_loss(self.discriminator(student_y, training=training))
            total = total + self.lambda_gan * terms["loss_GAN"]
        terms["loss_S"] = total
        return terms, student_y

    def train_step(self, data):
        real_x, real_y = data
        teacher_y, teacher_features = self.teach(real_x)
        with tf.GradientTape() as tape:
            terms, student_y = self.compute_losses(real_x, teacher_y, teacher_features, training=True)
            scaled = self.student_optimizer.scale_loss(terms["loss_S"])
        variables = self.student_variables
        self.student_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        if self.discriminator is not None:
            fake_y = tf.stop_gradient(student_y)
            with tf.GradientTape() as tape:
                terms["loss_D"] = losses.discriminator_y_loss(
                    self.discriminator(real_y, training=True), self.discriminator(fake_y, training=True)
                )
                scaled = self.discriminator_optimizer.scale_loss(terms["loss_D"])
            variables = self.discriminator.trainable_variables
            self.discriminator_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}
