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
        n = tf.shape(images)[0]
        out = tf.TensorArray(tf.float32, size=n, element_shape=images.shape[1:])
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group if replica else 0, tf.int64)
        for i in tf.range(n):
            image = images[i]
            seed = tf.stack([tf.constant(self.seed, tf.int64) * 1000 + replica_id, self.draws.read_value()])
            self.draws.assign_add(1)
            swap = tf.random.stateless_uniform([], seed=seed) > 0.5
            index = tf.random.stateless_uniform(
                [], seed=seed + 1, minval=0, maxval=self.pool_size, dtype=tf.int32
            )
            if self.count < self.pool_size:
                self.images.scatter_nd_update([[tf.cast(self.count, tf.int32)]], image[None])
                self.count.assign_add(1)
                out = out.write(i, image)
            elif swap:
                old = tf.identity(self.images[index])
                with tf.control_dependencies([old]):
                    self.images.scatter_nd_update([[index]], image[None])
                out = out.write(i, old)
            else:
                out = out.write(i, image)
        return out.stack()
