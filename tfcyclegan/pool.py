"""History of generated images (Shrivastava et al. 2017), as used by Zhu et al. 2017.

The discriminators are updated with fakes drawn from a buffer of the last
`pool_size` generated images rather than only the newest ones, which damps
oscillation. The state lives in tf.Variables, so the pool runs inside
`tf.function`, keeps one buffer per replica under a distribution strategy, and
is saved and restored with the checkpoint.
"""

import tensorflow as tf

# One buffer per replica: each replica reads and writes its own copy, and a
# checkpoint keeps the first replica's, which every replica gets back on restore.
_PER_REPLICA = dict(
    synchronization=tf.VariableSynchronization.ON_READ,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    trainable=False,
)


class ImagePool(tf.Module):
    """Buffer of past fakes with the 50% swap rule of the official CycleGAN.

    For each image of a batch: while the pool is filling, store it and return it;
    once full, with probability 1/2 return a random stored image and store the new
    one in its place, otherwise return the new image. `pool_size=0` disables it.
    Random draws are stateless, seeded by (seed, draw counter), so a restored run
    draws exactly what an uninterrupted one would.
    """

    def __init__(self, pool_size, image_shape, seed=0, name=None):
        super().__init__(name=name)
        self.pool_size = int(pool_size)
        self.seed = int(seed)
        shape = [max(self.pool_size, 1), *image_shape]
        self.images = tf.Variable(tf.zeros(shape, tf.float32), name="images", **_PER_REPLICA)
        self.count = tf.Variable(tf.constant(0, tf.int64), name="count", **_PER_REPLICA)
        self.draws = tf.Variable(tf.constant(0, tf.int64), name="draws", **_PER_REPLICA)

    def query(self, images):
        """Return a batch the size of `images`, mixing new fakes with stored ones."""
        if self.pool_size == 0:
            return images
        return self._query(tf.cast(images, tf.float32))

    @tf.function
    def _query(self, images):
        # The batch is worked through on a tensor copy, then stored with one assign:
        # per-replica (sync-on-read) variables allow whole assigns but no scatters.
        n = tf.shape(images)[0]
        pool = tf.convert_to_tensor(self.images)
        count = self.count.read_value()
        draws = self.draws.read_value()
        out = tf.TensorArray(tf.float32, size=n, element_shape=images.shape[1:])
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group if replica else 0, tf.int64)
        for i in tf.range(n):
            image = images[i]
            seed = tf.stack([tf.constant(self.seed, tf.int64) * 1000 + replica_id, draws + tf.cast(i, tf.int64)])
            swap = tf.random.stateless_uniform([], seed=seed) > 0.5
            index = tf.random.stateless_uniform([], seed=seed + 1, minval=0, maxval=self.pool_size, dtype=tf.int64)
            if count < self.pool_size:
                pool = tf.tensor_scatter_nd_update(pool, [[count]], image[None])
                count += 1
                out = out.write(i, image)
            elif swap:
                out = out.write(i, pool[index])
                pool = tf.tensor_scatter_nd_update(pool, [[index]], image[None])
            else:
                out = out.write(i, image)
        self.images.assign(pool)
        self.count.assign(count)
        self.draws.assign(draws + tf.cast(n, tf.int64))
        return out.stack()
