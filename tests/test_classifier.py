"""The domain classifier on the demo pair rendered in memory: accuracy, fooling rates, cache."""

import os

import numpy as np
import pytest
from PIL import Image

from tfcyclegan.data import demo
from tfcyclegan.quality import classifier

SIZE = 32


def render(split, count, striped):
    return np.stack([demo.render(demo.SEED_OFFSETS[split] + i, SIZE, striped) for i in range(count)])


@pytest.fixture(scope="module")
def trained():
    # Flat shapes vs striped shapes: visibly different domains, unpaired training scenes.
    judge = classifier.train_classifier(render("trainA", 120, False), render("trainB", 120, True), epochs=5)
    return judge


def test_classifier_tells_the_domains_apart(trained):
    accuracy = trained.accuracy(render("testA", 40, False), render("testA", 40, True))
    assert accuracy["accuracy"] >= 0.95, accuracy


def test_fooling_rate_is_near_zero_for_identity_and_near_one_for_an_oracle(trained):
    from tfcyclegan.data import imagefiles

    flat, striped = imagefiles.to_float(render("testA", 40, False)), imagefiles.to_float(render("testA", 40, True))
    identity = trained.fooling_rates(fake_b=flat, fake_a=striped)
    oracle = trained.fooling_rates(fake_b=striped, fake_a=flat)  # the exact counterparts
    assert identity["a2b"] <= 0.05 and identity["b2a"] <= 0.05, identity
    assert oracle["a2b"] >= 0.95 and oracle["b2a"] >= 0.95, oracle


def test_weights_are_cached_by_file_list_and_size(tmp_path):
    root = demo.ensure_demo_data(tmp_path / "data", size=SIZE, n_train=12, n_test=2)
    files_a = sorted(str(p) for p in (tmp_path / "data/demo/trainA").iterdir())
    files_b = sorted(str(p) for p in (tmp_path / "data/demo/trainB").iterdir())
    messages = []
    first, path, cached = classifier.load_or_train(
        files_a, files_b, SIZE, tmp_path / "cache", messages.append, epochs=1
    )
    assert not cached and path.endswith(".weights.h5") and path.startswith(str(tmp_path / "cache"))
    assert any("training the domain classifier" in m for m in messages)
    again, path2, cached2 = classifier.load_or_train(files_a, files_b, SIZE, tmp_path / "cache", messages.append)
    assert cached2 and path2 == path
    x = np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(again.probability_b(x), first.probability_b(x), atol=1e-6)
    assert classifier.cache_key(files_a, files_b, SIZE + 4) != classifier.cache_key(files_a, files_b, SIZE)
    assert classifier.cache_key(files_a[1:], files_b, SIZE) != classifier.cache_key(files_a, files_b, SIZE)
    # A file rewritten under the same name (a regenerated data set) is a new data set.
    key = classifier.cache_key(files_a, files_b, SIZE)
    Image.open(files_b[0]).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(files_b[0])
    os.utime(files_b[0], ns=(0, 123))
    assert classifier.cache_key(files_a, files_b, SIZE) != key
    assert root.endswith("demo")
