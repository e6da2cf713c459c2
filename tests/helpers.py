"""Builders shared by several test modules (pytest puts tests/ on sys.path)."""

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tfcyclegan import train
from tfcyclegan.config import TrainConfig


def write_untrained_run(root, image_size=32):
    """A run dir for the domain folders root/A and root/B: tiny networks (ngf 8, 1 block),
    untrained, trained at `image_size`, saved as `tfcyclegan fit` saves them; returns root/run."""
    config = TrainConfig(domain_a=str(root / "A"), domain_b=str(root / "B"), ngf=8, blocks=1, ndf=8,
                         image_size=image_size, load_size=image_size, epochs=1, decay_epoch=0)  # fmt: skip
    keras.utils.set_random_seed(0)
    model = train.build_model(config, steps_per_epoch=1)
    run = root / "run"
    tf.train.CheckpointManager(train.make_checkpoint(model), run / train.CHECKPOINT_DIR, 1).save()
    config.save(run / train.CONFIG_FILE)
    return run


def write_noise_domains(root, count, size):
    """root/a and root/b, each holding `count` random size x size PNGs (seeded)."""
    rng = np.random.default_rng(0)
    for domain in ("a", "b"):
        (root / domain).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(root / domain / f"{i}.png")
