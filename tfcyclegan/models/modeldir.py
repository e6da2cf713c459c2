"""A model directory: Keras-native generator files that `translate`, `export`, `evaluate`
and `fit --init-generators` take, written by `tfcyclegan import` (pretrained PyTorch
generators) and by `tfcyclegan export RUN --format keras`.

    generator_g.keras   G: A -> B (a2b)
    generator_f.keras   F: B -> A (b2a), absent when only one direction is known
    metadata.json       sources, architecture, pre/post-processing (tfcyclegan.models.metadata)

Each .keras file loads with keras.saving.load_model(path, safe_mode=True): the
networks are registered Keras classes (tfcyclegan.core.networks), nothing else is needed.
"""

import dataclasses
import json
import os
import zipfile
import zlib
from pathlib import Path

from tfcyclegan.models import metadata as model_metadata
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UserError, first_line

GENERATOR_FILES = {"a2b": "generator_g.keras", "b2a": "generator_f.keras"}
# What a .keras generator file may ask for (_check_file): tfcyclegan's generator, its options.
REGISTERED = ("tfcyclegan>ResnetGenerator", "tfcyclegan>MobileResnetGenerator")
OPTIONS = frozenset({"name", "trainable", "dtype", "ngf", "n_blocks", "dropout", "affine"})
WEIGHTS = "model.weights.h5"
MAX_CONFIG_BYTES = 1 << 20
PREPROCESSING = "RGB float32 (N, H, W, 3) in [-1, 1]: x = pixel / 127.5 - 1; any H, W >= 8 (multiples of 4 natively)"
POSTPROCESSING = "y in [-1, 1]: image = (y + 1) / 2 in [0, 1], times 255 for 8-bit"


