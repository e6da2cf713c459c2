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
import zipfile
from pathlib import Path

from tfcyclegan.models import metadata as model_metadata
from tfcyclegan.util.errors import UserError, first_line

GENERATOR_FILES = {"a2b": "generator_g.keras", "b2a": "generator_f.keras"}
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
    _check_architecture(file)
    try:
        generator = keras.saving.load_model(file, safe_mode=True, compile=False)
    except Exception as error:
        raise UserError(f"cannot load {file}: {first_line(error)[:120]}; import or export the model again") from None
    if not isinstance(generator, networks.ResnetGenerator):
        raise UserError(
            f"{file} holds a {type(generator).__name__}, not a tfcyclegan ResnetGenerator; import or export it again"
        )
    return generator


def _check_architecture(file):
    """Hold a .keras generator's ngf and n_blocks to the bounds of `fit`'s --ngf and --blocks
    before anything is built: a file asking for a million blocks would otherwise build for
    many minutes and gigabytes. A file that is no .keras archive is left to Keras' loader,
    whose error is reported."""
    from tfcyclegan.runs.config import value_problem

    try:
        with zipfile.ZipFile(file) as archive:
            config = json.loads(archive.read("config.json")).get("config")
    except (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return
    if not isinstance(config, dict):
        return
    problems = [value_problem(option, config[key], key) for key, option in (("ngf", "ngf"), ("n_blocks", "blocks"))
                if key in config]  # fmt: skip
    problems = [problem for problem in problems if problem]
    if problems:
        raise UserError(f"{file}: {'; '.join(problems)}; import or export the model again")


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
