"""Training and evaluation batches: the tf.data pipeline over decoded image files.

Pixels are uint8 in files and float32 in [-1, 1] in the model (imagefiles.to_float).
"""

import os

import numpy as np
import tensorflow as tf

from tfcyclegan.data.imagefiles import _load_resized, to_float
from tfcyclegan.util.errors import UserError


def default_steps_per_epoch(n_a, n_b, batch_size):
    """One epoch is one pass over the larger domain: max(n_a, n_b) // batch_size, at least 1."""
    return max(1, max(n_a, n_b) // batch_size)


def _fold(seed, *data):
    for d in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(d, tf.int64))
    return seed


def _epoch_order(count, n, seed):
    # Concatenated independent permutations of range(count), cut to n: a smaller
    # domain is cycled through reshuffled copies.
    copies = -(-n // count)
    keys = tf.random.stateless_uniform([copies, count], seed=seed)
    return tf.reshape(tf.argsort(keys, axis=1), [-1])[:n]


def make_train_dataset(
    files_a,
    files_b,
    *,
    image_size,
    load_size,
    batch_size,
    steps_per_epoch,
    epochs,
    initial_epoch=0,
    flip=True,
    seed=0,
):
    """Unpaired (x, y) float32 batches in [-1, 1], shape (batch_size, image_size, image_size, 3).

    Yields exactly (epochs - initial_epoch) * steps_per_epoch batches. Each epoch e draws
    steps_per_epoch * batch_size images per domain, A and B shuffled independently; each
    image is resized (bicubic) to load_size x load_size, randomly cropped to image_size
    and randomly mirrored (unless flip=False). Everything in epoch e is a pure function
    of (seed, e), so a run resumed at epoch k sees what an uninterrupted run sees there.
    """
    if load_size < image_size:
        raise UserError(f"load size {load_size} is smaller than image size {image_size}; make it at least as large")
    if not files_a or not files_b:
        raise UserError("a domain has no training images; give a folder that holds some")
    n = steps_per_epoch * batch_size
    paths_a = tf.constant([os.fsencode(p) for p in files_a])
    paths_b = tf.constant([os.fsencode(p) for p in files_b])
    base = tf.constant([seed, 0], tf.int64)

    def epoch_elements(e):
        es = _fold(base, e)
        order_a = _epoch_order(len(files_a), n, _fold(es, 0))
        order_b = _epoch_order(len(files_b), n, _fold(es, 1))
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(paths_a, order_a), tf.gather(paths_b, order_b), tf.fill([n], e), tf.range(n, dtype=tf.int64))
        )

    def augment(path, seed_pair):
        image = tf.numpy_function(lambda p: _load_resized(os.fsdecode(p), load_size), [path], tf.uint8)
        image = tf.ensure_shape(image, [load_size, load_size, 3])
        image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seed=_fold(seed_pair, 0))
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=_fold(seed_pair, 1))
        return to_float(image)

    def load_pair(path_a, path_b, e, i):
        element = _fold(base, e, 2, i)
        return augment(path_a, _fold(element, 0)), augment(path_b, _fold(element, 1))

    total = (epochs - initial_epoch) * steps_per_epoch
    # Under a multi-worker strategy every worker runs this same deterministic pipeline
    # and keeps its own share of each global batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.range(initial_epoch, epochs)
        .flat_map(epoch_elements)
        .map(load_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
        .apply(tf.data.experimental.assert_cardinality(max(total, 0)))
        .with_options(options)
    )


def make_eval_batch(files, image_size, count):
    """The first `count` files resized (bicubic, no crop) to image_size: float32 (k, s, s, 3) in [-1, 1]."""
    images = [_load_resized(p, image_size) for p in list(files)[:count]]
    if not images:
        return np.zeros((0, image_size, image_size, 3), np.float32)
    return to_float(np.stack(images))
