"""Loaders: a Translator from a model, in memory or at a path (a run directory, a model
directory, a SavedModel, a .tflite file or a folder of them, a PyTorch .pth file).

Nothing is unpickled and no Python is executed from a model path: a run directory is
read as config.json plus a TensorFlow checkpoint (tfcyclegan.runs.rundir), a .keras file in
Keras' safe mode (tfcyclegan.models.modeldir), a SavedModel as a graph, a .tflite file as a
flatbuffer, a .pth through a restricted unpickler that builds tensors only
(tfcyclegan.models.torch_state), and metadata as JSON. The names of an export's files and
signatures come from tfcyclegan.models.export_format, which the writer uses too.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcyclegan.inference.tiling import Translator, pixel_budget
from tfcyclegan.models import modeldir
from tfcyclegan.models.export_format import (
    DIRECTIONS,
    FILES_KEY,
    METADATA_FILE,
    SAVEDMODEL_FILE,
    SAVEDMODEL_TEXT_FILE,
    TFLITE_MAGIC,
    TFLITE_MAGIC_OFFSET,
)
from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import value_problem
from tfcyclegan.util.errors import UsageError, UserError, first_line

REEXPORT = "re-export the model with `tfcyclegan export`"
# What a translator's forward pass takes and returns: float32 RGB batches of any size.
IMAGE_SPEC = tf.TensorSpec((None, None, None, 3), tf.float32)


def keras_translator(generator, direction="a2b", info=None, source="keras generator"):
    """A Translator around an in-memory generator (G for a2b, F for b2a)."""
    ngf = getattr(generator, "ngf", 64)
    fn = tf.function(lambda x: generator(x, training=False), input_signature=[IMAGE_SPEC])
    return Translator(lambda x: fn(x).numpy(), direction, "keras", source, pixel_budget(ngf), info)


def _check_direction(direction):
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be a2b or b2a, not {direction!r}")


def _read_metadata(folder):
    """The export metadata.json in `folder` ({} if none). The architecture values used here
    are held to the bounds of `tfcyclegan fit`'s options (config.value_problem), and
    "files" must map directions to file names; anything else is a UserError naming the key."""
    meta = modeldir.read_metadata(folder, REEXPORT, not_object={})
    problems = [
        value_problem(key, meta[key], json.dumps(key)) for key in ("ngf", "blocks", "image_size") if key in meta
    ]
    files = meta.get(FILES_KEY, {})
    if not isinstance(files, dict) or not all(isinstance(name, str) for name in files.values()):
        problems.append(f'"{FILES_KEY}" must map a2b and b2a to file names (got {json.dumps(files)})')
    problems = [problem for problem in problems if problem]
    if problems:
        raise UserError(f"{Path(folder) / METADATA_FILE}: {'; '.join(problems)}; {REEXPORT}")
    return meta


def _from_run_dir(path, direction):
    generator_g, generator_f, config = rundir.load_generators(path)
    generator = generator_g if direction == "a2b" else generator_f
    return keras_translator(generator, direction, info=config.to_dict(), source=path)


def _from_savedmodel(path, direction):
    info = _read_metadata(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        raise UserError(
            f"cannot load SavedModel {path}: {first_line(error)}; re-export it with `tfcyclegan export`"
        ) from None
    signature = getattr(loaded, "signatures", {}).get(direction)
    if signature is None:
        raise UserError(
            f"SavedModel {path} has no {direction} endpoint, so it was not exported by tfcyclegan; "
            "export a run with `tfcyclegan export RUN_DIR`"
        )
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    spec = next(iter(inputs.values()), None) if len(inputs) == 1 else None
    if (
        spec is None
        or len(outputs) != 1
        or spec.dtype != tf.float32
        or spec.shape.rank != 4
        or spec.shape[-1] != 3
        or spec.shape[1] is not None
        or spec.shape[2] is not None
    ):
        raise UserError(
            f"SavedModel {path}: endpoint {direction} is not an image translator (it takes {inputs}); "
            "export a run with `tfcyclegan export RUN_DIR`"
        )
    name, key = next(iter(inputs)), next(iter(outputs))

    def run(x):
        return signature(**{name: tf.constant(x)})[key].numpy()

    return Translator(run, direction, "savedmodel", path, pixel_budget(info.get("ngf", 64)), info)


def _tflite_direction(path, interpreter):
    """The direction a .tflite file translates: its signature name, else its file name."""
    names = [n for n in interpreter.get_signature_list() if n in DIRECTIONS]
    if len(names) == 1:
        return names[0]
    found = set(re.findall(rf"(?<![a-z0-9])({'|'.join(DIRECTIONS)})(?![a-z0-9])", Path(path).stem.lower()))
    return found.pop() if len(found) == 1 else None


def _from_tflite(path, direction, num_threads=None):
    from ai_edge_litert.interpreter import Interpreter

    info = _read_metadata(Path(path).parent)
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count())
    except Exception as error:
        raise UserError(
            f"{path} is not a valid TFLite model ({error}); re-export it with `tfcyclegan export`"
        ) from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()

    def describe(details):
        return ", ".join(f"{d['dtype'].__name__} {d['shape_signature'].tolist()}" for d in details)

    def is_image(d):
        sig = d["shape_signature"].tolist()
        return d["dtype"] == np.float32 and len(sig) == 4 and sig[3] == 3

    if len(inputs) != 1 or len(outputs) != 1 or not is_image(inputs[0]) or not is_image(outputs[0]):
        raise UserError(
            f"{path} is not a tfcyclegan translator: it maps {describe(inputs)} to {describe(outputs)}, "
            "not float32 [batch, height, width, 3] images; "
            "export a run with `tfcyclegan export RUN_DIR --format tflite`"
        )
    if inputs[0]["shape_signature"][1:3].tolist() != [-1, -1]:
        h, w = inputs[0]["shape_signature"][1:3].tolist()
        raise UserError(
            f"{path} only takes {w}x{h} images; export the run with `tfcyclegan export RUN_DIR --format tflite` "
            "for one that takes any size"
        )
    found = _tflite_direction(path, interpreter)
    if found is None:
        raise UserError(
            f"cannot tell which direction {path} translates (no a2b/b2a signature or name); "
            f"rename it to end in _{direction}.tflite if it is the {direction} model"
        )
    direction = direction or found
    if found != direction:
        raise UserError(f"{path} translates {found}, not {direction}; pass --direction {found} or the {direction} file")
    index, out_index = inputs[0]["index"], outputs[0]["index"]
    shape = [None]

    def run(x):
        # Resizing re-plans the interpreter's memory, so do it only when the shape changes.
        if list(x.shape) != shape[0]:
            interpreter.resize_tensor_input(index, x.shape, strict=False)
            interpreter.allocate_tensors()
            shape[0] = list(x.shape)
        interpreter.set_tensor(index, np.ascontiguousarray(x, np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    return Translator(run, direction, "tflite", path, pixel_budget(info.get("ngf", 64)), info)


def _is_tflite(path):
    with open(path, "rb") as f:
        return f.read(TFLITE_MAGIC_OFFSET + len(TFLITE_MAGIC))[TFLITE_MAGIC_OFFSET:] == TFLITE_MAGIC


def load_translator(path, direction, num_threads=None):
    """The Translator for `direction` (a2b uses G, b2a uses F) stored at `path`.

    `path` is a run directory (its newest checkpoint), a model directory of .keras
    generators (tfcyclegan.models.modeldir), a SavedModel from `tfcyclegan export`, a .tflite
    file from it, a folder of such .tflite files (the one for `direction` is used), or
    a PyTorch generator .pth file (tfcyclegan.models.pretrained; it translates the one way it
    was trained, whatever `direction` says). `direction=None` takes the model's only
    direction (a .pth file, a one-way model directory, a .tflite file) and is a
    UsageError for a model that translates both ways. `num_threads` applies to TFLite
    (default: every core).
    """
    if direction is not None:
        _check_direction(direction)
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(
            f"model {path}: no such file or folder; give a run directory, a model directory, a SavedModel, "
            "a .tflite or a .pth file"
        )
    expected = (
        "expected a run directory (config.json + checkpoints/), a model directory (generator_g.keras), "
        "a SavedModel from `tfcyclegan export`, a .tflite or a PyTorch .pth file"
    )
    if path.is_dir():
        if direction is None:
            if (path / rundir.CONFIG_FILE).is_file() or (path / SAVEDMODEL_FILE).is_file():
                held = DIRECTIONS
            elif modeldir.is_model_dir(path):
                held = modeldir.directions(path)
            else:
                held = list(_read_metadata(path).get(FILES_KEY, {}))
            if len(held) > 1:
                raise UsageError(
                    f"{path} translates both ways: pass --direction a2b (G, A to B) or --direction b2a (F, B to A)"
                )
            direction = held[0] if held else None
        if (path / rundir.CONFIG_FILE).is_file():
            return _from_run_dir(path, direction)
        if modeldir.is_model_dir(path):
            return keras_translator(
                modeldir.load_generator(path, direction), direction, modeldir.read_metadata(path), source=path
            )
        if (path / SAVEDMODEL_FILE).is_file() or (path / SAVEDMODEL_TEXT_FILE).is_file():
            return _from_savedmodel(path, direction)
        files = _read_metadata(path).get(FILES_KEY, {})
        if direction in files and (path / Path(files[direction]).name).is_file():
            return _from_tflite(path / Path(files[direction]).name, direction, num_threads)
        if isinstance(files, dict) and files and direction not in files:
            other = ", ".join(sorted(map(str, files)))
            raise UserError(
                f"{path} has no {direction} model, only {other} (its generator translates one way); "
                f"use --direction {other}"
            )
        raise UserError(f"{path} is not a model: {expected}")
    if not path.is_file():  # a named pipe or a device would block or never end
        raise UserError(f"model {path} is not a regular file; {expected}")
    try:
        tflite = _is_tflite(path)
    except OSError as error:
        raise UserError(f"cannot read model {path}: {first_line(error)}") from None
    if tflite:
        return _from_tflite(path, direction, num_threads)
    if path.suffix.lower() in (".pth", ".pt"):
        from tfcyclegan.models import pretrained

        generator, described = pretrained.load_source(path)
        return keras_translator(generator, direction or "a2b", described, source=path)
    raise UserError(f"{path} is not a model: {expected}")
