"""Loaders: a Translator from a model, in memory or at a path (a run directory, a model
directory, a SavedModel, a .tflite file or a folder of them, a PyTorch .pth file).

What a path holds is told once, by tfcyclegan.models.identify, and each kind has one
loader in TRANSLATOR_LOADERS: the kinds with Keras weights through identify's own table
of generator loaders, a SavedModel as a graph, a .tflite file as a flatbuffer. Nothing is
unpickled and no Python is executed from a model path (a SavedModel's every op is checked
first, tfcyclegan.models.graphcheck: no file, process or Python ops); metadata is read as JSON
(tfcyclegan.models.metadata), and the names of an export's files and signatures come from
tfcyclegan.models.export_format, which the writer uses too.
"""

import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcyclegan.inference.tiling import Translator, pixel_budget
from tfcyclegan.models import graphcheck, identify
from tfcyclegan.models import metadata as model_metadata
from tfcyclegan.models.export_format import DIRECTIONS
from tfcyclegan.models.identify import REEXPORT
from tfcyclegan.util.errors import UsageError, UserError, first_line

# What a translator's forward pass takes and returns: float32 RGB batches of any size.
IMAGE_SPEC = tf.TensorSpec((None, None, None, 3), tf.float32)
# What translate, evaluate and study take as a model: anything a Translator loads from.
ACCEPTS = identify.Accepts("model", identify.ANY)


def keras_translator(generator, direction="a2b", info=None, source="keras generator"):
    """A Translator around an in-memory generator (G for a2b, F for b2a)."""
    ngf = getattr(generator, "ngf", 64)
    fn = tf.function(lambda x: generator(x, training=False), input_signature=[IMAGE_SPEC])
    return Translator(lambda x: fn(x).numpy(), direction, "keras", source, pixel_budget(ngf), info)


def _check_direction(direction):
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be a2b or b2a, not {direction!r}")


def _from_keras(path, kind, direction, num_threads=None, checkpoint=None):
    """A kind with Keras weights: its generator for `direction` (a .pth file's one way, whatever `direction` says;
    a run directory's checkpoint number `checkpoint`, when given)."""
    wanted = [direction] if direction else None
    generators, meta, _ = identify.load_generators(path, ACCEPTS, wanted=wanted, checkpoint=checkpoint)
    if kind is identify.PTH:
        direction, generator = direction or "a2b", generators["a2b"]
    else:
        generator = generators[direction]
    return keras_translator(generator, direction, meta, source=path)


def _from_savedmodel(path, kind, direction, num_threads=None):
    info = model_metadata.read(path, REEXPORT)
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

    return Translator(run, direction, "savedmodel", path, pixel_budget(info.ngf or 64), info)


def _tflite_direction(path, interpreter):
    """The direction a .tflite file translates: its signature name, else its file name."""
    names = [n for n in interpreter.get_signature_list() if n in DIRECTIONS]
    if len(names) == 1:
        return names[0]
    found = set(re.findall(rf"(?<![a-z0-9])({'|'.join(DIRECTIONS)})(?![a-z0-9])", Path(path).stem.lower()))
    return found.pop() if len(found) == 1 else None


def _from_tflite(path, kind, direction, num_threads=None):
    from ai_edge_litert.interpreter import Interpreter

    info = model_metadata.read(Path(path).parent, REEXPORT)
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

    return Translator(run, direction, "tflite", path, pixel_budget(info.ngf or 64), info)


def _from_tflite_dir(path, kind, direction, num_threads=None):
    """The .tflite file for `direction` that the folder's metadata.json lists."""
    files = identify.tflite_files(path)
    if direction not in files:
        other = ", ".join(sorted(map(str, files)))
        raise UserError(
            f"{path} has no {direction} model, only {other} (its generator translates one way); use --direction {other}"
        )
    file = path / Path(files[direction]).name
    if not file.is_file():
        raise UserError(f"{path} lists {file.name} for {direction}, which is not there; {REEXPORT}")
    return _from_tflite(file, identify.TFLITE, direction, num_threads)


# One loader per kind: (path, kind, direction or None, num_threads) -> Translator.
TRANSLATOR_LOADERS = {
    **{kind: _from_keras for kind in identify.KERAS_WEIGHTS},
    identify.SAVEDMODEL: _from_savedmodel,
    identify.TFLITE: _from_tflite,
    identify.TFLITE_DIR: _from_tflite_dir,
}


def load_translator(path, direction, num_threads=None, accepts=ACCEPTS, trust_model=False, checkpoint=None):
    """The Translator for `direction` (a2b uses G, b2a uses F) stored at `path`.

    `path` is any kind `accepts` takes (tfcyclegan.models.identify; by default every
    kind): a run directory (its newest checkpoint), a model directory of .keras
    generators, a SavedModel from `tfcyclegan export`, a .tflite file from it, a folder
    of such .tflite files (the one for `direction` is used), or a PyTorch generator .pth
    file (it translates the one way it was trained, whatever `direction` says).
    `direction=None` takes the model's only direction (a .pth file, a one-way model
    directory, a .tflite file) and is a UsageError for a model that translates both
    ways. `num_threads` applies to TFLite (default: every core). A SavedModel's ops are
    checked before it is loaded (tfcyclegan.models.graphcheck) unless `trust_model`.
    `checkpoint` (a number) picks a run directory's checkpoint instead of its newest.
    """
    if direction is not None:
        _check_direction(direction)
    path, kind = accepts.identify(path)
    held = identify.directions(path, kind)
    if direction is None and held is not None:
        if len(held) > 1:
            raise UsageError(
                f"{path} translates both ways: pass --direction a2b (G, A to B) or --direction b2a (F, B to A)"
            )
        direction = held[0] if held else None
    if checkpoint is not None:
        identify.check_checkpoint_kind(path, kind, checkpoint)
        return _from_keras(path, kind, direction, num_threads, checkpoint)
    if kind is identify.SAVEDMODEL and not trust_model:
        graphcheck.check_savedmodel(path)
    return TRANSLATOR_LOADERS[kind](path, kind, direction, num_threads)
