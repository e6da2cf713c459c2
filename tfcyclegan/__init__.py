"""tfcyclegan: CycleGAN (Zhu et al. 2017) in TensorFlow / Keras 3."""

from tfcyclegan.losses import (
    cycle_loss,
    discriminator_loss,
    discriminator_x_loss,
    discriminator_y_loss,
    gan_loss,
    generator_total_loss,
    identity_loss,
)
from tfcyclegan.model import CycleGAN
from tfcyclegan.networks import InstanceNormalization, PatchDiscriminator, ResnetGenerator
from tfcyclegan.pool import ImagePool
from tfcyclegan.schedules import LinearDecay
from tfcyclegan.version import __version__
