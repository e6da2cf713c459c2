"""Image files in, training batches out: listing, robust decoding and the tf.data pipeline.

Pixels are uint8 in files and float32 in [-1, 1] in the model: x = u / 127.5 - 1.
"""

import codecs
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from tfcyclegan.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# File signatures of the formats above: a file that starts like an image but fails to
# decode is damaged, not a stray text file.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _has_image_signature(data):
    return data.startswith(_MAGIC) or (data.startswith(b"RIFF") and data[8:12] == b"WEBP")


class ImageError(UserError):
    """An image file that cannot be used; `reason` is short and human ("file is empty")."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot use image {self.path}: {reason}; remove or replace it "
            "(`tfcyclegan check-data FOLDER` lists every unreadable file)"
        )


def list_images(folder, *, allow_empty=False):
    """Image files under `folder`, recursively and sorted.

    Hidden files and folders are skipped; symlinked folders are followed, each real
    folder at most once, so a link loop ends the walk instead of hanging it. A folder
    without images is an error unless `allow_empty`.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise UserError(f"{folder}: no such folder; check the path")
    if not root.is_dir():
        raise UserError(f"{folder} is a file, not a folder; give the folder that holds the images")

    def fail(error):
        raise UserError(f"cannot list folder {error.filename}: {error.strerror}; fix its permissions")

    seen, files = set(), []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=fail):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [
            os.path.join(dirpath, f)
            for f in filenames
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    if not files and not allow_empty:
        raise UserError(
            f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); point it at a folder of images"
        )
    return sorted(files)


def _looks_like_text(head):
    # Incremental decoding accepts a multi-byte character cut at the end of `head`.
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n\f\ufeff" for c in text)


def _decode(path, draft=None):
    """Open `path` as an RGB PIL image: EXIF orientation applied, alpha composited on white.

    With `draft`, a JPEG at least twice that size is decoded at a reduced DCT scale (still
    at least draft x draft) when only a resized copy is wanted: large photos cost ~1/16.
    """
    try:
        data = Path(path).read_bytes()
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except FileNotFoundError:
        raise ImageError(path, "file not found (broken link?)") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not a file") from None
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror})") from None
    if not data:
        raise ImageError(path, "file is empty")
    # Pillow raises many exception types on damaged input (OSError, SyntaxError,
    # ValueError, EOFError, struct.error, DecompressionBombError...): all mean "unusable".
    try:
        im = Image.open(io.BytesIO(data))
        if draft:
            im.draft(None, (draft, draft))
        im.load()  # full decode of the first frame, so truncation shows up here
    except Exception as e:
        if not _has_image_signature(data):
            kind = "text/HTML?" if _looks_like_text(data[:512]) else "unrecognised format"
            raise ImageError(path, f"not an image ({kind})") from None
        if "truncat" in str(e).lower():
            raise ImageError(path, "truncated image data") from None
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(path, f"corrupt image data ({detail})") from None
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:
        pass  # malformed EXIF must not make otherwise good pixels unusable
    return _to_rgb(im, path)


def _to_rgb(im, path):
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: 65535 -> 255 by v / 257, exact for 8-bit values stored as v * 257.
        grey = np.clip(np.asarray(im, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    if (im.mode == "P" and "transparency" in im.info) or im.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(path, f"unsupported colour mode {im.mode}") from None


def load_image(path):
    """Decode `path` into a uint8 HxWx3 RGB array (see `_decode` for the conversions)."""
    return np.asarray(_decode(path))


def _load_resized(path, size):
    im = _decode(path, draft=size)
    if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return np.asarray(im)


class _Progress:
    """A `\\r`-rewritten counter on stderr, redrawn at most every 0.1 s."""

    def __init__(self, label, total, enabled):
        self.label, self.total, self.enabled, self.last = label, total, enabled, 0.0

    def update(self, done):
        now = time.monotonic()
        if self.enabled and (now - self.last >= 0.1 or done == self.total):
            self.last = now
            sys.stderr.write(f"\r{self.label}: {done}/{self.total}")
            if done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def scan_images(paths, progress=True):
    """Fully decode every file; return (good paths, [(bad path, reason)]) in input order."""

    def check(path):
        try:
            _decode(path)
        except ImageError as e:
            return e.reason
        return None

    paths = [str(p) for p in paths]
    good, bad = [], []
    meter = _Progress("checking images", len(paths), progress and len(paths) >= 100)
    # Pillow decodes outside the GIL, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for done, (path, reason) in enumerate(zip(paths, pool.map(check, paths)), 1):
            if reason is None:
                good.append(path)
            else:
                bad.append((path, reason))
            meter.update(done)
    return good, bad


def to_float(x):
    """uint8 [0, 255] -> float32 [-1, 1]: x / 127.5 - 1 (numpy arrays or tensors)."""
    if tf.is_tensor(x):
        return tf.cast(x, tf.float32) / 127.5 - 1.0
    return np.asarray(x, np.float32) / np.float32(127.5) - np.float32(1.0)


def to_uint8(x):
    """float [-1, 1] -> uint8: round((x + 1) * 127.5), clipped to [0, 255] (numpy arrays or tensors)."""
    if tf.is_tensor(x):
        return tf.cast(tf.round(tf.clip_by_value((tf.cast(x, tf.float32) + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)
    return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


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
