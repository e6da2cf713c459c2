"""Parity of an export against the Keras generators: the limit each export kind must
reach, and the check that measures it at the training size, on an odd crop and at a
photo's size, before the export is kept."""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfcyclegan import inference
from tfcyclegan.data import imagefiles
from tfcyclegan.models.export_format import tflite_file, uint8_signature
from tfcyclegan.quality import metrics
from tfcyclegan.util import report
from tfcyclegan.util.errors import UserError

# The parity check's large image: a photo's size, not square, odd height. Float32
# rounding in the instance-norm sums grows with the pixel count (docs/export.md).
LARGE_SIZE = (427, 640)


@dataclass(frozen=True)
class Limit:
    """Parity an export must reach against Keras: max abs error (in [-1, 1] units) and/or PSNR."""

    max_abs: float | None = None
    min_psnr: float | None = None

    def passes(self, max_abs, psnr):
        return (self.max_abs is None or max_abs <= self.max_abs) and (self.min_psnr is None or psnr >= self.min_psnr)

    def __str__(self):
        parts = ([f"max abs <= {self.max_abs:g}"] if self.max_abs is not None else []) + (
            [f"PSNR >= {self.min_psnr:g} dB"] if self.min_psnr is not None else []
        )
        return " and ".join(parts)


# Limits per export kind: measured parity (docs/export.md; worst of a trained 9-block
# generator and random ones) less a margin for other models and CPUs. Float exports
# differ from Keras by kernel rounding only (SavedModel: 0; TFLite float32: 2.9e-5 at
# LARGE_SIZE), the quantized ones by quantization noise (float16 77 dB, dynamic 40.7 dB,
# int8 29.5 dB at the training size).
PARITY = {
    "savedmodel": Limit(max_abs=1e-4),
    # A reloaded .keras file runs the same weights through the same ops: 0 measured.
    "keras": Limit(max_abs=1e-6),
    "none": Limit(max_abs=2e-4),
    "float16": Limit(min_psnr=60.0),
    "dynamic": Limit(min_psnr=35.0),
    "int8": Limit(min_psnr=25.0),
}


def psnr(reference, candidate):
    """PSNR in dB of images in [-1, 1] (+inf when identical): metrics.psnr_per_image of
    the whole batch taken as one image, so one number from the MSE over every pixel."""

    def as_one_image(images):
        images = np.asarray(images, np.float32)
        return images.reshape(1, -1, *images.shape[-2:])

    return float(metrics.psnr_per_image(as_one_image(reference), as_one_image(candidate))[0])


def compare(reference, candidate, images):
    """{"HxW": (max abs error, PSNR)} of Translator `candidate` against `reference` on
    `images` (the training size); on an odd-size crop of the first, fed straight to the
    exported model, whose own padding it exercises (a .keras generator has none: the
    Translator pads for it); and on the first enlarged to LARGE_SIZE, where float32
    rounding in the instance-norm statistics, which grows with the pixel count, shows."""
    s = images.shape[1]
    odd = images[:1, : s - 3, : s - 1]
    large = np.clip(tf.image.resize(images[:1], LARGE_SIZE, method="bicubic").numpy(), -1, 1)
    direct = candidate if candidate.kind == "keras" else candidate.run
    parity = {}
    for x, run in ((images, candidate), (odd, direct), (large, candidate)):
        expected, got = reference(x), run(x)
        parity[f"{x.shape[1]}x{x.shape[2]}"] = (float(np.max(np.abs(expected - got))), psnr(expected, got))
    return parity


def verify(folder, fmt, references, samples, limit, log=report.note):
    """Parity of the export of format `fmt` in `folder` per direction, against the Translators
    `references` on the verification images of `samples`; UserError if any misses `limit`."""
    parity, failed = {}, []
    for direction in references:
        path = folder / tflite_file(direction) if fmt == "tflite" else folder
        _, images, label = samples[direction]
        by_size = compare(references[direction], inference.load_translator(path, direction), images)
        max_abs, db = max(e for e, _ in by_size.values()), min(d for _, d in by_size.values())
        ok = limit.passes(max_abs, db)
        parity[direction] = {
            "max_abs_error": max_abs,
            "psnr_db": db,
            "images": len(images) + 2,
            "source": label,
            "max_abs_error_by_size": {size: e for size, (e, _) in by_size.items()},
        }
        log(
            f"{direction}: max abs error {max_abs:.2e}, PSNR {db:.1f} dB vs Keras on {len(images) + 2} images "
            f"of {label} ({', '.join(by_size)}; limit: {limit}) {'ok' if ok else 'FAILED'}"
        )
        if not ok:
            failed.append(direction)
    if fmt == "savedmodel":
        failed += _check_uint8(folder, references, samples)
    if failed:
        raise UserError(f"export failed its parity check ({', '.join(failed)}; limit {limit}); nothing was written")
    return parity


def _check_uint8(path, references, samples):
    """Endpoints whose uint8 output is more than one level off the Keras float path."""
    loaded = tf.saved_model.load(str(path))
    failed = []
    for direction in references:
        images = imagefiles.to_uint8(samples[direction][1])
        expected = imagefiles.to_uint8(references[direction](imagefiles.to_float(images))).astype(np.int16)
        got = getattr(loaded, uint8_signature(direction))(tf.constant(images)).numpy().astype(np.int16)
        if np.max(np.abs(expected - got)) > 1:
            failed.append(uint8_signature(direction))
    return failed
