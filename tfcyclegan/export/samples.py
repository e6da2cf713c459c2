"""The images an export is calibrated (int8) and checked for parity on: images of each
direction's source domain at the training size, from --calibration-dir or the run's
training domains, or deterministic synthetic images when neither is at hand."""

from pathlib import Path

import numpy as np

from tfcyclegan.data import imagefiles, pipeline, splits
from tfcyclegan.models.export_format import DIRECTIONS
from tfcyclegan.util import report
from tfcyclegan.util.errors import UsageError, UserError

CALIBRATION_COUNT = 32
VERIFY_COUNT = 4


def synthetic_images(count, size, seed):
    """Deterministic smooth colour fields with sharp edges, in [-1, 1], for when no domain images are at hand."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = []
    for _ in range(count):
        image = np.zeros((size, size, 3), np.float32)
        for c in range(3):
            fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.3)]
            image[..., c] = np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
        mask = (xx - rng.uniform(0.2, 0.8)) ** 2 + (yy - rng.uniform(0.2, 0.8)) ** 2 < rng.uniform(0.02, 0.1)
        image[mask] = rng.uniform(-1, 1, 3)
        images.append(0.8 * image)
    return np.stack(images)


def check_calibration_dirs(calibration_dirs):
    """UsageError unless `calibration_dirs` is at most two folders."""
    if len(calibration_dirs) > 2:
        raise UsageError("give --calibration-dir once (a folder with trainA/ and trainB/) or twice (A's, then B's)")


def _spread(files, count, offset=0.0):
    """`count` files spread evenly over the list, starting `offset` of a step in."""
    if len(files) <= count:
        return list(files)
    step = len(files) / count
    return [files[int(i * step + offset * step)] for i in range(count)]


def _domain_files(model, calibration_dirs, directions=DIRECTIONS):
    """{direction: (calibration files, verification files, label)} from the source domains, or None if unavailable.

    For one direction alone (a pretrained generator) a single --calibration-dir is
    that direction's source images."""
    if len(calibration_dirs) == 1 and len(directions) == 1:
        files = imagefiles.list_images(calibration_dirs[0])
        return {directions[0]: (files, files, str(calibration_dirs[0]))}
    if len(calibration_dirs) == 2:
        a, b = (imagefiles.list_images(d) for d in calibration_dirs)
        return {"a2b": (a, a, str(calibration_dirs[0])), "b2a": (b, b, str(calibration_dirs[1]))}
    if len(calibration_dirs) == 1:
        root = Path(calibration_dirs[0]).expanduser()
        for a, b in (("trainA", "trainB"), ("testA", "testB"), ("A", "B")):
            if (root / a).is_dir() and (root / b).is_dir():
                fa, fb = imagefiles.list_images(root / a), imagefiles.list_images(root / b)
                return {"a2b": (fa, fa, str(root / a)), "b2a": (fb, fb, str(root / b))}
        raise UserError(
            f"--calibration-dir {root} needs subfolders trainA/ and trainB/ (or A/ and B/) with images of each "
            "domain; or give --calibration-dir twice: domain A's folder, then domain B's"
        )
    from tfcyclegan.data import datasets

    if not (model.domain_a and model.domain_b):
        return None  # a model directory of pretrained generators knows no training domains
    try:
        domain_a, domain_b = datasets.resolve_domains(model.domain_a, model.domain_b, model.data_root, download=False)
    except UserError:
        return None
    # Calibrated on the training images; checked on the images splits.shown picks.
    return {
        "a2b": (domain_a.train_files, splits.shown(domain_a)[0], domain_a.root),
        "b2a": (domain_b.train_files, splits.shown(domain_b)[0], domain_b.root),
    }


def _load_batch(files, size, count, offset=0.0):
    """Up to `count` images spread over `files`, resized to size x size, passing over unreadable ones."""
    good, _ = imagefiles.scan_images(_spread(files, 2 * count, offset), progress=False)
    return pipeline.make_eval_batch(_spread(good, count), size, count)


def sample_images(model, calibration_dirs=(), need_calibration=False, log=report.note, directions=DIRECTIONS):
    """Per direction: (calibration batch or None, verification batch, where the images came from).

    `model` is the ModelMetadata of the generators (their domains and training size).
    Images are resized to the training size. With no domain images available the
    verification uses deterministic synthetic images (and says so); int8 calibration
    then has nothing to learn from and is an error.
    """
    check_calibration_dirs(calibration_dirs)
    found = _domain_files(model, calibration_dirs, directions)
    size = model.image_size
    if found is None:
        if need_calibration and not (model.domain_a and model.domain_b):
            raise UserError(
                "int8 needs calibration images of the source domain and this model names none; pass "
                "--calibration-dir FOLDER (for a2b: images of domain A)"
            )
        if need_calibration:
            raise UserError(
                f"int8 needs calibration images and the run's domains ({model.domain_a}, {model.domain_b}) are "
                "not available here; pass --calibration-dir"
            )
        log(f"note: the run's domain images are not available here; checking parity on synthetic {size}x{size} images")
        return {
            d: (None, synthetic_images(VERIFY_COUNT, size, seed), "synthetic images")
            for seed, d in enumerate(DIRECTIONS)
            if d in directions
        }
    samples = {}
    for direction, (calibration, verification, label) in found.items():
        if direction not in directions:
            continue
        batch = _load_batch(verification, size, VERIFY_COUNT, offset=0.5)
        if not len(batch):
            raise UserError(f"no readable image in {label} to check the export against; pass --calibration-dir")
        calib = _load_batch(calibration, size, CALIBRATION_COUNT) if need_calibration else None
        samples[direction] = (calib, batch, label)
    return samples
