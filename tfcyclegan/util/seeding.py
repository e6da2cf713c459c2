"""Seeded weights without touching the caller's random state."""

import contextlib
import random


@contextlib.contextmanager
def seeded(seed):
    """Python's `random` seeded with `seed` for the block, its previous state put back after.

    Keras 3 draws the seed of every initializer and seed generator created without one
    from that module (keras.random.make_default_seed), so the networks built in the block
    are a function of `seed`, while the host program's random sequences, NumPy's and
    TensorFlow's global seed go on as if the block had not run (keras.utils.set_random_seed
    would reset them all).
    """
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)
