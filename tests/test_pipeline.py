"""The tf.data training pipeline (tfcyclegan/data/pipeline.py): shapes, range, exact counts,
unpaired cycling, random crops and flips, purity in seed and epoch, the evaluation batch."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import photo_like
from PIL import Image

from tfcyclegan.data import imagefiles, pipeline
from tfcyclegan.data.imagefiles import UserError


def test_default_steps_per_epoch():
    assert pipeline.default_steps_per_epoch(562, 370, 1) == 562
    assert pipeline.default_steps_per_epoch(3, 10, 4) == 2
    assert pipeline.default_steps_per_epoch(1, 2, 8) == 1


# --- the pipeline on synthetic photos --------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Two domains of 256 px JPEGs shaped like ukiyoe2photo's (8 and 6 files): smooth
    colour gradients spanning [-1, 1] with mild noise, so every crop window is unique."""
    root = tmp_path_factory.mktemp("synthetic")
    for domain, count, offset in (("trainA", 8, 0), ("trainB", 6, 100)):
        (root / domain).mkdir()
        for i in range(count):
            pixels = imagefiles.to_uint8(np.clip(photo_like(256, 256, seed=offset + i) / 0.7, -1, 1))
            Image.fromarray(pixels).save(root / domain / f"{i:05d}.jpg", quality=95)
    return imagefiles.list_images(root / "trainA"), imagefiles.list_images(root / "trainB")


def batches(files_a, files_b, **kwargs):
    options = dict(image_size=32, load_size=32, batch_size=2, steps_per_epoch=3, epochs=2, seed=1, flip=False)
    options.update(kwargs)
    return [(x.numpy(), y.numpy()) for x, y in pipeline.make_train_dataset(files_a, files_b, **options)]


def test_real_quirky_files_load(shared_datasets):
    grey = [
        shared_datasets / "ukiyoe2photo/trainA/00504.jpg",
        shared_datasets / "ukiyoe2photo/trainA/00644.jpg",
        shared_datasets / "horse2zebra/trainB/n02391049_2341.jpg",
    ]
    for path in grey:
        assert Image.open(path).mode == "L"
        image = imagefiles.load_image(path)
        assert image.ndim == 3 and image.shape[2] == 3 and (image == image[..., :1]).all()
    colons = [p for p in imagefiles.list_images(shared_datasets / "ukiyoe2photo/trainB") if ":" in p and " " in p]
    assert colons
    x, y = batches(colons[:2], [str(p) for p in grey], epochs=1)[0]
    assert x.shape == y.shape == (2, 32, 32, 3)


def test_pipeline_shapes_range_and_exact_count(synthetic):
    files_a, files_b = synthetic
    dataset = pipeline.make_train_dataset(
        files_a[:7],
        files_b[:5],
        image_size=64,
        load_size=72,
        batch_size=3,
        steps_per_epoch=4,
        epochs=3,
        initial_epoch=1,
    )
    assert dataset.cardinality().numpy() == 8
    out = list(dataset)
    assert len(out) == 8
    for x, y in out:
        assert x.shape == y.shape == (3, 64, 64, 3)
        assert x.dtype == y.dtype == tf.float32
        assert -1 <= x.numpy().min() and x.numpy().max() <= 1 and -1 <= y.numpy().min() and y.numpy().max() <= 1
    assert min(x.numpy().min() for x, _ in out) < -0.9 and max(x.numpy().max() for x, _ in out) > 0.9


def which(images, references):
    """Index of the reference each image equals exactly."""
    return [next(i for i, ref in enumerate(references) if np.array_equal(image, ref)) for image in images]


