"""History of generated images (Shrivastava et al. 2017), as used by Zhu et al. 2017.

The discriminators are updated with fakes drawn from a buffer of the last
`pool_size` generated images rather than only the newest ones, which damps
oscillation. The state lives in tf.Variables, so the pool runs inside
`tf.function`, keeps one buffer per replica under a distribution strategy, and
is saved and restored with the checkpoint, every replica's buffer included.
"""

import tensorflow as tf

# One buffer per replica: each replica reads and writes its own copy. A sync-on-read
# variable would checkpoint only the first replica's; _EveryReplica saves them all.
_PER_REPLICA = dict(
    synchronization=tf.VariableSynchronization.ON_READ,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    trainable=False,
)
_SAVED_AS = "VARIABLE_VALUE"  # the attribute a plain variable is saved under


class _EveryReplica(tf.__internal__.tracking.Trackable):
    """The checkpoint entry of one per-replica variable: the values of all its local replicas.

    One replica (a single device) saves its value as a plain variable would, so
    single-device checkpoints keep their format; R > 1 replicas save theirs stacked
    along a new leading axis. On restore, local replica i gets stacked entry i mod R,
    or the one value of an unstacked (single-device) entry.
    """

    def __init__(self, variable):
        # A Trackable (unlike a tf.Module) does not track its attributes: the variable
        # is saved only through this entry.
        self.variable = variable

    def _replicas(self):
        return getattr(self.variable, "values", (self.variable,))

    def _serialize_to_tensors(self):
        values = [v.read_value() for v in self._replicas()]
        return {_SAVED_AS: values[0] if len(values) == 1 else tf.stack(values)}

    def _restore_from_tensors(self, restored_tensors):
        value = restored_tensors[_SAVED_AS]
        replicas = self._replicas()
        if value.shape.rank == self.variable.shape.rank:
            values = [value] * len(replicas)
        else:
            values = [value[i % value.shape[0]] for i in range(len(replicas))]
        return tf.group([replica.assign(v) for replica, v in zip(replicas, values)])


class ImagePool(tf.Module):
    """Buffer of past fakes with the 50% swap rule of the official CycleGAN.

    For each image of a batch: while the pool is filling, store it and return it;
    once full, with probability 1/2 return a random stored image and store the new
    one in its place, otherwise return the new image. `pool_size=0` disables it.
    Random draws are stateless, seeded by (seed, draw counter), so a restored run
    draws exactly what an uninterrupted one would.
    """

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def __init__(self, pool_size, image_shape, seed=0, name=None):
        super().__init__(name=name)
        self.pool_size = int(pool_size)
        self.seed = int(seed)
        shape = [max(self.pool_size, 1), *image_shape]
        self.images = tf.Variable(tf.zeros(shape, tf.float32), name="images", **_PER_REPLICA)
        self.count = tf.Variable(tf.constant(0, tf.int64), name="count", **_PER_REPLICA)
        self.draws = tf.Variable(tf.constant(0, tf.int64), name="draws", **_PER_REPLICA)
        # Checkpointed under the names a tracked variable would have, through _EveryReplica.
        for key in ("images", "count", "draws"):
            self._track_trackable(_EveryReplica(getattr(self, key)), name=key)

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
