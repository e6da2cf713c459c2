"""Translate images of any size with a trained generator: from a run directory, an
exported SavedModel or a .tflite file, in memory or file to file.

Nothing is unpickled and no Python is executed from a model path: a run directory is
read as config.json plus a TensorFlow checkpoint, a SavedModel as a graph, a .tflite
file as a flatbuffer, and export metadata as JSON.
"""

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tfcyclegan import data
from tfcyclegan.errors import UserError

DIRECTIONS = ("a2b", "b2a")
# Two stride-2 convolutions: the generator maps H x W to H x W only for multiples of 4.
MULTIPLE = 4
# The residual blocks reflection-pad by 1 at a quarter of the size, which needs >= 2 pixels.
MIN_SIDE = 8
# Peak memory of one forward pass grows linearly with pixels and filters: about 0.9 KB
# per pixel for ngf 64 on CPU (docs/export.md). This budget keeps a pass near 4 GB; a
# larger image is translated in overlapping tiles.
PIXEL_BUDGET_NGF64 = 2048 * 2048
METADATA_FILE = "metadata.json"
TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier at byte offset 4

IMAGE_SPEC = tf.TensorSpec((None, None, None, 3), tf.float32)


def pixel_budget(ngf):
    """Pixels (batch x height x width) one forward pass may hold for a generator with `ngf` filters."""
    return max(MIN_SIDE * MIN_SIDE, PIXEL_BUDGET_NGF64 * 64 // max(int(ngf), 1))


def _starts(length, size, overlap):
    """Tile origins along one axis: every size - overlap, the last one flush with the end."""
    if length <= size:
        return [0]
    return list(range(0, length - size, size - overlap)) + [length - size]


def _ramps(starts, size):
    """Blend weights of each tile along one axis: a linear cross-fade over exactly the
    span it shares with each neighbour, so neighbouring weights sum to 1 there."""
    weights = []
    for i, start in enumerate(starts):
        w = np.ones(size, np.float32)
        if i > 0:
            shared = starts[i - 1] + size - start
            w[:shared] = (np.arange(shared, dtype=np.float32) + 1) / (shared + 1)
        if i + 1 < len(starts):
            shared = start + size - starts[i + 1]
            fall = np.arange(shared, 0, -1, dtype=np.float32) / (shared + 1)
            w[size - shared :] = np.minimum(w[size - shared :], fall)
        weights.append(w)
    return weights


class Translator:
    """One direction of a trained model: float32 images in [-1, 1], any size, in and out.

    Call it on an (N, H, W, 3) or (H, W, 3) array; the result has the same shape. Each
    image is reflection-padded to a multiple of 4, translated, and cropped back. Batches
    are split so one forward pass holds at most `max_pixels` pixels; a single image
    larger than that is cut into square tiles overlapping by a quarter of their side,
    whose results are cross-faded linearly over the overlaps so no seam shows.

    `run` maps a float32 numpy batch whose height and width are multiples of 4 to its
    translation. `kind` is "keras", "savedmodel" or "tflite"; `info` is what is known
    about the model (training config or export metadata).
    """

    def __init__(self, run, direction, kind, source, max_pixels, info=None):
        self.run = run
        self.direction = direction
        self.kind = kind
        self.source = str(source)
        self.max_pixels = int(max_pixels)
        self.info = info or {}
        side = int(math.isqrt(self.max_pixels)) // MULTIPLE * MULTIPLE
        self.tile = max(side, 4 * MULTIPLE)
        self.overlap = self.tile // 4 // MULTIPLE * MULTIPLE

    def __repr__(self):
        return f"Translator({self.direction}, {self.kind}, {self.source!r})"

    def __call__(self, images):
        x = np.asarray(images, np.float32)
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise UserError(f"expected RGB images shaped (N, H, W, 3) or (H, W, 3), got shape {x.shape}")
        n, h, w, _ = x.shape
        if min(h, w) < MIN_SIDE:
            raise UserError(f"image of {w}x{h} pixels is too small; the generator needs at least {MIN_SIDE}x{MIN_SIDE}")
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        top, left = ph // 2, pw // 2
        x = np.pad(x, [(0, 0), (top, ph - top), (left, pw - left), (0, 0)], mode="reflect")
        hp, wp = x.shape[1:3]
        if hp * wp > self.max_pixels:
            y = np.stack([self._tiled(image) for image in x])
        else:
            per_pass = max(1, self.max_pixels // (hp * wp))
            y = np.concatenate([self.run(x[i : i + per_pass]) for i in range(0, n, per_pass)])
        y = y[:, top : top + h, left : left + w]
        return y[0] if single else y

    def _tiled(self, image):
        h, w, _ = image.shape
        th, tw = min(self.tile, h), min(self.tile, w)
        rows, cols = _starts(h, th, self.overlap), _starts(w, tw, self.overlap)
        row_w, col_w = _ramps(rows, th), _ramps(cols, tw)
        boxes = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
        total = np.zeros((h, w, 3), np.float32)
        weight = np.zeros((h, w, 1), np.float32)
        per_pass = max(1, self.max_pixels // (th * tw))
        for k in range(0, len(boxes), per_pass):
            chunk = boxes[k : k + per_pass]
            out = self.run(np.stack([image[rows[i] : rows[i] + th, cols[j] : cols[j] + tw] for i, j in chunk]))
            for (i, j), tile in zip(chunk, out):
                wt = np.outer(row_w[i], col_w[j])[..., None]
                total[rows[i] : rows[i] + th, cols[j] : cols[j] + tw] += tile * wt
                weight[rows[i] : rows[i] + th, cols[j] : cols[j] + tw] += wt
        return total / weight


def keras_translator(generator, direction="a2b", info=None, source="keras generator"):
    """A Translator around an in-memory generator (G for a2b, F for b2a)."""
    ngf = getattr(generator, "ngf", 64)
    fn = tf.function(lambda x: generator(x, training=False), input_signature=[IMAGE_SPEC])
    return Translator(lambda x: fn(x).numpy(), direction, "keras", source, pixel_budget(ngf), info)


def _check_direction(direction):
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be a2b or b2a, not {direction!r}")


def _read_metadata(folder):
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}; re-export the model with `tfcyclegan export`") from None
    return meta if isinstance(meta, dict) else {}


def _from_run_dir(path, direction):
    from tfcyclegan import train

    generator_g, generator_f, config = train.load_generators(path)
    generator = generator_g if direction == "a2b" else generator_f
    return keras_translator(generator, direction, info=config.to_dict(), source=path)


def _from_savedmodel(path, direction):
    info = _read_metadata(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load SavedModel {path}: {first}; re-export it with `tfcyclegan export`") from None
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
    found = set(re.findall(r"(?<![a-z0-9])(a2b|b2a)(?![a-z0-9])", Path(path).stem.lower()))
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
        return f.read(8)[4:8] == TFLITE_MAGIC


def load_translator(path, direction, num_threads=None):
    """The Translator for `direction` (a2b uses G, b2a uses F) stored at `path`.

    `path` is a run directory (its newest checkpoint), a SavedModel from `tfcyclegan
    export`, a .tflite file from it, or a folder of such .tflite files (the one for
    `direction` is used). `num_threads` applies to TFLite (default: every core).
    """
    _check_direction(direction)
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"model {path}: no such file or folder; give a run directory, a SavedModel or a .tflite file")
    expected = (
        "expected a run directory (config.json + checkpoints/), a SavedModel from `tfcyclegan export` or a .tflite file"
    )
    if path.is_dir():
        from tfcyclegan.train import CONFIG_FILE

        if (path / CONFIG_FILE).is_file():
            return _from_run_dir(path, direction)
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return _from_savedmodel(path, direction)
        files = _read_metadata(path).get("files", {})
        if direction in files and (path / Path(files[direction]).name).is_file():
            return _from_tflite(path / Path(files[direction]).name, direction, num_threads)
        raise UserError(f"{path} is not a model: {expected}")
    try:
        tflite = _is_tflite(path)
    except OSError as error:
        raise UserError(f"cannot read model {path}: {error.strerror}") from None
    if not tflite:
        raise UserError(f"{path} is not a model: {expected}")
    return _from_tflite(path, direction, num_threads)


@dataclass
class TranslateReport:
    """What translate_files did: files written, inputs skipped (path, reason), inputs downscaled."""

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    downscaled: list = field(default_factory=list)


FORMATS = {"png": ("PNG", ".png", {}), "jpg": ("JPEG", ".jpg", {"quality": 95})}


def plan_outputs(inputs, output_dir, fmt="png"):
    """[(input file, output file)] for files and folders (recursive, subfolders kept).

    Each output keeps its input's file name with the extension of `fmt`. Two inputs
    that would land on the same output, or an output that would overwrite its input,
    are an error before any work is done.
    """
    if fmt not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    suffix = FORMATS[fmt][1]
    output_dir = Path(output_dir).expanduser()
    jobs = []
    for item in inputs:
        item = Path(item).expanduser()
        if item.is_dir():
            jobs += [(Path(p), Path(p).relative_to(item)) for p in data.list_images(item)]
        elif item.exists():
            jobs.append((item, Path(item.name)))
        else:
            raise UserError(f"input {item}: no such file or folder")
    if not jobs:
        raise UserError("no input images given")
    seen = {}
    plan = []
    for source, relative in jobs:
        target = output_dir / relative.with_suffix(suffix)
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise UserError(
                f"{seen[key]} and {source} would both be written to {target}; "
                "translate them into separate --output folders"
            )
        if key == os.path.normcase(os.path.abspath(source)):
            raise UserError(f"{target} would overwrite its input; choose another --output folder")
        seen[key] = source
        plan.append((source, target))
    return plan


def _save(array, target, fmt):
    kind, _, options = FORMATS[fmt]
    partial = target.with_name(f".{target.name}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed, so an interrupted run leaves no half image.
        Image.fromarray(array).save(partial, format=kind, **options)
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write {target}: {error.strerror or error}; check the --output folder") from None


def _log(message):
    print(message, file=sys.stderr)


def translate_files(translator, inputs, output_dir, batch_size=1, max_size=None, fmt="png", progress=None, log=_log):
    """Translate image files and folders into `output_dir`; returns a TranslateReport.

    Images of the same size are batched (up to `batch_size`). An image whose longer side
    exceeds `max_size` is downscaled (aspect kept) before translation, with a note. An
    unreadable input is reported through `log` in one line and skipped.
    `progress(done, total)` is called as inputs finish.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1 (got {batch_size})")
    if max_size is not None and max_size < MIN_SIDE:
        raise UserError(f"--max-size must be >= {MIN_SIDE} (got {max_size})")
    plan = plan_outputs(inputs, output_dir, fmt)
    report = TranslateReport()
    total, done = len(plan), 0
    pending = {}  # (h, w) -> [(image, target)]

    def finish(count):
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    def flush(size):
        batch = pending.pop(size)
        out = data.to_uint8(translator(data.to_float(np.stack([image for image, _ in batch]))))
        for array, (_, target) in zip(out, batch):
            _save(array, target, fmt)
            report.written.append(str(target))
        finish(len(batch))

    for source, target in plan:
        try:
            image = data.load_image(source)
        except data.ImageError as error:
            report.skipped.append((str(source), error.reason))
            log(f"skipped {source}: {error.reason}")
            finish(1)
            continue
        h, w = image.shape[:2]
        if max_size is not None and max(h, w) > max_size:
            scale = max_size / max(h, w)
            size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
            report.downscaled.append((str(source), (w, h), size))
            log(f"note: {source} is {w}x{h}; translated at {size[0]}x{size[1]} (--max-size {max_size})")
            h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            reason = f"too small ({w}x{h}; at least {MIN_SIDE}x{MIN_SIDE} needed)"
            report.skipped.append((str(source), reason))
            log(f"skipped {source}: {reason}")
            finish(1)
            continue
        pending.setdefault((h, w), []).append((image, target))
        if len(pending[(h, w)]) == batch_size:
            flush((h, w))
        elif sum(len(v) for v in pending.values()) > 4 * batch_size:
            # Many different sizes: bound memory by translating the fullest group early.
            flush(max(pending, key=lambda k: len(pending[k])))
    for size in list(pending):
        flush(size)
    return report
