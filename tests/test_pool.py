import numpy as np
import tensorflow as tf

from tfcyclegan.core.pool import ImagePool


def marked(values):
    """Images whose every pixel holds their id, so a returned image tells where it came from."""
    return tf.constant(np.asarray(values, "float32")[:, None, None, None] * np.ones((1, 2, 2, 3), "float32"))


def ids(images):
    return images.numpy()[:, 0, 0, 0].astype(int).tolist()


def test_size_zero_passes_images_through():
    pool = ImagePool(0, (2, 2, 3))
    x = marked([1, 2, 3])
    assert pool.query(x) is x


def test_filling_pool_returns_the_new_images_and_stores_them():
    pool = ImagePool(4, (2, 2, 3))
    assert ids(pool.query(marked([1, 2]))) == [1, 2]
    assert ids(pool.query(marked([3, 4]))) == [3, 4]
    assert int(pool.count.numpy()) == 4
    assert sorted(ids(tf.convert_to_tensor(pool.images))) == [1, 2, 3, 4]


def test_full_pool_follows_the_fifty_percent_rule():
    pool = ImagePool(10, (2, 2, 3), seed=3)
    pool.query(marked(range(1, 11)))
    n, from_pool = 2000, 0
    for i in range(n):
        new_id = 100 + i
        before = set(ids(tf.convert_to_tensor(pool.images)))
        (got,) = ids(pool.query(marked([new_id])))
        after = set(ids(tf.convert_to_tensor(pool.images)))
        if got == new_id:
            assert after == before  # kept out of the pool
        else:
            from_pool += 1
            assert got in before and got not in after and new_id in after  # swapped in
    # Binomial(2000, 0.5): 4.5 standard deviations is about +-0.05.
    assert abs(from_pool / n - 0.5) < 0.05


def test_same_seed_same_draws_and_state_is_checkpointable(tmp_path):
    def run(pool, start):
        return [ids(pool.query(marked([k, k + 1]))) for k in range(start, start + 40, 2)]

    a = ImagePool(5, (2, 2, 3), seed=7)
    first = run(a, 0)
    path = tf.train.Checkpoint(pool=a).save(str(tmp_path / "ckpt"))
    rest_a = run(a, 1000)
    b = ImagePool(5, (2, 2, 3), seed=7)
    assert run(b, 0) == first
    c = ImagePool(5, (2, 2, 3), seed=7)
    tf.train.Checkpoint(pool=c).restore(path).assert_consumed()
    assert run(c, 1000) == rest_a


def test_works_inside_tf_function():
    pool = ImagePool(3, (2, 2, 3))
    fn = tf.function(pool.query)
    for k in range(5):
        assert fn(marked([k, k + 10])).shape == (2, 2, 2, 3)
    assert int(pool.count.numpy()) == 3
