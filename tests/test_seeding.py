"""Seeded networks without touching the caller's random state (tfcyclegan/util/seeding.py)."""

import random

import numpy as np

from tfcyclegan.core.networks import ResnetGenerator
from tfcyclegan.util import seeding


def built(seed):
    with seeding.seeded(seed):
        generator = ResnetGenerator(ngf=4, n_blocks=1)
    generator(np.zeros((1, 16, 16, 3), "float32"))  # builds the weights, outside the block
    weights = generator.get_weights()
    assert weights
    return weights


def test_weights_depend_on_the_seed_alone_and_the_callers_state_goes_on():
    random.seed(1)
    state = random.getstate()
    first = built(3)
    assert random.getstate() == state
    random.seed(99)  # another caller state: the same weights
    for a, b in zip(first, built(3), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, built(4), strict=True))