def test_unequal_domains_cycle_the_smaller_one_and_are_unpaired(synthetic):
    files_a, files_b = synthetic[0][:5], synthetic[1][:3]
    refs_a, refs_b = pipeline.make_eval_batch(files_a, 32, 5), pipeline.make_eval_batch(files_b, 32, 3)
    out = batches(files_a, files_b, batch_size=2, steps_per_epoch=4, epochs=2)
    for epoch in (out[:4], out[4:]):
        ids_a = which(np.concatenate([x for x, _ in epoch]), refs_a)
        ids_b = which(np.concatenate([y for _, y in epoch]), refs_b)
        # 8 draws per epoch: one full pass over A (then 3 more), two and a bit over B.
        assert sorted(ids_a[:5]) == [0, 1, 2, 3, 4] and sorted(set(ids_a[5:])) == sorted(ids_a[5:])
        assert sorted(ids_b[:3]) == [0, 1, 2] and sorted(ids_b[3:6]) == [0, 1, 2]
        assert sorted(np.bincount(ids_b, minlength=3)) == [2, 3, 3]
    orders = [which(np.concatenate([x for x, _ in epoch]), refs_a) for epoch in (out[:4], out[4:])]
    assert orders[0] != orders[1]  # reshuffled every epoch
    same = batches(files_a, files_a, batch_size=1, steps_per_epoch=5, epochs=1)
    assert which([x[0] for x, _ in same], refs_a) != which([y[0] for _, y in same], refs_a)


def test_random_crop_is_a_window_of_the_resized_image(synthetic):
    source = pipeline.make_eval_batch(synthetic[0][:1], 40, 1)[0]
    offsets = {"x": [], "y": []}
    for x, y in batches(synthetic[0][:1], synthetic[0][:1], load_size=40, batch_size=4, steps_per_epoch=2, epochs=1):
        for domain, images in (("x", x), ("y", y)):
            for image in images:
                found = [
                    (i, j) for i in range(9) for j in range(9) if np.array_equal(source[i : i + 32, j : j + 32], image)
                ]
                assert len(found) == 1
                offsets[domain] += found
    assert len(set(offsets["x"])) > 1
    assert offsets["x"] != offsets["y"]  # A and B are cropped independently


def test_flip_mirrors_some_crops_and_keeps_the_rest(synthetic):
    kwargs = dict(load_size=40, batch_size=4, steps_per_epoch=3, epochs=1)
    plain = batches(synthetic[0][:3], synthetic[1][:3], flip=False, **kwargs)
    flipped = batches(synthetic[0][:3], synthetic[1][:3], flip=True, **kwargs)
    mirrored = kept = 0
    for (x0, y0), (x1, y1) in zip(plain, flipped):
        for a, b in zip(np.concatenate([x0, y0]), np.concatenate([x1, y1])):
            if np.array_equal(a, b):
                kept += 1
            else:
                np.testing.assert_array_equal(a[:, ::-1], b)
                mirrored += 1
    assert mirrored >= 3 and kept >= 3


def test_pipeline_is_a_pure_function_of_seed_and_epoch(synthetic):
    files_a, files_b = synthetic[0][:6], synthetic[1][:4]
    kwargs = dict(load_size=40, flip=True, batch_size=2, steps_per_epoch=3)
    full = batches(files_a, files_b, epochs=3, **kwargs)
    again = batches(files_a, files_b, epochs=3, **kwargs)
    resumed = batches(files_a, files_b, epochs=3, initial_epoch=2, **kwargs)
    other_seed = batches(files_a, files_b, epochs=3, **{**kwargs, "seed": 2})
    assert len(full) == 9 and len(resumed) == 3
    for (x0, y0), (x1, y1) in zip(full, again):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    for (x0, y0), (x1, y1) in zip(full[6:], resumed):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(full, other_seed))


def test_pipeline_rejects_load_size_below_image_size(synthetic):
    with pytest.raises(UserError, match="load size 16 is smaller than image size 32"):
        pipeline.make_train_dataset(
            synthetic[0], synthetic[1], image_size=32, load_size=16, batch_size=1, steps_per_epoch=1, epochs=1
        )


def test_make_eval_batch(synthetic):
    batch = pipeline.make_eval_batch(synthetic[1], 48, 4)
    assert batch.shape == (4, 48, 48, 3) and batch.dtype == np.float32
    assert -1 <= batch.min() and batch.max() <= 1
    # Bicubic resize of the full image, up to JPEG's reduced-scale decoding of a 256 px file.
    reference = np.asarray(Image.fromarray(imagefiles.load_image(synthetic[1][2])).resize((48, 48), Image.BICUBIC))
    assert np.abs(imagefiles.to_uint8(batch[2]).astype(int) - reference).mean() < 2
    assert pipeline.make_eval_batch(synthetic[1][:2], 48, 4).shape == (2, 48, 48, 3)
