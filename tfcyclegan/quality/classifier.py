"""A domain classifier trained from scratch: an automatic stand-in for the paper's perceptual study.

A small CNN learns to tell real images of domain A (label 0) from real images of B
(label 1). Its accuracy on held-out real images says whether it can judge at all; if
so, the fraction of translations G(a) it calls B (and F(b) it calls A) is the fooling
rate. Weights are cached as Keras .weights.h5 files (never pickles), keyed by the
training file lists and the image size.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from tfcyclegan.data import imagefiles, pipeline
from tfcyclegan.util import fsutil, report, seeding
from tfcyclegan.util.errors import UserError, first_line

# Part of the cache key: a change to the network or its training recipe must retrain.
VERSION = "domain-cnn-v1"
# Below this accuracy on real held-out images the classifier's verdicts on translations mean little.
MIN_ACCURACY = 0.9
# Training images used per domain at most (evenly spaced over the sorted list), bounding
# memory: 2 x 1000 uint8 images of 256 px are 390 MB.
MAX_TRAIN_PER_DOMAIN = 1000


def cache_root():
    """$TFCYCLEGAN_CACHE, else $XDG_CACHE_HOME/tfcyclegan, else ~/.cache/tfcyclegan."""
    if os.environ.get("TFCYCLEGAN_CACHE"):
        return Path(os.environ["TFCYCLEGAN_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "tfcyclegan"


def cache_key(files_a, files_b, image_size):
    """SHA-256 (first 16 hex digits) of VERSION, the image size and both sorted file
    lists, each file with its size and modification time, so that a file rewritten
    under the same name (a regenerated data set) makes a new key."""
    digest = hashlib.sha256(f"{VERSION}\n{image_size}\n".encode())
    for label, files in (("A", files_a), ("B", files_b)):
        digest.update(f"{label} {len(files)}\n".encode())
        for path in sorted(str(p) for p in files):
            stat = os.stat(path)
            digest.update(os.fsencode(os.path.abspath(path)) + f" {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def build_network(image_size):
    """Four stride-2 3x3 conv + LeakyReLU(0.2) stages (16, 32, 64, 64 filters), global average and max pools, one logit (B)."""
    import keras

    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for filters in (16, 32, 64, 64):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    # Max pooling finds a texture that covers a small part of the image (a few striped
    # shapes); average pooling weighs the overall look (a painting's palette).
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)])
    return keras.Model(inputs, keras.layers.Dense(1)(x), name="domain_classifier")


def _subsample(files, limit):
    files = sorted(str(p) for p in files)
    if len(files) <= limit:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]


def _load_uint8(files, image_size, chunk=64):
    # In chunks, so at most `chunk` images are ever held as float32.
    return np.concatenate(
        [
            imagefiles.to_uint8(pipeline.make_eval_batch(files[i : i + chunk], image_size, chunk))
            for i in range(0, len(files), chunk)
        ]
    )


def _as_float(images):
    images = np.asarray(images)
    return imagefiles.to_float(images) if images.dtype == np.uint8 else images.astype(np.float32)


class DomainClassifier:
    """Calls images (image_size x image_size, uint8 or float in [-1, 1]) domain A or domain B."""

    def __init__(self, network, image_size):
        self.network = network
        self.image_size = image_size

    def probability_b(self, images, batch_size=64):
        """P(domain B) for each image of an (N, S, S, 3) batch: sigmoid(z) = exp(-log(1 + exp(-z))), z the logit."""
        images = _as_float(images)
        if not len(images):
            return np.zeros(0, np.float32)
        logits = self.network.predict(images, batch_size=batch_size, verbose=0)[:, 0]
        return np.exp(-np.logaddexp(0.0, -logits.astype(np.float64)))

    def accuracy(self, real_a, real_b):
        """Per-class and balanced accuracy on real images: (acc_A + acc_B) / 2, acc_A = P(p_B <= 0.5 | a)."""
        acc_a = float(np.mean(self.probability_b(real_a) <= 0.5))
        acc_b = float(np.mean(self.probability_b(real_b) > 0.5))
        return {"accuracy": (acc_a + acc_b) / 2, "accuracy_a": acc_a, "accuracy_b": acc_b}

    def fooling_rates(self, fake_b, fake_a):
        """Fraction of G(a) called B (p_B > 0.5) and of F(b) called A (p_B <= 0.5); None for a missing batch."""
        return {
            "a2b": None if fake_b is None else float(np.mean(self.probability_b(fake_b) > 0.5)),
            "b2a": None if fake_a is None else float(np.mean(self.probability_b(fake_a) <= 0.5)),
        }


def train_classifier(images_a, images_b, epochs=10, batch_size=32, seed=0, verbose=0):
    """Train the network on uint8 (or [-1, 1] float) images of A (label 0) and B (label 1).

    Adam (lr 1e-3) on sigmoid cross-entropy over `epochs` shuffled passes; each image is
    mirrored left-right with probability 1/2, and each domain weighs 1 / its image count
    so unequal domains count equally. Returns a DomainClassifier.
    """
    import keras

    # Kept as given (uint8 for real images) and made float one batch at a time: 2000
    # images of 256 px are 390 MB as uint8 but 1.6 GB as float32.
    if np.asarray(images_a).dtype == np.uint8 and np.asarray(images_b).dtype == np.uint8:
        x = np.concatenate([images_a, images_b])
    else:
        x = np.concatenate([_as_float(images_a), _as_float(images_b)])
    n_a, n_b = len(images_a), len(images_b)
    y = np.concatenate([np.zeros(n_a, np.float32), np.ones(n_b, np.float32)])
    w = np.concatenate([np.full(n_a, 0.5 / n_a), np.full(n_b, 0.5 / n_b)]).astype(np.float32) * len(x)
    rng = np.random.default_rng(seed)
    steps = -(-len(x) // batch_size)

    def batches():
        while True:
            order = rng.permutation(len(x))
            for i in range(steps):
                pick = np.sort(order[i * batch_size : (i + 1) * batch_size])
                images = _as_float(x[pick])
                flip = rng.random(len(pick)) < 0.5
                images[flip] = images[flip, :, ::-1]
                yield images, y[pick], w[pick]

    with seeding.seeded(seed):
        network = build_network(x.shape[1])
    network.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    network.fit(batches(), epochs=epochs, steps_per_epoch=steps, verbose=verbose, shuffle=False)  # batches() shuffles
    return DomainClassifier(network, x.shape[1])


def load_or_train(files_a, files_b, image_size, cache_dir=None, log=report.note, **train_options):
    """The classifier for these training files at this size: from the cache, else trained and cached.

    Returns (DomainClassifier, path of its weights or None when they could not be cached,
    whether it came from the cache). The cache file is <cache_dir or
    cache_root()/classifiers>/<cache_key>.weights.h5, beside a .json naming what it was
    trained on; it is written under a temporary name and renamed, so a concurrent or
    interrupted run never reads half a file. An unwritable cache is noted through `log`
    and the classifier is still returned.
    """
    folder = Path(cache_dir).expanduser() if cache_dir else cache_root() / "classifiers"
    key = cache_key(files_a, files_b, image_size)
    path = folder / f"{key}.weights.h5"
    if path.is_file():
        network = build_network(image_size)
        network.load_weights(str(path))
        return DomainClassifier(network, image_size), str(path), True
    # Checked before the training, so an unwritable cache (a read-only HOME) costs the
    # cache only, never the trained classifier or the evaluation waiting for it.
    problem = _unwritable(folder)
    if problem:
        log(
            f"note: cannot write the classifier cache {folder} ({problem}); training without caching "
            "(set TFCYCLEGAN_CACHE to a writable folder to keep it)"
        )
    chosen = []
    for label, files in (("A", files_a), ("B", files_b)):
        good, bad = imagefiles.scan_images(_subsample(files, MAX_TRAIN_PER_DOMAIN))
        for bad_path, reason in bad:
            log(f"classifier: skipping {bad_path}: {reason}")
        if not good:
            raise UserError(f"domain {label} has no readable training image for the domain classifier")
        chosen.append(good)
    chosen_a, chosen_b = chosen
    log(f"training the domain classifier on {len(chosen_a)} + {len(chosen_b)} real training images at {image_size}px")
    classifier = train_classifier(_load_uint8(chosen_a, image_size), _load_uint8(chosen_b, image_size), **train_options)
    if problem:
        return classifier, None, False
    try:
        with fsutil.replacing(path, suffix=".weights.h5") as partial:
            classifier.network.save_weights(str(partial))
        info = {"version": VERSION, "image_size": image_size, "train_a": len(chosen_a), "train_b": len(chosen_b),
                "folder_a": os.path.dirname(chosen_a[0]), "folder_b": os.path.dirname(chosen_b[0])}  # fmt: skip
        path.with_suffix("").with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    except OSError as error:  # e.g. the disk filled up during training
        log(f"note: cannot write the classifier cache {folder} ({first_line(error)}); it was not cached")
        return classifier, None, False
    return classifier, str(path), False


def _unwritable(folder):
    """Why files cannot be created in `folder` (made if missing), or None when they can.

    A real file is created and removed: permission bits say nothing for root or on a
    read-only file system.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return first_line(error)
    return None