def is_model_dir(path):
    """Whether `path` is a folder holding at least one generator file."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in GENERATOR_FILES.values())


def directions(path):
    """The directions whose generator file `path` holds, in DIRECTIONS order."""
    return [d for d, name in GENERATOR_FILES.items() if (Path(path) / name).is_file()]


def load_generator(path, direction):
    """The generator for `direction` in model directory `path` (safe-mode .keras load)."""
    import keras

    from tfcyclegan.core import networks

    path = Path(path)
    file = path / GENERATOR_FILES[direction]
    if not file.is_file():
        other = "a2b" if direction == "b2a" else "b2a"
        raise UserError(
            f"{path} has no {direction} generator ({GENERATOR_FILES[direction]}), only {other}: pretrained files "
            f"translate one way; for {direction}, import the reverse .pth as the second file"
        )
    _check_file(file)
    try:
        generator = keras.saving.load_model(file, safe_mode=True, compile=False)
    except Exception as error:
        raise UserError(f"cannot load {file}: {first_line(error)[:120]}; import or export the model again") from None
    if not isinstance(generator, networks.ResnetGenerator):
        raise UserError(
            f"{file} holds a {type(generator).__name__}, not a tfcyclegan ResnetGenerator; import or export it again"
        )
    _check_finite(file, generator)
    return generator


def parameter_count(ngf, n_blocks, affine=False):
    """(weights of a ResnetGenerator, elements of its largest tensor): its convolutions'
    kernels and biases, and with `affine` two per channel of each norm but the last."""
    c = 4 * ngf
    convs = [(3 * 49, ngf), (ngf * 9, 2 * ngf), (2 * ngf * 9, c)] + [(c * 9, c)] * (2 * n_blocks)
    convs += [(c * 9, 2 * ngf), (2 * ngf * 9, ngf), (ngf * 49, 3)]
    total = sum(fan_in * out + out for fan_in, out in convs)
    if affine:
        total += 2 * sum(out for _, out in convs[:-1])
    return total, max(fan_in * out for fan_in, out in convs)


def _refuse(file, what):
    raise UserError(f"{file} {what}; nothing of it was built; import or export the model again")


def _check_file(file):
    """What a .keras generator file asks Keras to build, judged before anything is built.

    Keras builds whatever class a file's config.json names (a 1 KB Sequential of one
    20000 x 20000 Dense layer takes 5 GB) before we could see it is no generator; so the
    file must be a zip archive naming tfcyclegan's ResnetGenerator with only its own
    options, ngf and n_blocks within `fit`'s --ngf and --blocks bounds (which bound its
    parameters), and a weights file of no more tensors and values than that generator has.
    """
    from tfcyclegan.runs.config import value_problem

    try:
        handle = fsutil.open_regular(file)
    except OSError as error:
        raise UserError(f"cannot read {file}: {first_line(error)}; import or export the model again") from None
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            _refuse(file, "is empty (0 bytes)")
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
            _refuse(file, "is not a .keras file (not a zip archive)")
        with archive:
            names = set(archive.namelist())
            if "config.json" not in names or archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                _refuse(file, f"is not a .keras file (no config.json of at most {MAX_CONFIG_BYTES >> 10} KiB)")
            try:
                with archive.open("config.json") as member:
                    config = json.loads(member.read(MAX_CONFIG_BYTES))
            except (ValueError, OSError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as error:
                _refuse(file, f"has an unreadable config.json ({first_line(error)[:80]})")
            if not isinstance(config, dict):
                _refuse(file, "has a config.json that is not a JSON object")
            kind = config.get("registered_name") or config.get("class_name")
            # A MobileResnetGenerator has fewer weights than the ResnetGenerator of its options,
            # so the same bounds hold it.
            if kind not in REGISTERED or config.get("class_name") != kind.split(">")[-1]:
                _refuse(file, f"holds a {str(kind)[:60]}, not a tfcyclegan ResnetGenerator")
            options = config.get("config")
            if not isinstance(options, dict) or not set(options) <= OPTIONS:
                odd = sorted(set(options) - OPTIONS) if isinstance(options, dict) else [type(options).__name__]
                _refuse(file, f"has a ResnetGenerator config with other keys than its options ({', '.join(odd)[:80]})")
            problems = [value_problem(option, options[key], key) for key, option in
                        (("ngf", "ngf"), ("n_blocks", "blocks"), ("dropout", "flip"), ("affine", "flip"))
                        if key in options]  # fmt: skip
            problems = [problem for problem in problems if problem]
            if problems:
                raise UserError(f"{file}: {'; '.join(problems)}; import or export the model again")
            found = (options.get("ngf", 64), options.get("n_blocks", 6), options.get("affine", False))
            if WEIGHTS in names:
                _check_weights(file, archive, *found)


def _check_weights(file, archive, ngf, n_blocks, affine):
    """The weights file may declare no tensor larger, and no more values, than the generator has:
    Keras reads each whole before it compares its shape."""
    import h5py

    total, largest = parameter_count(ngf, n_blocks, affine)
    sizes = []
    try:
        with archive.open(WEIGHTS) as member, h5py.File(member, "r") as weights:
            weights.visititems(lambda name, item: sizes.append(item.size) if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, zlib.error) as error:
        _refuse(file, f"has an unreadable {WEIGHTS} ({first_line(error)[:80]})")
    if sizes and (max(sizes) > largest or sum(sizes) > total):
        _refuse(
            file,
            f"declares {sum(sizes)} weight values (up to {max(sizes)} in one tensor) where a ResnetGenerator with "
            f"ngf {ngf} and {n_blocks} blocks has {total} (up to {largest})",
        )


def _check_finite(file, generator):
    """Every weight a number: NaN or infinity makes every output NaN (and a fine-tuning run diverge at once)."""
    import numpy as np

    for variable in generator.weights:
        values = np.asarray(variable.numpy())
        if not np.all(np.isfinite(values)):
            raise UserError(
                f"{file}: weight {variable.path} holds {int(np.sum(~np.isfinite(values)))} non-finite values, so the "
                "generator computes nothing; import or export the model again from weights that are finite"
            )


def save(folder, generators, metadata):
    """Write {direction: generator} into `folder`, and `metadata` (a ModelMetadata) with the
    file names and the pixel conventions as its metadata.json; returns what was written."""
    folder = Path(folder)
    for direction, generator in generators.items():
        generator.save(folder / GENERATOR_FILES[direction])
    full = metadata.with_extra(preprocessing=PREPROCESSING, postprocessing=POSTPROCESSING)
    full = dataclasses.replace(full, format="keras", generators={d: GENERATOR_FILES[d] for d in generators})
    model_metadata.write(folder, full)
    return full
